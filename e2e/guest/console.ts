// Reading a scenario's serial console: the `HOLDER <role> READY ...` lines its processes print
// about themselves, and the blocks it prints between `BEGIN <what> <label>` and `END ...`.

export interface HolderTruth {
  readonly pid: number;
  readonly ino: number;
  readonly sizeBytes: number;
  /** -1 when the holder closed it (or never had one). */
  readonly fd: number;
  readonly mapped: boolean;
  /** The DRM device fd, -1 when none. */
  readonly device: number;
}

export function holders(console: string): Map<string, HolderTruth> {
  const out = new Map<string, HolderTruth>();
  const re =
    /^HOLDER (\S+) READY pid=(\d+) ino=(\d+) size=(\d+) fd=(-?\d+) mapped=([01]) device=(-?\d+)$/gm;
  for (const m of console.matchAll(re)) {
    out.set(m[1] ?? '', {
      pid: Number(m[2]),
      ino: Number(m[3]),
      sizeBytes: Number(m[4]),
      fd: Number(m[5]),
      mapped: m[6] === '1',
      device: Number(m[7]),
    });
  }
  return out;
}

/** The text between `BEGIN what label` and `END what label[ exit]`; throws when it is missing. */
export function block(
  console: string,
  what: string,
  label: string,
): { text: string; exit: number | undefined } {
  const begin = `BEGIN ${what} ${label}\n`;
  const start = console.indexOf(begin);
  const endRe = new RegExp(`^END ${what} ${label}(?: (\\d+))?$`, 'm');
  const rest = start < 0 ? '' : console.slice(start + begin.length);
  const end = endRe.exec(rest);
  if (start < 0 || !end) throw new Error(`the guest printed no complete "${what} ${label}" block`);
  return {
    text: rest.slice(0, end.index),
    exit: end[1] === undefined ? undefined : Number(end[1]),
  };
}
