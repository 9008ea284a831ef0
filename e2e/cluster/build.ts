// `npm run cluster:build`: build (or find cached) the control-plane binaries and list them.
import { binaryPaths, ensureBinaries, GoToolchainMissingError, pinnedVersions } from './index.ts';

try {
  for (const [module, version] of Object.entries(pinnedVersions())) {
    process.stdout.write(`${module} ${version}\n`);
  }
  await ensureBinaries();
  for (const [name, path] of Object.entries(binaryPaths()))
    process.stdout.write(`${name}: ${path}\n`);
} catch (err) {
  if (err instanceof GoToolchainMissingError) process.stderr.write(`${err.message}\n`);
  else process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
}
