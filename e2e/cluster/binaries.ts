// Builds the control-plane binaries from the pinned Go modules under tools/ and caches them
// per pinned version outside the repository, so only a change of pins triggers a rebuild.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { withLock } from './lock.ts';

const toolsDir = join(import.meta.dirname, 'tools');

/** Bump when the way binaries are built changes, so caches built the old way are not reused. */
const RECIPE = 1;

export type BinaryName =
  | 'kube-apiserver'
  | 'kube-controller-manager'
  | 'kube-scheduler'
  | 'kubectl'
  | 'etcd'
  | 'kwok'
  | 'kwokctl'
  | 'helm'
  | 'promtool';

/** What the real node runs (`npm run cluster:node`); built only when a node is asked for. */
export type NodeBinaryName =
  'kubelet' | 'kube-proxy' | 'containerd' | 'containerd-shim-runc-v2' | 'ctr' | 'crictl';

/** One Go module under tools/: the upstream module it pins and the commands built from it. */
interface ToolModule {
  dir: string;
  /** The upstream module whose `require` line in tools/<dir>/go.mod is the pinned version. */
  upstream: string;
  commands: { name: BinaryName | NodeBinaryName; pkg: string }[];
  ldflags(version: string): string[];
  /** Go build tags; part of the cache key. */
  tags?: string[];
  /** Build without cgo (static binaries that need no C headers); part of the cache key. */
  noCgo?: boolean;
}

function kubeVersionFlags(version: string): string[] {
  const [major, minor] = version.replace(/^v/, '').split('.');
  return ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version'].flatMap((pkg) => [
    `-X ${pkg}.gitVersion=${version}`,
    `-X ${pkg}.gitMajor=${major}`,
    `-X ${pkg}.gitMinor=${minor}`,
    `-X ${pkg}.gitTreeState=clean`,
  ]);
}

/**
 * What helm's release Makefile sets: its version, and the Kubernetes version that `helm template`
 * assumes without a cluster (client-go v0.X.Y -> Kubernetes 1.X). Without them helm calls itself
 * v3.22 and assumes Kubernetes v1.20, older than our chart's kubeVersion (>=1.30) allows.
 */
function helmVersionFlags(version: string): string[] {
  const clientGo = pinnedRequire('helm', 'k8s.io/client-go');
  const [major, minor] = clientGo.replace(/^v/, '').split('.');
  const kubeMajor = String(Number(major) + 1);
  return [
    `-X helm.sh/helm/v3/internal/version.version=${version}`,
    '-X helm.sh/helm/v3/internal/version.metadata=',
    '-X helm.sh/helm/v3/internal/version.gitTreeState=clean',
    ...['helm.sh/helm/v3/pkg/chartutil', 'helm.sh/helm/v3/pkg/lint/rules'].flatMap((pkg) => [
      `-X ${pkg}.k8sVersionMajor=${kubeMajor}`,
      `-X ${pkg}.k8sVersionMinor=${minor}`,
    ]),
  ];
}

/** Prometheus tags its Go module v0.MMm.p for release M.mm.p (v0.316.0 is Prometheus 3.16.0). */
function prometheusRelease(moduleVersion: string): string {
  const [, minor = '0', patch = '0'] = moduleVersion.replace(/^v/, '').split('.');
  const n = Number(minor);
  return `${Math.floor(n / 100)}.${n % 100}.${patch}`;
}

