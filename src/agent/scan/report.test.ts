import { describe, expect, it } from 'vitest';
import type { NodeObservation } from '../backends/linux/index.ts';
import { scanJson, scanText } from './report.ts';

const observation: NodeObservation = {
  buffers: [
    {
      inode: 1,
      exporter: 'habanalabs',
      name: 'weights',
      sizeBytes: 1048576,
      count: 2,
      attachedDevices: ['0000:3b:00.0'],
      unaccountedReferences: 0,
      holders: [
        {
          pid: 4711,
          comm: 'loader',
          startTime: 9,
          fds: [4],
          mappings: 1,
          pod: { uid: 'u-1', containerID: 'c-1' },
        },
      ],
    },
    {
      inode: 2,
      exporter: 'habanalabs',
      name: null,
      sizeBytes: 4096,
      count: 1,
      attachedDevices: [],
      unaccountedReferences: 1,
      holders: [],
    },
  ],
  deviceHolders: [],
  mrHolders: [],
  problems: [],
  vanished: 0,
};

describe('scanJson', () => {
  it('has exactly the documented shape', () => {
    expect(scanJson(observation)).toEqual({
      buffers: [
        {
          inode: 1,
          exporter: 'habanalabs',
          name: 'weights',
          sizeBytes: 1048576,
          count: 2,
          attachedDevices: ['0000:3b:00.0'],
          unaccountedReferences: 0,
          holders: [
            {
              pid: 4711,
              comm: 'loader',
              fds: [4],
              mappings: 1,
              pod: { uid: 'u-1', containerID: 'c-1' },
            },
          ],
        },
        {
          inode: 2,
          exporter: 'habanalabs',
          name: null,
          sizeBytes: 4096,
          count: 1,
          attachedDevices: [],
          unaccountedReferences: 1,
          holders: [],
        },
      ],
      deviceHolders: [],
      mrHolders: [],
      problems: [],
    });
  });
});

describe('scanText', () => {
  it('says the node holds nothing only when the read was complete', () => {
    const empty = { ...observation, buffers: [] };
    expect(scanText(empty, ['drm'])).toBe('no dma-buf of exporter drm on this node\n');
    const partial = { ...empty, problems: [{ kind: 'debugfs-unreadable' as const, message: 'x' }] };
    expect(scanText(partial, ['drm'])).toMatch(/incomplete/);
  });
  it('names each holder and its pod under its buffer', () => {
    const text = scanText(observation, ['habanalabs']);
    expect(text).toMatch(
      /inode 1 habanalabs "weights": 1048576 bytes, 2 reference\(s\), attached to 0000:3b:00.0/,
    );
    expect(text).toMatch(/ {2}pid 4711 \(loader\) fd 4, 1 mapping\(s\): pod u-1 container c-1/);
    expect(text).toMatch(
      /inode 2 habanalabs \(unnamed\)[\s\S]*1 reference\(s\) held by no fd or mapping/,
    );
  });
});
