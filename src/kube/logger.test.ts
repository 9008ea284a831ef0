import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from './logger.ts';

function capture(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  return { lines, stream };
}

describe('createLogger', () => {
  it('redacts authorization, token and bearer fields at any of the first levels', () => {
    const { lines, stream } = capture();
    const log = createLogger({ destination: stream });
    log.info({ token: 's3cret', headers: { authorization: 'Bearer s3cret' } }, 'hello');
    log.info({ req: { headers: { bearer: 's3cret' } } }, 'nested');
    const out = lines.join('');
    expect(out).not.toContain('s3cret');
    expect(out).toContain('[REDACTED]');
    expect(out).toContain('"msg":"hello"');
  });

  it('honours the level', () => {
    const { lines, stream } = capture();
    const log = createLogger({ level: 'warn', destination: stream });
    log.info('quiet');
    log.warn('loud');
    expect(lines.join('')).not.toContain('quiet');
    expect(lines.join('')).toContain('loud');
  });
});