const MODULES: ToolModule[] = [
  {
    dir: 'kubernetes',
    upstream: 'k8s.io/kubernetes',
    commands: [
      { name: 'kube-apiserver', pkg: 'k8s.io/kubernetes/cmd/kube-apiserver' },
      { name: 'kube-controller-manager', pkg: 'k8s.io/kubernetes/cmd/kube-controller-manager' },
      { name: 'kube-scheduler', pkg: 'k8s.io/kubernetes/cmd/kube-scheduler' },
      { name: 'kubectl', pkg: 'k8s.io/kubernetes/cmd/kubectl' },
    ],
    ldflags: kubeVersionFlags,
  },
  {
    dir: 'etcd',
    upstream: 'go.etcd.io/etcd/server/v3',
    commands: [{ name: 'etcd', pkg: 'go.etcd.io/etcd/server/v3' }],
    ldflags: (v) => [`-X go.etcd.io/etcd/api/v3/version.GitSHA=${v}`],
  },
  {
    dir: 'kwok',
    upstream: 'sigs.k8s.io/kwok',
    commands: [
      { name: 'kwok', pkg: 'sigs.k8s.io/kwok/cmd/kwok' },
      { name: 'kwokctl', pkg: 'sigs.k8s.io/kwok/cmd/kwokctl' },
    ],
    ldflags: (v) => {
      // kwokctl labels the cluster with the Kubernetes version it runs; make that the pinned one.
      const kube = pinnedVersion(MODULES[0]!).replace(/^v/, '');
      return [
        `-X sigs.k8s.io/kwok/pkg/consts.Version=${v.replace(/^v/, '')}`,
        `-X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${kube}`,
      ];
    },
  },
  {
    dir: 'helm',
    upstream: 'helm.sh/helm/v3',
    commands: [{ name: 'helm', pkg: 'helm.sh/helm/v3/cmd/helm' }],
    ldflags: helmVersionFlags,
  },
  {
    dir: 'prometheus',
    upstream: 'github.com/prometheus/prometheus',
    commands: [{ name: 'promtool', pkg: 'github.com/prometheus/prometheus/cmd/promtool' }],
    // promtool tests rules and lints metrics; it needs none of the service discoveries, which
    // are most of its build.
    tags: ['remove_all_sd'],
    ldflags: (v) => [`-X github.com/prometheus/common/version.Version=${prometheusRelease(v)}`],
  },
];

/**
 * The real node's binaries. kubelet and kube-proxy come from the control plane's k8s.io/kubernetes release, in
 * a module of its own (tools/kubelet) so that its extra dependencies never change the control
 * plane's cache key. containerd is built static without cgo, so none of the snapshotters
 * that need C headers (btrfs, devmapper, zfs) is in it: the node uses overlayfs.
 */
const NODE_MODULES: ToolModule[] = [
  {
    dir: 'kubelet',
    upstream: 'k8s.io/kubernetes',
    commands: [
      { name: 'kubelet', pkg: 'k8s.io/kubernetes/cmd/kubelet' },
      { name: 'kube-proxy', pkg: 'k8s.io/kubernetes/cmd/kube-proxy' },
    ],
    ldflags: kubeVersionFlags,
  },
  {
    dir: 'containerd',
    upstream: 'github.com/containerd/containerd/v2',
    commands: [
      { name: 'containerd', pkg: 'github.com/containerd/containerd/v2/cmd/containerd' },
      {
        name: 'containerd-shim-runc-v2',
        pkg: 'github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2',
      },
      { name: 'ctr', pkg: 'github.com/containerd/containerd/v2/cmd/ctr' },
    ],
    // Nor the tracing exporters or NRI's WebAssembly plugin host: the node uses neither (NRI is
    // off in its config), and they are packages a cold build would compile for nothing.
    tags: ['no_btrfs', 'no_devmapper', 'no_zfs', 'no_tracing', 'nri_no_wasm', 'urfave_cli_no_docs'],
    noCgo: true,
    ldflags: (v) => [
      `-X github.com/containerd/containerd/v2/version.Version=${v}`,
      `-X github.com/containerd/containerd/v2/version.Revision=${v}`,
      '-X github.com/containerd/containerd/v2/version.Package=github.com/containerd/containerd/v2',
    ],
  },
  {
    // crictl talks CRI to containerd: the node's teardown removes every pod sandbox with it, so
    // CNI releases each pod's network before containerd stops.
    dir: 'cri-tools',
    upstream: 'sigs.k8s.io/cri-tools',
    commands: [{ name: 'crictl', pkg: 'sigs.k8s.io/cri-tools/cmd/crictl' }],
    noCgo: true,
    ldflags: (v) => [`-X sigs.k8s.io/cri-tools/pkg/version.Version=${v}`],
  },
];

