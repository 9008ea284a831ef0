// `npm run cluster:up`: start the local control plane (or reuse the running one) and print its
// kubeconfig. `npm run cluster:down` stops it.
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { GoToolchainMissingError, upByHand } from './index.ts';

const log = (line: string) => process.stderr.write(`[cluster] ${line}\n`);

try {
  const started = Date.now();
  const result = await upByHand(log);
  const path = relative(process.cwd(), result.kubeconfigPath) || result.kubeconfigPath;
  process.stdout.write(readFileSync(result.kubeconfigPath, 'utf8'));
  process.stderr.write(
    `\n[cluster] up in ${((Date.now() - started) / 1000).toFixed(1)}s. Try:\n` +
      `  kubectl --kubeconfig ${path} get nodes\n` +
      `  (kubectl ${result.bins.kubectl} matches the server version)\n`,
  );
} catch (err) {
  if (err instanceof GoToolchainMissingError) process.stderr.write(`${err.message}\n`);
  else process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
}
