// `npm run cluster:down`: stop every control-plane process and delete the cluster state.
import { down } from './index.ts';

try {
  await down();
} catch (err) {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
}