function pinnedRequire(dir: string, modulePath: string): string {
  const gomod = readFileSync(join(toolsDir, dir, 'go.mod'), 'utf8');
  const escaped = modulePath.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  const match = new RegExp(`^\\s*(?:require\\s+)?${escaped}\\s+(v\\S+)`, 'm').exec(gomod);
  if (!match?.[1]) throw new Error(`tools/${dir}/go.mod does not require ${modulePath}`);
  return match[1];
}

function pinnedVersion(mod: ToolModule): string {
  return pinnedRequire(mod.dir, mod.upstream);
}

/** Root of the binary cache; ACCEL_LEASE_CACHE overrides it. */
export function cacheRoot(): string {
  if (process.env.ACCEL_LEASE_CACHE) return process.env.ACCEL_LEASE_CACHE;
  const xdg = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(xdg, 'accel-lease');
}

/**
 * The cache directory for one module: named after its pinned version, keyed by its go.mod/go.sum,
 * ldflags and tags, so changing any of them builds it afresh (RECIPE covers the other flags).
 */
function moduleBinDir(mod: ToolModule): string {
  const hash = createHash('sha256').update(`recipe ${RECIPE}\n`);
  for (const file of ['go.mod', 'go.sum']) hash.update(readFileSync(join(toolsDir, mod.dir, file)));
  hash.update(mod.ldflags(pinnedVersion(mod)).join(' '));
  if (mod.tags) hash.update(`\ntags ${mod.tags.join(',')}`);
  if (mod.noCgo) hash.update('\ncgo off');
  const key = hash.digest('hex').slice(0, 12);
  return join(cacheRoot(), 'bin', `${mod.dir}-${pinnedVersion(mod)}-${key}`);
}

export type BinaryPaths = Record<BinaryName, string>;
export type NodeBinaryPaths = Record<NodeBinaryName, string>;

function pathsOf<T>(modules: ToolModule[]): T {
  const paths: Record<string, string> = {};
  for (const mod of modules) {
    for (const cmd of mod.commands) paths[cmd.name] = join(moduleBinDir(mod), cmd.name);
  }
  return paths as T;
}

/** Where each binary lives in the cache (whether or not it has been built yet). */
export function binaryPaths(): BinaryPaths {
  return pathsOf<BinaryPaths>(MODULES);
}

/** Where each of the real node's binaries lives in the cache (built or not). */
export function nodeBinaryPaths(): NodeBinaryPaths {
  return pathsOf<NodeBinaryPaths>(NODE_MODULES);
}

/** The pinned upstream versions, for logs and the README. */
export function pinnedVersions(): Record<string, string> {
  return Object.fromEntries(MODULES.map((m) => [m.upstream, pinnedVersion(m)]));
}

export class GoToolchainMissingError extends Error {
  constructor() {
    super(
      'Go toolchain not found: install Go 1.26 or newer (https://go.dev/dl/, `go` on PATH or in /usr/local/go/bin) ' +
        'to build the local control plane, or set KUBECONFIG to run the cluster tests on an existing cluster.',
    );
    this.name = 'GoToolchainMissingError';
  }
}

/** The go command to build with; throws GoToolchainMissingError when there is none. */
export function findGo(): string {
  const candidates = ['go', process.env.GOROOT && join(process.env.GOROOT, 'bin', 'go')];
  candidates.push('/usr/local/go/bin/go', join(homedir(), 'go', 'bin', 'go'));
  for (const candidate of candidates) {
    if (!candidate) continue;
    const probe = spawnSync(candidate, ['version'], { encoding: 'utf8' });
    if (probe.status === 0) return candidate;
  }
  throw new GoToolchainMissingError();
}

