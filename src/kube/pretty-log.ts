// `--log-format pretty`: pino's JSON lines rewritten for a terminal, one line per record:
// `15:04:05.000 INFO  owner dropped device=node-a-hl0 epoch=2 pins=[...]`.
import { Writable } from 'node:stream';

const LEVELS: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO ',
  40: 'WARN ',
  50: 'ERROR',
  60: 'FATAL',
};
const OMIT = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name']);

/** One JSON log line as text; anything that is not a pino record passes through unchanged. */
export function prettyLine(line: string): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const time = typeof rec.time === 'number' ? new Date(rec.time).toISOString().slice(11, 23) : '';
  const level = LEVELS[typeof rec.level === 'number' ? rec.level : 30] ?? 'INFO ';
  const fields = Object.entries(rec)
    .filter(([k]) => !OMIT.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return [time, level, typeof rec.msg === 'string' ? rec.msg : '', ...fields].join(' ').trim();
}

/** A destination for pino that writes pretty lines to `out` (stdout by default). */
export function prettyDestination(out: NodeJS.WritableStream = process.stdout): Writable {
  let pending = '';
  return new Writable({
    write(chunk: Buffer | string, _enc, done) {
      pending += chunk.toString();
      let nl: number;
      let text = '';
      while ((nl = pending.indexOf('\n')) >= 0) {
        text += `${prettyLine(pending.slice(0, nl))}\n`;
        pending = pending.slice(nl + 1);
      }
      if (text) out.write(text);
      done();
    },
  });
}
