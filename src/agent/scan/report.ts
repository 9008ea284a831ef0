// What `scan` prints: the JSON contract (README, "The scan command") and a table for people.
// Pure: from one observation of the node to text.
import type { NodeObservation, ProcessRef } from '../backends/linux/index.ts';

interface PodJson {
  readonly uid: string;
  readonly containerID: string | null;
}

const pod = (p: ProcessRef): PodJson | null =>
  p.pod ? { uid: p.pod.uid, containerID: p.pod.containerID } : null;

/** The scan's JSON document; its field names and meanings are a contract, do not rename them. */
export function scanJson(obs: NodeObservation) {
  return {
    buffers: obs.buffers.map((b) => ({
      inode: b.inode,
      exporter: b.exporter,
      name: b.name,
      sizeBytes: b.sizeBytes,
      count: b.count,
      attachedDevices: b.attachedDevices,
      unaccountedReferences: b.unaccountedReferences,
      holders: b.holders.map((h) => ({
        pid: h.pid,
        comm: h.comm,
        fds: h.fds,
        mappings: h.mappings,
        pod: pod(h),
      })),
    })),
    deviceHolders: obs.deviceHolders.map((h) => ({
      device: h.device,
      pid: h.pid,
      comm: h.comm,
      fds: h.fds,
      pod: pod(h),
    })),
    mrHolders: obs.mrHolders.map((h) => ({ pid: h.pid, comm: h.comm, mrs: h.mrs, pod: pod(h) })),
    problems: obs.problems.map((p) => ({ kind: p.kind, message: p.message })),
  };
}

export type ScanJson = ReturnType<typeof scanJson>;

const where = (p: ProcessRef) =>
  p.pod
    ? `pod ${p.pod.uid}${p.pod.containerID ? ` container ${p.pod.containerID.slice(0, 13)}` : ''}`
    : 'no pod';

/** Lines for a terminal: each buffer, then its holders indented beneath it. */
export function scanText(obs: NodeObservation, exporters: readonly string[]): string {
  const lines: string[] = [];
  if (obs.buffers.length === 0) {
    // An incomplete read must not look like an empty node.
    lines.push(
      obs.problems.length === 0
        ? `no dma-buf of exporter ${exporters.join(', ')} on this node`
        : `no dma-buf of exporter ${exporters.join(', ')} found, but the scan is incomplete (see the warnings)`,
    );
  }
  for (const b of obs.buffers) {
    const devices =
      b.attachedDevices === null
        ? 'attachments unknown'
        : `attached to ${b.attachedDevices.length === 0 ? 'no device' : b.attachedDevices.join(', ')}`;
    lines.push(
      `inode ${b.inode} ${b.exporter} ${b.name === null ? '(unnamed)' : JSON.stringify(b.name)}: ` +
        `${b.sizeBytes} bytes, ${b.count} reference(s), ${devices}`,
    );
    for (const h of b.holders) {
      const what = [
        h.fds.length > 0 ? `fd ${h.fds.join(',')}` : '',
        h.mappings > 0 ? `${h.mappings} mapping(s)` : '',
      ].filter(Boolean);
      lines.push(`  pid ${h.pid} (${h.comm}) ${what.join(', ')}: ${where(h)}`);
    }
    if (b.unaccountedReferences > 0) {
      lines.push(
        `  ${b.unaccountedReferences} reference(s) held by no fd or mapping (an exporter handle, an attachment, an MR)`,
      );
    }
  }
  for (const h of obs.deviceHolders) {
    lines.push(`device ${h.device}: pid ${h.pid} (${h.comm}) fd ${h.fds.join(',')}: ${where(h)}`);
  }
  for (const h of obs.mrHolders) {
    lines.push(`rdma: pid ${h.pid} (${h.comm}) holds ${h.mrs} MR(s): ${where(h)}`);
  }
  return `${lines.join('\n')}\n`;
}
