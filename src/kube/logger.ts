// One way to make a logger: JSON lines on stdout, a level from --log-level, and credentials
// redacted wherever they appear in a logged object.
import { pino, type Logger, type LevelWithSilent } from 'pino';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

// pino redacts by path; cover the field at the top and up to two levels down (err.config.*).
const SECRET_FIELDS = ['authorization', 'Authorization', 'token', 'bearer', 'password'];
const REDACT_PATHS = SECRET_FIELDS.flatMap((f) => [f, `*.${f}`, `*.*.${f}`]);

export interface LoggerOptions {
  level?: LogLevel | LevelWithSilent;
  /** Component name, e.g. accel-lease-controller; becomes the `name` field. */
  name?: string;
  /** Where lines go (tests pass a stream to capture them); stdout by default. */
  destination?: pino.DestinationStream;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const options: pino.LoggerOptions = {
    level: opts.level ?? 'info',
    redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
    ...(opts.name ? { name: opts.name } : {}),
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}
