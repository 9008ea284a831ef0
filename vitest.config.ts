// Three test projects: `unit` (pure logic, no cluster, fast), `cluster` (against a real
// kube-apiserver) and `kernel` (the Linux backend against a real kernel booted under QEMU).
import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: [
            'src/**/*.test.ts',
            'bench/**/*.test.ts',
            'test/**/*.test.ts',
            // The chaos suite's own judgement: pure, no cluster.
            'e2e/chaos/**/*.test.ts',
          ],
        },
      },
      {
        test: {
          name: 'cluster',
          include: ['e2e/**/*.test.ts'],
          exclude: [...configDefaults.exclude, 'e2e/guest/**', 'e2e/chaos/**'],
          globalSetup: ['e2e/harness/global-setup.ts'],
          // Controllers under test watch every accelerator in the cluster: one file at a time.
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 600_000,
        },
      },
      {
        test: {
          name: 'kernel',
          include: ['e2e/guest/**/*.test.ts'],
          // After the others: the guest takes a whole core, which the cluster tests' timing needs.
          sequence: { groupOrder: 1 },
          // One guest at a time: each takes a core for a minute or more under TCG.
          fileParallelism: false,
          testTimeout: 60_000,
          // The first run builds the guest (about 30 s), then the guest boots and runs.
          hookTimeout: 900_000,
        },
      },
    ],
  },
});
