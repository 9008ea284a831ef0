# The real-kernel suite's scenario (busybox sh inside the guest, in the checkout): processes in
# kubelet-shaped cgroups hold vgem dma-bufs in every way the observer must see, and `scan` runs
# after each change. Each holder prints what it holds (HOLDER lines: the ground truth); raw
# bufinfo and the scan's JSON are printed between BEGIN/END markers for the test to compare.
set -u
NODE="$PWD/node_modules/.bin/node"
CG=/sys/fs/cgroup
UID_A=0c6c3f5c-1a2b-4c3d-8e9f-0123456789ab
UID_B=1d7d4a6d-2b3c-4d4e-9fa0-123456789abc
UID_C=2e8e5b7e-3c4d-4e5f-a0b1-23456789abcd
ID_A=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
ID_B=bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb
ID_C=cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc
echo "PODS a=$UID_A/$ID_A b=$UID_B/$ID_B c=$UID_C/$ID_C"

# systemd driver on cgroup v2 (uid dashes become underscores), cgroupfs driver on cgroup v2,
# and cgroupfs driver on a cgroup v1 hierarchy.
A="$CG/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod$(echo $UID_A | tr - _).slice/cri-containerd-$ID_A.scope"
B="$CG/kubepods/besteffort/pod$UID_B/$ID_B"
mkdir -p /tmp/cgv1 && mount -t cgroup -o none,name=kubelet-test cgroup /tmp/cgv1 || echo "GUEST-FAIL mount cgroup v1"
C="/tmp/cgv1/kubepods/pod$UID_C/$ID_C"
mkdir -p "$A" "$B" "$C"

pids=""
start() {
  role=$1 procs=$2
  shift 2
  # Join the cgroup first, then become the holder: every buffer it makes is made in the pod.
  sh -c "echo \$\$ > $procs && exec dmabuf-holder $*" >"/tmp/$role.out" 2>&1 &
  i=0
  until grep -q '^READY' "/tmp/$role.out" 2>/dev/null; do
    i=$((i + 1))
    [ $i -gt 100 ] && echo "GUEST-FAIL $role never got ready: $(cat /tmp/$role.out)" && return
    sleep 0.1
  done
  echo "HOLDER $role $(cat /tmp/$role.out)"
}
pid_of() { sed -n 's/^READY pid=\([0-9]*\).*/\1/p' "/tmp/$1.out"; }
stop() {
  pid=$(pid_of "$1")
  kill "$pid" && wait "$pid" 2>/dev/null
  echo "STOPPED $1 $pid"
}
snapshot() {
  echo "BEGIN bufinfo $1"
  cat /sys/kernel/debug/dma_buf/bufinfo
  echo "END bufinfo $1"
  echo "BEGIN scan $1"
  "$NODE" src/agent/scan/main.ts --exporter drm --device /dev/dri/card0 -o json
  echo "END scan $1 $?"
}

# The exporter holds its fd, a mapping, the device node and its GEM handle, and hands the fd
# to others over a unix socket; the reader holds only the fd it received; the mapper maps the
# buffer and closes its fd; a host process outside any pod holds an unnamed buffer of its own.
start exporter "$A/cgroup.procs" export weights 1048576 --map --serve /tmp/weights.sock
start reader "$B/cgroup.procs" import /tmp/weights.sock
start mapper "$C/cgroup.procs" import /tmp/weights.sock --map --close-fd
start host "$CG/cgroup.procs" export - 8192
snapshot all
stop reader
snapshot reader-exited
stop exporter
stop host
snapshot mapper-only
stop mapper
snapshot none
echo "BEGIN text none"
"$NODE" src/agent/scan/main.ts --exporter drm
echo "END text none $?"
