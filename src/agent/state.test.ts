// The state file: atomic replacement, and refusals that name the file and the bad field.
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FakeNode, NODE } from '../../test/fixtures/agent.ts';
import { parseStateFile, readStateFile, toStateFile, writeStateFile } from './state.ts';

describe('state file', () => {
  it('writes atomically (no temporary file left) and reads back what it wrote', () => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-state-'));
    const path = join(dir, 'nested', 'agent-node-a.json');
    expect(readStateFile(path)).toBeUndefined();
    const n = new FakeNode();
    writeStateFile(path, JSON.stringify(toStateFile(n.state)));
    writeStateFile(path, JSON.stringify(toStateFile(n.state)));
    expect(readdirSync(join(dir, 'nested'))).toEqual(['agent-node-a.json']);
    const back = parseStateFile(readFileSync(path, 'utf8'), NODE, path);
    expect(back.kernel.toJSON()).toEqual(n.kernel().toJSON());
  });

  it('refuses another node, a foreign version, a broken kernel and non-JSON', () => {
    const good = toStateFile(new FakeNode().state);
    expect(() => parseStateFile(JSON.stringify(good), 'node-b', 'f.json')).toThrow(
      'state file f.json belongs to node node-a, not node-b',
    );
    expect(() => parseStateFile(JSON.stringify({ ...good, version: 9 }), NODE, 'f.json')).toThrow(
      /state file f.json is invalid at version/,
    );
    expect(() =>
      parseStateFile(JSON.stringify({ ...good, kernel: { version: 1 } }), NODE, 'f.json'),
    ).toThrow(/state file f.json: kernel snapshot is invalid at \$.devices/);
    expect(() => parseStateFile('{', NODE, 'f.json')).toThrow(/state file f.json is not JSON/);
  });
});
