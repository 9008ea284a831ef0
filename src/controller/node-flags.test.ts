import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CONTROLLER_NODE_FLAGS, CONTROLLER_SEMI_SPACE_MIB } from './node-flags.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

describe("the controller's node flags", () => {
  const flags = CONTROLLER_NODE_FLAGS.join(' ');

  it('are what the image, npm start and the chart run it with', () => {
    expect(read('Dockerfile')).toContain(
      `CMD [${[...CONTROLLER_NODE_FLAGS, 'src/controller/main.ts'].map((a) => JSON.stringify(a)).join(', ')}]`,
    );
    const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
    expect(pkg.scripts.start).toBe(`node ${flags} src/controller/main.ts`);
    const values = parse(read('charts/accel-lease/values.yaml')) as {
      controller: { maxSemiSpaceSizeMiB: number };
    };
    expect(values.controller.maxSemiSpaceSizeMiB).toBe(CONTROLLER_SEMI_SPACE_MIB);
    expect(read('charts/accel-lease/templates/controller-deployment.yaml')).toMatch(
      /- --max-semi-space-size=\{\{ \$c\.maxSemiSpaceSizeMiB \}\}\n\s+- src\/controller\/main\.ts/,
    );
  });

  it('are what the rendered manifests run it with', () => {
    for (const file of ['deploy/accel-lease.yaml', 'deploy/dra/accel-lease.yaml'])
      expect(read(file), file).toMatch(new RegExp(`- ${flags}\\n\\s+- src/controller/main\\.ts`));
  });
});
