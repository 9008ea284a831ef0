// Builds the real-kernel guest from Debian's packages: the stock kernel, the modules the suite
// needs (vgem, 9p over virtio) and an initramfs with busybox and the dma-buf holder, cached per
// kernel version and recipe under ~/.cache/accel-lease/guest so later runs boot at once.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { cacheRoot } from '../cluster/binaries.ts';
import { withLock } from '../cluster/lock.ts';
import { cpioArchive, type CpioEntry } from './cpio.ts';

/** Bump when the way the guest is built changes, so guests built the old way are not reused. */
const RECIPE = 1;
const KERNEL_PACKAGE = 'linux-image-amd64';
const BUSYBOX_PACKAGE = 'busybox-static';
/** The soft-RoCE provider of libibverbs, for the MR table (the guest uses the host's libibverbs). */
const VERBS_PACKAGE = 'ibverbs-providers';
/**
 * Loaded in this order's dependency closure: the dma-buf exporter, the 9p shares, and soft-RoCE
 * on a dummy netdev for real MRs (rxe computes its ICRC with crc32, which nothing autoloads).
 */
const MODULES = ['vgem', 'virtio_pci', '9pnet_virtio', '9p', 'crc32_generic', 'rdma_rxe', 'dummy'];

const here = import.meta.dirname;

export interface GuestImage {
  readonly kernel: string;
  readonly initrd: string;
  /** The Debian kernel package it came from, e.g. linux-image-6.1.0-57-amd64 6.1.192-3. */
  readonly release: string;
}

/** The guest cannot be built here; the message says what to install or run. */
export class GuestBuildError extends Error {
  override name = 'GuestBuildError';
}

export type Log = (line: string) => void;
const defaultLog: Log = (line) => process.stderr.write(`[guest:build] ${line}\n`);

function run(cmd: string, args: string[], cwd?: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  if (r.error) {
    const missing = (r.error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new GuestBuildError(
      missing
        ? `${cmd} not found: the guest is built with Debian's apt and dpkg and gcc`
        : `${cmd} ${args.join(' ')}: ${r.error.message}`,
    );
  }
  if (r.status !== 0) {
    const out = `${r.stderr}${r.stdout}`.trim().split('\n').slice(-3).join(' | ');
    throw new GuestBuildError(`${cmd} ${args.join(' ')} exited ${r.status}: ${out}`);
  }
  return r.stdout;
}

/** `Field: value` of the candidate version apt would install. */
function aptField(pkg: string, field: string): string {
  let text: string;
  try {
    text = run('apt-cache', ['show', '--no-all-versions', pkg]);
  } catch (err) {
    if (/not found/.test((err as Error).message)) throw err;
    throw new GuestBuildError(
      `apt does not know ${pkg} (${(err as Error).message}): run apt-get update`,
    );
  }
  const m = new RegExp(`^${field}: (.*)$`, 'm').exec(text);
  if (!m?.[1]) throw new GuestBuildError(`apt-cache show ${pkg} has no ${field} field`);
  return m[1].trim();
}

/** The concrete kernel package the metapackage points to, and its version. */
function resolveKernel(): { pkg: string; version: string } {
  const depends = aptField(KERNEL_PACKAGE, 'Depends');
  const pkg = /linux-image-[0-9][^\s,]*/.exec(depends)?.[0];
  if (!pkg) throw new GuestBuildError(`${KERNEL_PACKAGE} depends on no kernel: ${depends}`);
  return { pkg, version: aptField(pkg, 'Version') };
}

function recipeKey(kernel: { pkg: string; version: string }, busybox: string): string {
  const hash = createHash('sha256').update(`recipe ${RECIPE}\n${kernel.pkg} ${kernel.version}\n`);
  hash.update(`${busybox}\n${MODULES.join(',')}\n`);
  for (const file of ['build.ts', 'cpio.ts', 'init.sh', 'dmabuf-holder.c', 'mr-holder.c'])
    hash.update(readFileSync(join(here, file)));
  return hash.digest('hex').slice(0, 12);
}

/** Every `.ko` under the modules tree by module name (`-` and `_` are the same to modprobe). */
function indexModules(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ko')) out.set(e.name.slice(0, -3).replace(/-/g, '_'), p);
    }
  };
  walk(root);
  return out;
}

/** A module's `depends=` from its .modinfo section (what depmod would read). */
function moduleDepends(ko: string): string[] {
  const m = /depends=([^\0]*)\0/.exec(readFileSync(ko).toString('latin1'));
  return (m?.[1] ?? '')
    .split(',')
    .filter(Boolean)
    .map((d) => d.replace(/-/g, '_'));
}

/** Dependencies first: the order insmod must load them in. */
export function loadOrder(
  wanted: readonly string[],
  dependsOf: (name: string) => readonly string[],
): string[] {
  const order: string[] = [];
  const visiting = new Set<string>();
  const visit = (name: string) => {
    if (order.includes(name)) return;
    if (visiting.has(name)) throw new GuestBuildError(`module dependency cycle at ${name}`);
    visiting.add(name);
    for (const dep of dependsOf(name)) visit(dep);
    visiting.delete(name);
    order.push(name);
  };
  for (const name of wanted) visit(name);
  return order;
}

function elapsed(since: number): string {
  return `${((Date.now() - since) / 1000).toFixed(1)}s`;
}

