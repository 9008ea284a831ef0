import { describe, expect, it } from 'vitest';
import { podOfCgroup, podOfCgroupPath } from './cgroup.ts';

const UID = '0c6c3f5c-1a2b-4c3d-8e9f-0123456789ab';
const SYS_UID = UID.replace(/-/g, '_');
const ID = 'f'.repeat(8) + '0123456789abcdef'.repeat(3) + 'a'.repeat(8);

describe('podOfCgroupPath', () => {
  it('reads the systemd driver, every QoS class', () => {
    for (const qos of ['burstable', 'besteffort']) {
      expect(
        podOfCgroupPath(
          `/kubepods.slice/kubepods-${qos}.slice/kubepods-${qos}-pod${SYS_UID}.slice/cri-containerd-${ID}.scope`,
        ),
      ).toEqual({ uid: UID, containerID: ID });
    }
    expect(
      podOfCgroupPath(`/kubepods.slice/kubepods-pod${SYS_UID}.slice/crio-${ID}.scope`),
    ).toEqual({ uid: UID, containerID: ID });
  });
  it('reads the cgroupfs driver, guaranteed and not', () => {
    expect(podOfCgroupPath(`/kubepods/burstable/pod${UID}/${ID}`)).toEqual({
      uid: UID,
      containerID: ID,
    });
    expect(podOfCgroupPath(`/kubepods/pod${UID}/${ID}`)).toEqual({ uid: UID, containerID: ID });
  });
  it("reads a path relative to the reader's own cgroup namespace", () => {
    expect(
      podOfCgroupPath(`/../../kubepods-besteffort-pod${SYS_UID}.slice/cri-containerd-${ID}.scope`),
    ).toEqual({
      uid: UID,
      containerID: ID,
    });
  });
  it('gives the pod without a container for the pod cgroup itself and for conmon', () => {
    expect(podOfCgroupPath(`/kubepods/besteffort/pod${UID}`)).toEqual({
      uid: UID,
      containerID: null,
    });
    expect(
      podOfCgroupPath(`/kubepods.slice/kubepods-pod${SYS_UID}.slice/crio-conmon-${ID}.scope`),
    ).toEqual({
      uid: UID,
      containerID: null,
    });
  });
  it('finds no pod for host processes and look-alikes', () => {
    expect(podOfCgroupPath('/')).toBeNull();
    expect(podOfCgroupPath('/system.slice/containerd.service')).toBeNull();
    expect(podOfCgroupPath(`/user.slice/pod${UID}/${ID}`)).toBeNull();
    expect(podOfCgroupPath('/kubepods/burstable/podnot-a-uid/x')).toBeNull();
  });
});

describe('podOfCgroup', () => {
  it('prefers the unified line on a hybrid host', () => {
    const other = 'aaaaaaaa-1a2b-4c3d-8e9f-0123456789ab';
    const text = `12:pids:/kubepods/burstable/pod${other}/${ID}\n0::/kubepods/burstable/pod${UID}/${ID}\n`;
    expect(podOfCgroup(text)?.uid).toBe(UID);
  });
  it('reads cgroup v1 when no unified line names a pod', () => {
    const text = `12:pids:/kubepods/burstable/pod${UID}/${ID}\n1:name=systemd:/kubepods/burstable/pod${UID}/${ID}\n0::/\n`;
    expect(podOfCgroup(text)).toEqual({ uid: UID, containerID: ID });
  });
  it('is null for a process in no pod', () => {
    expect(podOfCgroup('0::/init.scope\n')).toBeNull();
    expect(podOfCgroup('')).toBeNull();
  });
});