function elapsed(since: number): string {
  const s = Math.round((Date.now() - since) / 1000);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

export type Log = (line: string) => void;
const defaultLog: Log = (line) => process.stderr.write(`[cluster:build] ${line}\n`);

function goBuild(go: string, mod: ToolModule, pkg: string, out: string, log: Log): Promise<void> {
  const version = pinnedVersion(mod);
  const args = [
    'build',
    '-trimpath',
    ...(mod.tags ? ['-tags', mod.tags.join(',')] : []),
    '-ldflags',
    ['-s', '-w', ...mod.ldflags(version)].join(' '),
    '-o',
    out,
    pkg,
  ];
  // GOWORK=off: a go.work above the checkout must not change what the pins select.
  const env = {
    ...process.env,
    GOWORK: 'off',
    GOFLAGS: '-mod=readonly -buildvcs=false',
    ...(mod.noCgo ? { CGO_ENABLED: '0' } : {}),
  };
  return new Promise((resolve, reject) => {
    const child = spawn(go, args, { cwd: join(toolsDir, mod.dir), env, stdio: 'pipe' });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const started = Date.now();
    const ticker = setInterval(
      () => log(`  ... still building ${pkg} (${elapsed(started)})`),
      30_000,
    );
    child.on('error', (err) => {
      clearInterval(ticker);
      reject(err);
    });
    child.on('close', (code) => {
      clearInterval(ticker);
      if (code === 0) resolve();
      else
        reject(
          new Error(
            `go build ${pkg} (tools/${mod.dir}, ${mod.upstream}@${version}) exited ${code}:\n${output.trim()}`,
          ),
        );
    });
  });
}

/**
 * Builds every binary whose cache entry is missing and returns all their paths. Modules are
 * built one after another: on a 2-core machine parallel builds only contend for the same cores.
 */
export async function ensureBinaries(log: Log = defaultLog): Promise<BinaryPaths> {
  await ensureModules(MODULES, log);
  return binaryPaths();
}

/** The same for the real node's binaries (kubelet, containerd and its runc shim, ctr). */
export async function ensureNodeBinaries(log: Log = defaultLog): Promise<NodeBinaryPaths> {
  await ensureModules(NODE_MODULES, log);
  return nodeBinaryPaths();
}

async function ensureModules(modules: ToolModule[], log: Log): Promise<void> {
  const isMissing = (mod: ToolModule) => !existsSync(join(moduleBinDir(mod), '.complete'));
  if (!modules.some(isMissing)) return;
  const go = findGo();
  mkdirSync(join(cacheRoot(), 'bin'), { recursive: true });
  // One build at a time per cache, even from several checkouts: the others wait, then reuse it.
  await withLock(join(cacheRoot(), 'bin', '.lock'), 'another build of the binaries', log, () =>
    buildMissing(go, modules.filter(isMissing), log),
  );
}

async function buildMissing(go: string, missing: ToolModule[], log: Log): Promise<void> {
  if (missing.length === 0) return;
  const total = Date.now();
  log(`building ${missing.map((m) => `${m.upstream}@${pinnedVersion(m)}`).join(', ')}`);
  log(`into ${join(cacheRoot(), 'bin')} (first build takes a while; later runs reuse it)`);
  for (const mod of missing) {
    const dir = moduleBinDir(mod);
    const staging = `${dir}.partial`;
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(staging, { recursive: true });
    for (const cmd of mod.commands) {
      const started = Date.now();
      log(`${cmd.name} (${mod.upstream}@${pinnedVersion(mod)}): building...`);
      await goBuild(go, mod, cmd.pkg, join(staging, cmd.name), log);
      log(`${cmd.name}: built in ${elapsed(started)} (total ${elapsed(total)})`);
    }
    writeFileSync(join(staging, '.complete'), `${new Date().toISOString()}\n`);
    rmSync(dir, { recursive: true, force: true });
    renameSync(staging, dir);
  }
  log(`all binaries ready in ${elapsed(total)}`);
}