/** The cached guest for the kernel apt offers now, building it first if it is missing. */
export async function ensureGuest(log: Log = defaultLog): Promise<GuestImage> {
  if (process.platform !== 'linux' || process.arch !== 'x64')
    throw new GuestBuildError(
      `the guest is an x86-64 Debian kernel; this is ${process.platform}/${process.arch}`,
    );
  const kernel = resolveKernel();
  const busybox = [BUSYBOX_PACKAGE, VERBS_PACKAGE]
    .map((p) => `${p} ${aptField(p, 'Version')}`)
    .join(', ');
  const dir = join(cacheRoot(), 'guest', `${kernel.pkg}-${recipeKey(kernel, busybox)}`);
  const image: GuestImage = {
    kernel: join(dir, 'vmlinuz'),
    initrd: join(dir, 'initrd.gz'),
    release: `${kernel.pkg} ${kernel.version}`,
  };
  if (existsSync(join(dir, '.complete'))) return image;
  mkdirSync(join(cacheRoot(), 'guest'), { recursive: true });
  return withLock(join(cacheRoot(), 'guest', '.lock'), 'another build of the guest', log, () => {
    if (existsSync(join(dir, '.complete'))) return Promise.resolve(image);
    build(dir, kernel.pkg, log);
    return Promise.resolve(image);
  });
}

function build(dir: string, kernelPkg: string, log: Log): void {
  const started = Date.now();
  const staging = `${dir}.partial`;
  rmSync(staging, { recursive: true, force: true });
  const debs = join(staging, 'debs');
  const tree = join(staging, 'tree');
  mkdirSync(debs, { recursive: true });
  mkdirSync(tree);
  log(`downloading ${kernelPkg}, ${BUSYBOX_PACKAGE} and ${VERBS_PACKAGE} into ${staging}`);
  run('apt-get', ['download', kernelPkg, BUSYBOX_PACKAGE, VERBS_PACKAGE], debs);
  for (const deb of readdirSync(debs)) run('dpkg-deb', ['-x', join(debs, deb), tree]);
  log(`unpacked in ${elapsed(started)}`);

  const release = kernelPkg.replace(/^linux-image-/, '');
  const modules = indexModules(join(tree, 'lib', 'modules', release));
  const order = loadOrder(MODULES, (name) => {
    const ko = modules.get(name);
    if (!ko) throw new GuestBuildError(`${kernelPkg} has no module ${name}`);
    return moduleDepends(ko);
  });

  const holder = join(staging, 'dmabuf-holder');
  run('gcc', ['-static', '-O2', '-Wall', '-o', holder, join(here, 'dmabuf-holder.c')]);
  // Dynamic: it loads the host's libibverbs (shared in over 9p with /usr) at run time.
  const mrHolder = join(staging, 'mr-holder');
  run('gcc', ['-O2', '-Wall', '-o', mrHolder, join(here, 'mr-holder.c'), '-ldl']);
  const verbsDir = join(tree, 'usr', 'lib', 'x86_64-linux-gnu', 'libibverbs');
  const rxe = readdirSync(verbsDir).find((f) => /^librxe-rdmav\d+\.so$/.test(f));
  if (!rxe) throw new GuestBuildError(`${VERBS_PACKAGE} has no librxe provider in ${verbsDir}`);

  const entries: CpioEntry[] = [
    ...['bin', 'dev', 'proc', 'sys', 'tmp', 'usr', 'modules', 'mnt', 'work', 'root', 'ibverbs'].map(
      (path): CpioEntry => ({ kind: 'dir', path }),
    ),
    // The host's /usr is mounted over 9p at /usr, so its dynamic loader and libraries are
    // where Node (and any host program) expects them on merged-/usr Debian.
    { kind: 'symlink', path: 'lib', target: 'usr/lib' },
    { kind: 'symlink', path: 'lib64', target: 'usr/lib64' },
    { kind: 'file', path: 'init', data: readFileSync(join(here, 'init.sh')), mode: 0o755 },
    {
      kind: 'file',
      path: 'bin/busybox',
      data: readFileSync(join(tree, 'bin', 'busybox')),
      mode: 0o755,
    },
    { kind: 'file', path: 'bin/dmabuf-holder', data: readFileSync(holder), mode: 0o755 },
    { kind: 'file', path: 'bin/mr-holder', data: readFileSync(mrHolder), mode: 0o755 },
    // init.sh sets RDMAV_DRIVERS=/ibverbs/librxe: libibverbs loads a driver named with a '/'
    // as <name>-rdmav<abi>.so, so the provider needs no place under the host's /usr.
    { kind: 'file', path: `ibverbs/${rxe}`, data: readFileSync(join(verbsDir, rxe)) },
    { kind: 'file', path: 'modules/order', data: Buffer.from(`${order.join('\n')}\n`) },
    ...order.map((name): CpioEntry => ({
      kind: 'file',
      path: `modules/${name}.ko`,
      data: readFileSync(modules.get(name) ?? ''),
    })),
  ];
  const initrd = gzipSync(cpioArchive(entries), { level: 6 });
  const out = join(staging, 'out');
  mkdirSync(out);
  writeFileSync(join(out, 'initrd.gz'), initrd);
  renameSync(join(tree, 'boot', `vmlinuz-${release}`), join(out, 'vmlinuz'));
  writeFileSync(join(out, '.complete'), `${new Date().toISOString()} ${order.join(',')}\n`);
  rmSync(dir, { recursive: true, force: true });
  renameSync(out, dir);
  rmSync(staging, { recursive: true, force: true });
  log(
    `guest ready in ${elapsed(started)}: ${kernelPkg}, modules ${order.join(' ')}, initrd ${(initrd.length / 2 ** 20).toFixed(1)} MiB`,
  );
}
