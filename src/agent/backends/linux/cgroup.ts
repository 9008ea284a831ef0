// Which pod and container a process belongs to, from /proc/<pid>/cgroup as the kubelet lays
// cgroups out: the systemd driver (`kubepods-<qos>-pod<uid>.slice/cri-containerd-<id>.scope`,
// dashes of the uid written as underscores) and cgroupfs (`/kubepods/<qos>/pod<uid>/<id>`), on
// cgroup v2 (`0::<path>`) and v1 (`<n>:<controllers>:<path>`). Pure.

export interface PodCgroup {
  readonly uid: string;
  /** null for a process in the pod's cgroup but in no container's (rare: conmon, a sandbox). */
  readonly containerID: string | null;
}

const UID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const SYSTEMD_POD = /^kubepods(?:-[a-z]+)?-pod([0-9a-f_]{36})\.slice$/;
const CGROUPFS_POD = /^pod([0-9a-f-]{36})$/;
// cri-containerd-, crio-, docker-: the runtime's scope; crio-conmon- is the monitor, not the
// container, so it yields no container id.
const SYSTEMD_CONTAINER = /^(?:cri-containerd|crio|docker|containerd)-([0-9a-f]{12,64})\.scope$/;
const CGROUPFS_CONTAINER = /^([0-9a-f]{12,64})$/;

/** The pod a cgroup path is in, or null. Works on relative paths (`/../../kubepods-...`) too. */
export function podOfCgroupPath(path: string): PodCgroup | null {
  const segments = path.split('/').filter((s) => s !== '' && s !== '..');
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i] ?? '';
    const systemd = SYSTEMD_POD.exec(seg);
    const uid = systemd?.[1]?.replace(/_/g, '-') ?? CGROUPFS_POD.exec(seg)?.[1];
    if (uid === undefined || !UID.test(uid)) continue;
    // Only a pod segment under kubepods counts: a pod<uid> directory anywhere else is not ours.
    if (!systemd && !segments.slice(0, i).some((s) => s === 'kubepods' || s.startsWith('kubepods')))
      continue;
    const next = segments[i + 1] ?? '';
    const container =
      (systemd ? SYSTEMD_CONTAINER.exec(next) : CGROUPFS_CONTAINER.exec(next))?.[1] ?? null;
    return { uid, containerID: container };
  }
  return null;
}

/**
 * The pod of a process from the text of /proc/<pid>/cgroup: the unified (v2) line first, then
 * each v1 hierarchy in order; null when no line is in a pod (a host process: no pod to evict).
 */
export function podOfCgroup(text: string): PodCgroup | null {
  const lines = text
    .split('\n')
    .map((l) => /^(\d+):([^:]*):(.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null);
  const ordered = [...lines.filter((m) => m[1] === '0' && m[2] === ''), ...lines];
  for (const m of ordered) {
    const pod = podOfCgroupPath(m[3] ?? '');
    if (pod) return pod;
  }
  return null;
}
