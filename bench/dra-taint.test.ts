// The DRA comparison's judgement of a run (who removed what, PDB, pins, B) and its table, on
// event records shaped like the bench's own.
import { describe, expect, it } from 'vitest';
import { summarizeStory, type StoryEvent, type StoryRun } from './dra-taint.ts';
import { draRows } from './readme.ts';

const pin = { pod: 'team-io/loader-0', kind: 'rdma-mr', epoch: 1 };

function run(
  mechanism: StoryRun['mechanism'],
  events: StoryEvent[],
  end: Partial<StoryRun['end']>,
): StoryRun {
  return {
    mechanism,
    trigger: 't',
    controllerFlags: ['--dra'],
    node: 'n',
    namespaces: { 'team-a': 'a', 'team-io': 'io', 'team-b': 'b' },
    oldEpoch: 1,
    pdb: { minAvailable: 1, disruptionsAllowed: 0 },
    deletedByTrigger: mechanism === 'taint' ? [] : ['team-a/trainer-0', 'team-a/trainer-1'],
    windowMs: 30_000,
    events,
    end: { podsLeft: [], pins: [], ...end },
  };
}

const taintRun = run(
  'taint',
  [
    {
      atMs: 290,
      kind: 'podGone',
      pod: 'team-a/trainer-1',
      disruptionReason: 'DeletionByDeviceTaintManager',
    },
    {
      atMs: 350,
      kind: 'podGone',
      pod: 'team-a/trainer-0',
      disruptionReason: 'DeletionByDeviceTaintManager',
    },
    { atMs: 700, kind: 'accelerator', phase: 'Stuck', epoch: 2, pins: [pin] },
    { atMs: 10_030, kind: 'rule', status: 'False', reason: 'Completed', message: '2 pods evicted' },
    { atMs: 10_140, kind: 'claimAllocated', claim: 'team-b/tenant-b', device: 'hl0' },
    {
      atMs: 10_210,
      kind: 'handoffComplete',
      claim: 'team-b/tenant-b',
      status: 'False',
      reason: 'Pending',
    },
  ],
  { bPhase: 'Pending', pins: [pin] },
);

const leaseRun = run(
  'accel-lease',
  [
    { atMs: 90, kind: 'podGone', pod: 'team-a/trainer-0' },
    { atMs: 110, kind: 'podGone', pod: 'team-a/trainer-1' },
    { atMs: 290, kind: 'claimAllocated', claim: 'team-b/tenant-b', device: 'hl0' },
    { atMs: 450, kind: 'accelerator', phase: 'Stuck', epoch: 2, pins: [pin] },
    {
      atMs: 1130,
      kind: 'podGone',
      pod: 'team-io/loader-0',
      disruptionReason: 'EvictionByEvictionAPI',
    },
    { atMs: 1170, kind: 'accelerator', phase: 'Owned', epoch: 3, pins: [] },
    {
      atMs: 1290,
      kind: 'handoffComplete',
      claim: 'team-b/tenant-b',
      status: 'True',
      reason: 'Owned',
    },
    { atMs: 5340, kind: 'podBound', pod: 'team-b/train-0', node: 'n' },
    { atMs: 5390, kind: 'podRunning', pod: 'team-b/train-0' },
  ],
  { bPhase: 'Running', bNode: 'n' },
);

