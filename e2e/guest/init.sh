#!/bin/busybox sh
# /init of the real-kernel guest: mount the kernel's filesystems, load vgem and 9p, mount the
# host's /usr and the checkout read-only, run the scenario the kernel command line names (a
# script in the checkout, so changing a scenario needs no rebuild of the guest), power off.
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin HOME=/root
fail() { echo "GUEST-FAIL $*"; poweroff -f; }
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t debugfs debugfs /sys/kernel/debug || fail "mount debugfs"
mount -t cgroup2 cgroup2 /sys/fs/cgroup || fail "mount cgroup2"
for m in $(cat /modules/order); do insmod "/modules/$m.ko" || fail "insmod $m"; done
arg() { tr ' ' '\n' </proc/cmdline | sed -n "s/^$1=//p"; }
src=$(arg accel.src)
scenario=$(arg accel.scenario)
opts=trans=virtio,version=9p2000.L,msize=512000,cache=loose,ro
mount -t 9p -o "$opts" usr /usr || fail "mount the host's /usr"
mkdir -p "$src" && mount -t 9p -o "$opts" checkout "$src" || fail "mount the checkout at $src"
cd "$src" || fail "cd $src"
# Soft-RoCE on a dummy netdev: a real RDMA device whose MR table the suite reads.
export RDMAV_DRIVERS=/ibverbs/librxe
ip link add d0 type dummy && ip link set d0 up || fail "dummy netdev"
rdma link add rxe0 type rxe netdev d0 || fail "rdma link add rxe0"
echo "GUEST-READY $(uname -r)"
sh "$src/$scenario"
echo "GUEST-EXIT $?"
poweroff -f
