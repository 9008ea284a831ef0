// Pure parsers for what Linux shows a root process about dma-bufs: the fd link and fdinfo of a
// dma-buf fd, the /dmabuf: lines of /proc/<pid>/maps, /proc/<pid>/stat, debugfs bufinfo and
// `rdma resource show mr -j`. Each takes the text as the kernel prints it and never throws on
// text it does not recognize: it returns undefined (or skips the line) and the caller decides.
import { z } from 'zod';

/** `/dmabuf:<name>` is what readlink gives for a dma-buf fd (dmabuffs_dname); `/dmabuf:` unnamed. */
export function isDmabufLink(target: string): boolean {
  return target.startsWith('/dmabuf:');
}

/** What /proc/<pid>/fdinfo/<fd> says about a dma-buf (dma_buf_show_fdinfo, 6.1). */
export interface DmabufFdinfo {
  readonly ino: number;
  readonly sizeBytes: number;
  /** References to the buffer's file, the procfs reader's own excluded. */
  readonly count: number;
  readonly exporter: string;
  readonly name: string | null;
}

function fields(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+):\s*(.*)$/.exec(line);
    if (m?.[1] && !out.has(m[1])) out.set(m[1], m[2] ?? '');
  }
  return out;
}

const whole = (s: string | undefined) => (s !== undefined && /^\d+$/.test(s) ? Number(s) : NaN);

/** The dma-buf part of an fdinfo file, or undefined when it is not a dma-buf's (no exp_name). */
export function parseFdinfo(text: string): DmabufFdinfo | undefined {
  const f = fields(text);
  const exporter = f.get('exp_name');
  const ino = whole(f.get('ino'));
  const sizeBytes = whole(f.get('size'));
  const count = whole(f.get('count'));
  if (exporter === undefined || [ino, sizeBytes, count].some(Number.isNaN)) return undefined;
  // The name line is printed only when a name was set; an empty name reads the same as none.
  const name = f.get('name');
  return { ino, sizeBytes, count, exporter, name: name ? name : null };
}

/** One CPU mapping of a dma-buf: a VMA whose file is the buffer (each holds a reference). */
export interface DmabufMapping {
  readonly ino: number;
  readonly name: string | null;
  readonly start: string;
  readonly end: string;
}

/** The /dmabuf: lines of /proc/<pid>/maps; the inode column is the buffer's ino. */
export function parseMaps(text: string): DmabufMapping[] {
  const out: DmabufMapping[] = [];
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+)\s+\S+\s+[0-9a-f]+\s+\S+\s+(\d+)\s+\/dmabuf:(.*)$/.exec(
      line,
    );
    if (!m?.[1] || !m[2] || !m[3]) continue;
    out.push({ start: m[1], end: m[2], ino: Number(m[3]), name: m[4] ? m[4] : null });
  }
  return out;
}

/** comm and start time (clock ticks since boot) from /proc/<pid>/stat: start time tells a pid reused. */
export interface ProcessStat {
  readonly comm: string;
  readonly startTime: number;
}

export function parseStat(text: string): ProcessStat | undefined {
  // comm is in parentheses and may itself hold spaces and ')': the last ')' ends it.
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  const rest = text
    .slice(close + 2)
    .trim()
    .split(/\s+/);
  // rest[0] is field 3 (state); starttime is field 22.
  const startTime = whole(rest[19]);
  if (Number.isNaN(startTime)) return undefined;
  return { comm: text.slice(open + 1, close), startTime };
}

/** One buffer as debugfs bufinfo lists it (dma_buf_debug_show), with its attached devices. */
export interface BufinfoEntry {
  readonly ino: number;
  readonly sizeBytes: number;
  /** References to the buffer's file (file_count). */
  readonly count: number;
  readonly exporter: string;
  /** null for `<none>`. */
  readonly name: string | null;
  /** dev_name() of each attached device: a PCI address, a platform device name. */
  readonly attachedDevices: readonly string[];
}

/**
 * Every buffer in /sys/kernel/debug/dma_buf/bufinfo. The object line is
 * `size flags mode count exp_name ino name`, tab-separated, numbers zero-padded; fence lines
 * (dma_resv_describe) and the attachment list follow, each indented by a tab.
 */
export function parseBufinfo(text: string): BufinfoEntry[] {
  const out: BufinfoEntry[] = [];
  let current: { entry: Omit<BufinfoEntry, 'attachedDevices'>; devices: string[] } | undefined;
  let inDevices = false;
  const flush = () => {
    if (current) out.push({ ...current.entry, attachedDevices: current.devices });
    current = undefined;
    inDevices = false;
  };
  for (const line of text.split('\n')) {
    const cols = line.split('\t');
    if (/^\d+$/.test(cols[0] ?? '') && cols.length >= 7) {
      flush();
      const name = cols.slice(6).join('\t');
      current = {
        entry: {
          sizeBytes: Number(cols[0]),
          count: whole(cols[3]),
          exporter: cols[4] ?? '',
          ino: whole(cols[5]),
          name: name === '<none>' || name === '' ? null : name,
        },
        devices: [],
      };
      continue;
    }
    if (!current) continue;
    if (line === '\tAttached Devices:') inDevices = true;
    else if (/^Total \d+ devices attached/.test(line)) flush();
    else if (inDevices && line.startsWith('\t')) current.devices.push(line.slice(1).trim());
  }
  flush();
  return out.filter((e) => !Number.isNaN(e.ino) && !Number.isNaN(e.count));
}

/** One memory region of `rdma resource show mr -j` (iproute2): whose process registered it. */
export interface RdmaMr {
  readonly device: string;
  readonly mrn: number;
  readonly lengthBytes: number | null;
  /** Absent for a kernel MR. */
  readonly pid: number | null;
  readonly comm: string;
}

const RdmaMrJson = z.object({
  ifname: z.string(),
  mrn: z.number(),
  mrlen: z.number().optional(),
  pid: z.number().optional(),
  comm: z.string().optional(),
});

/** The MR table; throws RdmaOutputError when the text is not the JSON array iproute2 prints. */
export function parseRdmaMrs(text: string): RdmaMr[] {
  let json: unknown;
  try {
    json = JSON.parse(text.trim() === '' ? '[]' : text);
  } catch (err) {
    throw new RdmaOutputError(
      `rdma resource show mr -j printed no JSON: ${(err as Error).message}`,
    );
  }
  if (!Array.isArray(json)) throw new RdmaOutputError('rdma resource show mr -j: not a JSON array');
  const out: RdmaMr[] = [];
  for (const item of json) {
    const mr = RdmaMrJson.safeParse(item);
    if (!mr.success) continue;
    out.push({
      device: mr.data.ifname,
      mrn: mr.data.mrn,
      lengthBytes: mr.data.mrlen ?? null,
      pid: mr.data.pid ?? null,
      comm: mr.data.comm ?? '',
    });
  }
  return out;
}

export class RdmaOutputError extends Error {
  override name = 'RdmaOutputError';
}
