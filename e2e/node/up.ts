// `npm run cluster:node`: add the real node real-0 to the local control plane (starting the
// control plane first when it is not up), with the project's image imported, and keep it until
// `npm run cluster:down`.
import { relative } from 'node:path';
import { GoToolchainMissingError, kubeconfigPath, upByHand } from '../cluster/index.ts';
import {
  ensureAppImage,
  importImage,
  NODE_NAME,
  RealNodeUnavailableError,
  startNode,
} from './index.ts';

const log = (line: string) => process.stderr.write(`[node] ${line}\n`);

try {
  const started = Date.now();
  await upByHand(log);
  const node = await startNode(log);
  await importImage(await ensureAppImage(log), log);
  const kubeconfig = relative(process.cwd(), kubeconfigPath()) || kubeconfigPath();
  process.stderr.write(
    `\n[node] ${NODE_NAME} ${node.reused ? 'reused' : 'started'}; ready in ` +
      `${((Date.now() - started) / 1000).toFixed(1)}s in all. Try:\n` +
      `  kubectl --kubeconfig ${kubeconfig} get nodes -o wide\n` +
      `  (stop it with npm run cluster:down)\n`,
  );
} catch (err) {
  if (err instanceof GoToolchainMissingError || err instanceof RealNodeUnavailableError) {
    process.stderr.write(`${err.message}\n`);
  } else process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
}
