# The real-kernel suite's scenario (busybox sh inside the guest, in the checkout): make the
# kubelet-shaped cgroups, then hand over to e2e/guest/scenario.ts, which starts the holders in
# them and prints what the observer, the scan command and the agent see after each change.
set -u
CG=/sys/fs/cgroup
export UID_A=0c6c3f5c-1a2b-4c3d-8e9f-0123456789ab
export UID_B=1d7d4a6d-2b3c-4d4e-9fa0-123456789abc
export UID_C=2e8e5b7e-3c4d-4e5f-a0b1-23456789abcd
export ID_A=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
export ID_B=bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb
export ID_C=cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc

# systemd driver on cgroup v2 (uid dashes become underscores), cgroupfs driver on cgroup v2,
# and cgroupfs driver on a cgroup v1 hierarchy; the root cgroup is in no pod.
A="$CG/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod$(echo $UID_A | tr - _).slice/cri-containerd-$ID_A.scope"
B="$CG/kubepods/besteffort/pod$UID_B/$ID_B"
mkdir -p /tmp/cgv1 && mount -t cgroup -o none,name=kubelet-test cgroup /tmp/cgv1 || echo "GUEST-FAIL mount cgroup v1"
C="/tmp/cgv1/kubepods/pod$UID_C/$ID_C"
mkdir -p "$A" "$B" "$C"
export CG_A="$A/cgroup.procs" CG_B="$B/cgroup.procs" CG_C="$C/cgroup.procs" CG_ROOT="$CG/cgroup.procs"
exec "$PWD/node_modules/.bin/node" e2e/guest/scenario.ts
