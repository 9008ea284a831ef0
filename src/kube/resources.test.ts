import { describe, expect, it } from 'vitest';
import { apiVersionOf, resourcePath, type ResourceType } from './resources.ts';

const WIDGETS: ResourceType = {
  group: 'example.com',
  version: 'v1',
  plural: 'widgets',
  kind: 'Widget',
  namespaced: true,
};
const NODES: ResourceType = {
  group: '',
  version: 'v1',
  plural: 'nodes',
  kind: 'Node',
  namespaced: false,
};

describe('resourcePath', () => {
  it('builds core, group, namespaced, cluster-scoped and subresource paths', () => {
    expect(resourcePath(NODES, undefined, 'node-a', 'status')).toBe('/api/v1/nodes/node-a/status');
    expect(resourcePath(NODES, 'ignored', 'node-a')).toBe('/api/v1/nodes/node-a');
    expect(resourcePath(WIDGETS, 'team-a', 'w/1')).toBe(
      '/apis/example.com/v1/namespaces/team-a/widgets/w%2F1',
    );
    expect(resourcePath(WIDGETS)).toBe('/apis/example.com/v1/widgets');
    expect(
      resourcePath(
        { group: '', version: 'v1', plural: 'pods', kind: 'Pod', namespaced: true },
        'ns',
      ),
    ).toBe('/api/v1/namespaces/ns/pods');
  });

  it('names the core group by version alone', () => {
    expect(apiVersionOf(NODES)).toBe('v1');
    expect(apiVersionOf(WIDGETS)).toBe('example.com/v1');
  });
});
