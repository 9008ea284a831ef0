// Scripted handoff on the simulated kernel, printed as a timeline (`npm run demo:kernel`).
// A fake clock and fixed pids make the output identical on every run.

import { Kernel, KernelError, describePin, type DropReport, type Pin } from './index.ts';

const GiB = 1024 ** 3;
let clock = 0;
const kernel = new Kernel({ now: () => clock });

/** Advance the fake clock, run one step of the script, print what it did. */
function at(seconds: number, step: () => string): void {
  clock = seconds * 1000;
  console.log(`[t+${seconds.toFixed(1).padStart(5)}s] ${step()}`);
}

function detail(text: string): void {
  console.log(`            ${text}`);
}

function refused(call: () => unknown): void {
  try {
    call();
    detail('!! expected a refusal');
    process.exitCode = 1;
  } catch (err) {
    if (!(err instanceof KernelError)) throw err;
    detail(`refused (${err.code}): ${err.message}`);
  }
}

function pinLine(pin: Pin): string {
  return `pin: ${describePin(pin)}, since t+${(pin.since / 1000).toFixed(1)}s`;
}

function report(r: DropReport): void {
  detail(
    `device fds revoked: ${r.revokedFds.map((f) => `pid ${f.pid} fd ${f.fd}`).join(', ') || 'none'}`,
  );
  detail(
    `importers revoked:  ${r.revoked.map((a) => `${a.kind} ${a.name} (pid ${a.pid})`).join(', ') || 'none'}`,
  );
  if (r.pins.length === 0) detail('pins: none');
  for (const pin of r.pins) detail(pinLine(pin));
}

function attachments(ino: number): void {
  for (const a of kernel.buffer(ino)?.attachments ?? []) {
    detail(`attachment ${a.name} (${a.kind}, pid ${a.pid}): ${a.state}`);
  }
}

const tenantA = 'team-a/tenant-a';
const tenantB = 'team-b/tenant-b';
const pod = (namespace: string, name: string) => ({ namespace, name });

console.log('== static exporter (habanalabs-like): nothing is revocable, every reference pins ==');
kernel.addDevice({ name: 'hl0', memoryBytes: 32 * GiB, profile: 'static' });
const trainer = kernel.spawn({ pid: 1200, comm: 'trainer', label: pod('team-a', 'trainer-0') });
const loader = kernel.spawn({ pid: 4711, comm: 'loader', label: pod('team-io', 'loader-0') });
let devFd = 0;
let weights = { fd: 0, ino: 0 };
let loaderFd = 0;

at(0, () => {
  kernel.acquire('hl0', tenantA, 1);
  return `hl0: ${tenantA} acquires at epoch 1`;
});
at(1, () => {
  devFd = kernel.openDevice(trainer.pid, 'hl0', tenantA);
  return `pid ${trainer.pid} (team-a/trainer-0) opens hl0 as fd ${devFd}`;
});
at(2, () => {
  weights = kernel.exportBuffer(trainer.pid, devFd, { offset: 0, size: GiB, name: 'weights' });
  return `pid ${trainer.pid} exports weights (1 GiB at 0): fd ${weights.fd}, ino ${weights.ino}`;
});
at(3, () => {
  loaderFd = kernel.passFd(trainer.pid, weights.fd, loader.pid);
  return `pid ${trainer.pid} passes weights to pid ${loader.pid} (team-io/loader-0) as fd ${loaderFd}`;
});
at(4, () => {
  kernel.attach(loader.pid, loaderFd, 'rdma-mr', 'nic0');
  return `pid ${loader.pid} registers weights as rdma-mr nic0`;
});
at(5, () => `pid ${trainer.pid} tries to mmap weights as view`);
refused(() => kernel.attach(trainer.pid, weights.fd, 'mmap', 'view'));

at(10, () => `hl0: lease ${tenantA} released, the agent drops the owner`);
report(kernel.drop('hl0'));
attachments(weights.ino);

at(11, () => `hl0: ${tenantB} tries to acquire at epoch 2`);
refused(() => kernel.acquire('hl0', tenantB, 2));

at(12, () => {
  kernel.exit(trainer.pid);
  return `pid ${trainer.pid} exits (tenant A's pod is gone); ${tenantB} tries again`;
});
refused(() => kernel.acquire('hl0', tenantB, 2));

at(20, () => {
  const exited = kernel.exit(loader.pid);
  return (
    `pid ${loader.pid} exits (the reaper evicted team-io/loader-0): ` +
    `closed fds ${exited.closedFds.join(', ')}, released ino ${exited.released.join(', ')}`
  );
});
detail(`pins left: ${kernel.pins('hl0').length}`);

at(21, () => {
  kernel.acquire('hl0', tenantB, 2);
  return `hl0: ${tenantB} acquires at epoch 2`;
});
at(22, () => `hl0: a late write from ${tenantA} at epoch 1 arrives`);
refused(() => kernel.acquire('hl0', tenantA, 1));

console.log('');
console.log('== dynamic exporter (amdgpu-like): mmap and dynamic importers are revoked ==');
kernel.addDevice({ name: 'gpu0', memoryBytes: 16 * GiB, profile: 'dynamic' });
const worker = kernel.spawn({ pid: 2100, comm: 'worker', label: pod('team-a', 'worker-0') });
const peer = kernel.spawn({ pid: 2200, comm: 'peer', label: pod('team-a', 'peer-0') });
const nic = kernel.spawn({ pid: 5150, comm: 'rdma-agent', label: null });
let kv = { fd: 0, ino: 0 };
let nicAttachment = 0;

at(30, () => {
  kernel.acquire('gpu0', tenantA, 1);
  return `gpu0: ${tenantA} acquires at epoch 1`;
});
at(31, () => {
  const fd = kernel.openDevice(worker.pid, 'gpu0', tenantA);
  kv = kernel.exportBuffer(worker.pid, fd, { offset: 0, size: 2 * GiB, name: 'kv-cache' });
  return `pid ${worker.pid} (team-a/worker-0) opens gpu0 and exports kv-cache: ino ${kv.ino}`;
});
at(32, () => {
  kernel.attach(worker.pid, kv.fd, 'mmap', 'view');
  return `pid ${worker.pid} maps kv-cache on the CPU as view`;
});
at(33, () => {
  kernel.attach(peer.pid, kernel.passFd(worker.pid, kv.fd, peer.pid), 'dynamic', 'p2p');
  return `pid ${peer.pid} (team-a/peer-0) imports kv-cache as dynamic p2p`;
});
at(34, () => {
  const fd = kernel.passFd(worker.pid, kv.fd, nic.pid);
  nicAttachment = kernel.attach(nic.pid, fd, 'rdma-mr', 'nic1').id;
  return `pid ${nic.pid} (no pod: a hidden holder) registers kv-cache as rdma-mr nic1`;
});

at(40, () => `gpu0: lease ${tenantA} released, the agent drops the owner`);
report(kernel.drop('gpu0'));
attachments(kv.ino);
detail(`buffer kv-cache is ${kernel.buffer(kv.ino)?.state}`);

at(41, () => `gpu0: ${tenantB} tries to acquire at epoch 2`);
refused(() => kernel.acquire('gpu0', tenantB, 2));

at(45, () => {
  kernel.detach(nic.pid, nicAttachment);
  return `pid ${nic.pid} deregisters nic1`;
});
detail(
  `buffer kv-cache is ${kernel.buffer(kv.ino)?.state}; pins left: ${kernel.pins('gpu0').length}`,
);

at(46, () => {
  kernel.acquire('gpu0', tenantB, 2);
  return `gpu0: ${tenantB} acquires at epoch 2`;
});
