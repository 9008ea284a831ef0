// `npm run cluster:down`: stop the real node if one runs, then every control-plane process, and
// delete the cluster state.
import { stopNode } from '../node/index.ts';
import { downByHand } from './index.ts';

const log = (line: string) => process.stderr.write(`[cluster] ${line}\n`);

try {
  await stopNode(log);
  await downByHand(log);
} catch (err) {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
}
