// Builds bench/drain (kubectl drain's library code with a settable request rate) into the binary
// cache, keyed by its sources, so a bench run builds it once and reuses it after.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { cacheRoot, findGo } from '../../e2e/cluster/index.ts';

const DIR = import.meta.dirname;

/** The cached binary's path for the current sources (built or not). */
export function drainBinaryPath(): string {
  const hash = createHash('sha256');
  for (const file of ['go.mod', 'go.sum', 'main.go']) hash.update(readFileSync(join(DIR, file)));
  return join(cacheRoot(), 'bin', `bench-drain-${hash.digest('hex').slice(0, 12)}`, 'drain');
}

/** The binary, built first if missing (from the module cache or the Go module proxy). */
export async function ensureDrainBinary(log: (s: string) => void): Promise<string> {
  const out = drainBinaryPath();
  if (existsSync(out)) return out;
  log(`  building bench/drain into ${out}`);
  mkdirSync(join(out, '..'), { recursive: true });
  const started = Date.now();
  await promisify(execFile)(findGo(), ['build', '-o', `${out}.tmp`, '.'], {
    cwd: DIR,
    // GOWORK=off: a go.work above the checkout must not change what the pins select.
    env: { ...process.env, GOWORK: 'off', GOFLAGS: '-mod=readonly -buildvcs=false' },
    maxBuffer: 16 << 20,
  });
  renameSync(`${out}.tmp`, out);
  log(`  built bench/drain in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return out;
}
