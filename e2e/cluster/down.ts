// `npm run cluster:down`: stop every control-plane process and delete the cluster state.
import { downByHand } from './index.ts';

const log = (line: string) => process.stderr.write(`[cluster] ${line}\n`);

try {
  await downByHand(log);
} catch (err) {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
}
