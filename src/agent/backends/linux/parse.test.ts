import { describe, expect, it } from 'vitest';
import {
  parseBufinfo,
  parseFdinfo,
  parseMaps,
  parseRdmaMrs,
  parseStat,
  RdmaOutputError,
} from './parse.ts';

// Text as Debian's 6.1 kernel printed it in the real-kernel suite's guest (vgem exports).
const FDINFO_NAMED =
  'pos:\t0\nflags:\t02000002\nmnt_id:\t11\nino:\t1\nsize:\t1048576\ncount:\t5\nexp_name:\tdrm\nname:\tweights\n';
const FDINFO_UNNAMED =
  'pos:\t0\nflags:\t02000002\nmnt_id:\t11\nino:\t2\nsize:\t8192\ncount:\t3\nexp_name:\tdrm\n';
const FDINFO_DEVICE = 'pos:\t0\nflags:\t02100002\nmnt_id:\t23\nino:\t99\n';
const BUFINFO = [
  '',
  'Dma-buf Objects:',
  'size    \tflags   \tmode    \tcount   \texp_name\tino     \tname',
  '00008192\t00000002\t00080007\t00000003\tdrm\t00000002\t<none>',
  '\tAttached Devices:',
  'Total 0 devices attached',
  '',
  '01048576\t00000002\t00080007\t00000005\tdrm\t00000001\tweights',
  '\tAttached Devices:',
  'Total 0 devices attached',
  '',
  '',
  'Total 2 objects, 1056768 bytes',
  '',
].join('\n');

describe('parseFdinfo', () => {
  it('reads a named dma-buf', () => {
    expect(parseFdinfo(FDINFO_NAMED)).toEqual({
      ino: 1,
      sizeBytes: 1048576,
      count: 5,
      exporter: 'drm',
      name: 'weights',
    });
  });
  it('gives null for a buffer with no name line', () => {
    expect(parseFdinfo(FDINFO_UNNAMED)?.name).toBeNull();
  });
  it('refuses the fdinfo of anything else', () => {
    expect(parseFdinfo(FDINFO_DEVICE)).toBeUndefined();
    expect(parseFdinfo('')).toBeUndefined();
  });
  it('keeps a name with spaces whole', () => {
    expect(parseFdinfo(FDINFO_NAMED.replace('weights', 'my weights 2'))?.name).toBe('my weights 2');
  });
});

describe('parseMaps', () => {
  const maps = [
    '00400000-00401000 r--p 00000000 00:02 17                                 /bin/dmabuf-holder',
    '7f03be9df000-7f03beadf000 rw-s 100000000 00:0a 1                         /dmabuf:weights',
    '7f03beae0000-7f03beae2000 rw-s 100000000 00:0a 2                         /dmabuf:',
    '7ffd1000-7ffd2000 rw-p 00000000 00:00 0                                  [stack]',
  ].join('\n');
  it('finds each dma-buf VMA with the buffer inode from the inode column', () => {
    expect(parseMaps(maps)).toEqual([
      { start: '7f03be9df000', end: '7f03beadf000', ino: 1, name: 'weights' },
      { start: '7f03beae0000', end: '7f03beae2000', ino: 2, name: null },
    ]);
  });
  it('finds nothing in a process without dma-buf mappings', () => {
    expect(parseMaps(maps.split('\n')[0] ?? '')).toEqual([]);
  });
});

describe('parseStat', () => {
  it('reads comm and start time, even when comm holds spaces and parentheses', () => {
    const rest = 'S 112 0 0 0 -1 4194560 50 0 0 0 1 4 0 0 20 0 1 0 1141 2072576 1';
    expect(parseStat(`113 (dmabuf-holder) ${rest}`)).toEqual({
      comm: 'dmabuf-holder',
      startTime: 1141,
    });
    expect(parseStat(`113 (a) b (c)) ${rest}`)).toEqual({ comm: 'a) b (c)', startTime: 1141 });
  });
  it('refuses a truncated line', () => {
    expect(parseStat('113 (x) S 1')).toBeUndefined();
  });
});

describe('parseBufinfo', () => {
  it('reads every object of the real format', () => {
    expect(parseBufinfo(BUFINFO)).toEqual([
      { ino: 2, sizeBytes: 8192, count: 3, exporter: 'drm', name: null, attachedDevices: [] },
      {
        ino: 1,
        sizeBytes: 1048576,
        count: 5,
        exporter: 'drm',
        name: 'weights',
        attachedDevices: [],
      },
    ]);
  });
  it('lists attached devices and skips fence lines', () => {
    const text = [
      'Dma-buf Objects:',
      'size    \tflags   \tmode    \tcount   \texp_name\tino     \tname',
      '1073741824\t00000002\t00080007\t00000004\thabanalabs\t00004711\tweights',
      '\tExclusive fence: habanalabs 0 signalled',
      '\tAttached Devices:',
      '\t0000:3b:00.0',
      '\t0000:86:00.1',
      'Total 2 devices attached',
      '',
      'Total 1 objects, 1073741824 bytes',
    ].join('\n');
    expect(parseBufinfo(text)).toEqual([
      {
        ino: 4711,
        sizeBytes: 1073741824,
        count: 4,
        exporter: 'habanalabs',
        name: 'weights',
        attachedDevices: ['0000:3b:00.0', '0000:86:00.1'],
      },
    ]);
  });
  it('is empty for a node with no buffers', () => {
    expect(
      parseBufinfo(
        '\nDma-buf Objects:\nsize\tflags\tmode\tcount\texp_name\tino\tname\n\nTotal 0 objects, 0 bytes\n',
      ),
    ).toEqual([]);
  });
});

describe('parseRdmaMrs', () => {
  it('reads user MRs with pid and comm, and kernel MRs without', () => {
    const text = JSON.stringify([
      {
        ifindex: 3,
        ifname: 'rxe0',
        mrn: 4,
        rkey: '0x1f3',
        lkey: '0x1f3',
        mrlen: 4096,
        pdn: 2,
        pid: 431,
        comm: 'ibv_rc_pingpong',
      },
      { ifindex: 3, ifname: 'rxe0', mrn: 1, mrlen: 0, pdn: 1, comm: '[ib_core]' },
    ]);
    expect(parseRdmaMrs(text)).toEqual([
      { device: 'rxe0', mrn: 4, lengthBytes: 4096, pid: 431, comm: 'ibv_rc_pingpong' },
      { device: 'rxe0', mrn: 1, lengthBytes: 0, pid: null, comm: '[ib_core]' },
    ]);
  });
  it('treats no output as no MRs and refuses text that is not the JSON array', () => {
    expect(parseRdmaMrs('')).toEqual([]);
    expect(() => parseRdmaMrs('link rxe0/1 state ACTIVE')).toThrow(RdmaOutputError);
    expect(() => parseRdmaMrs('{}')).toThrow(RdmaOutputError);
  });
});