describe('summarizeStory', () => {
  it('charges the taint with deleting the PDB-covered pod and leaving the loader pinning epoch 1', () => {
    const o = summarizeStory(taintRun);
    expect(o.removed.map((r) => [r.pod, r.by])).toEqual([
      ['team-a/trainer-1', 'device-taint-eviction, by DELETE'],
      ['team-a/trainer-0', 'device-taint-eviction, by DELETE'],
    ]);
    expect(o.pdbHonoured).toBe(false);
    expect(o.pinsSurvived).toEqual([pin]);
    expect(o.bRan).toBe(false);
    expect(o.aPodsGoneMs).toBe(350);
    expect(o.bAllocatedMs).toBe(10_140);
    expect(o.ruleCompletedMs).toBe(10_030);
    expect(o.pinsClearedMs).toBeUndefined();
    expect(o.handoffCompleteMs).toBeUndefined();
    expect(o.bRunningMs).toBeUndefined();
  });

  it("tells A's own release from the reaper's eviction, and times B from the trigger", () => {
    const o = summarizeStory(leaseRun);
    expect(o.removed.map((r) => r.by)).toEqual([
      "tenant A's release, by DELETE",
      "tenant A's release, by DELETE",
      'Eviction API',
    ]);
    expect(o.pdbHonoured).toBe(true);
    expect(o.pinsSurvived).toEqual([]);
    expect(o).toMatchObject({
      bRan: true,
      aPodsGoneMs: 110,
      pinsClearedMs: 1170,
      handoffCompleteMs: 1290,
      bRunningMs: 5390,
    });
  });

  it('does not count a pin-free status at the old epoch as the device cleared', () => {
    const o = summarizeStory(
      run('taint', [{ atMs: 5, kind: 'accelerator', phase: 'Owned', epoch: 1, pins: [] }], {}),
    );
    expect(o.pinsClearedMs).toBeUndefined();
  });

  it('judges the PDB-covered pod by who removed it: A itself, or a DELETE by the mechanism', () => {
    const o = summarizeStory(
      run('accel-lease', [{ atMs: 5, kind: 'podGone', pod: 'team-a/trainer-1' }], {}),
    );
    // deletedByTrigger names it: A deleting its own pod is not the mechanism's disruption.
    expect(o.pdbHonoured).toBe(true);
    const forced = summarizeStory({
      ...run('taint', [], {}),
      events: [{ atMs: 5, kind: 'podGone', pod: 'team-a/trainer-1' }],
    });
    expect(forced.pdbHonoured).toBe(false);
    expect(forced.removed[0]?.by).toBe('DELETE');
  });
});

describe('draRows', () => {
  const outcomes = [taintRun, leaseRun, taintRun, leaseRun].map(summarizeStory);
  const rows = draRows({ rounds: 2, windowMs: 30_000, outcomes, runs: [] });
  const cells = (label: string) =>
    rows
      .find((r) => r.startsWith(`| ${label}`))
      ?.split(' | ')
      .slice(1)
      .map((c) => c.replace(/ \|$/, ''));

  it('puts one column per mechanism and says when every round agreed', () => {
    expect(cells("A pin of A's epoch survived")).toEqual([
      'yes: team-io/loader-0 rdma-mr (epoch 1) (2 of 2)',
      'no (2 of 2)',
    ]);
    expect(cells('PDB on team-a/trainer-1 (0 disruptions allowed) honoured')).toEqual([
      'no (2 of 2)',
      'yes (2 of 2)',
    ]);
  });

  it('names who removed which pod in name order, whatever order they went in', () => {
    expect(cells('Pods removed, by whom')).toEqual([
      'team-a/trainer-0, team-a/trainer-1: device-taint-eviction, by DELETE (2 of 2)',
      "team-a/trainer-0, team-a/trainer-1: tenant A's release, by DELETE; team-io/loader-0: Eviction API (2 of 2)",
    ]);
  });

  it('gives the median and every round of a time, and never for a time no round reached', () => {
    expect(cells("to B's pod Running")).toEqual(['never', '5.39 s (5.39 s, 5.39 s)']);
    const mixed = draRows({
      rounds: 2,
      windowMs: 30_000,
      outcomes: [summarizeStory(leaseRun), { ...summarizeStory(leaseRun), bRunningMs: undefined }],
      runs: [],
    });
    expect(mixed.find((r) => r.startsWith("| to B's pod Running"))).toContain(
      '5.39 s (5.39 s, never); never in 1 of 2',
    );
  });

  it('lists each round when rounds disagree', () => {
    const split = draRows({
      rounds: 2,
      windowMs: 30_000,
      outcomes: [summarizeStory(leaseRun), { ...summarizeStory(leaseRun), bRan: false }],
      runs: [],
    });
    expect(split.find((r) => r.includes('ran |'))).toContain(
      "round 1: yes; round 2: no, not bound 30 s after the mechanism's last step",
    );
  });
});
