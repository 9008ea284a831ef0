#!/usr/bin/env node
// Entry point of the kubectl plugin (`kubectl dmabuf`, via bin/kubectl-dmabuf): status and why.
import { run } from './run.ts';

process.exitCode = await run(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  now: () => Date.now(),
});
