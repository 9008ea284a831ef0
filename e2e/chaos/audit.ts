// The replica's audit log: what each component asked of the API server and what it answered,
// told apart by user agent (the controller names its identity there). The recorder judges the
// controllers' pod calls and a stale leader's writes from it, not from anything they say.
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

export interface AuditEvent {
  readonly stage: string;
  readonly verb: string;
  readonly userAgent?: string;
  readonly requestURI: string;
  readonly objectRef?: {
    readonly resource?: string;
    readonly subresource?: string;
    readonly namespace?: string;
    readonly name?: string;
    readonly apiGroup?: string;
  };
  readonly responseStatus?: { readonly code?: number };
  readonly requestReceivedTimestamp: string;
}

/** Metadata of every change and list; reads, watches and Events are left out as noise. */
const POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    resources: [{ group: "", resources: [events] }, { group: events.k8s.io, resources: [events] }]
  - level: None
    verbs: [get, watch]
  - level: Metadata
`;

/** The replica flags that write the audit log into `dir`, and the log's path. */
export function auditFlags(dir: string): { args: string[]; log: string } {
  mkdirSync(dir, { recursive: true });
  const policy = join(dir, 'audit-policy.yaml');
  writeFileSync(policy, POLICY);
  const log = join(dir, 'audit.log');
  return {
    args: [`--audit-policy-file=${policy}`, `--audit-log-path=${log}`, '--audit-log-maxsize=0'],
    log,
  };
}

/** Every complete request in the log so far. */
export function readAudit(log: string): AuditEvent[] {
  if (!existsSync(log)) return [];
  return readFileSync(log, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as AuditEvent)
    .filter((e) => e.stage === 'ResponseComplete');
}

const MUTATING = new Set(['create', 'update', 'patch', 'delete', 'deletecollection']);
const ok = (e: AuditEvent) => (e.responseStatus?.code ?? 0) < 300;
export const isController = (e: AuditEvent) =>
  e.userAgent?.startsWith('accel-lease-controller') ?? false;

/** Accepted evictions and deletions of pods in `namespaces`, by any controller replica. */
export function podCalls(events: readonly AuditEvent[], namespaces: ReadonlySet<string>) {
  return events.filter(
    (e) =>
      isController(e) &&
      ok(e) &&
      e.objectRef?.resource === 'pods' &&
      namespaces.has(e.objectRef.namespace ?? '') &&
      ((e.verb === 'create' && e.objectRef.subresource === 'eviction') ||
        (e.verb === 'delete' && !e.objectRef.subresource)),
  );
}

/**
 * The writes replica `identity` sent after `since` (ms), other than to its election Lease,
 * split into those the API server accepted and those it refused.
 */
export function writesAfter(events: readonly AuditEvent[], identity: string, since: number) {
  const sent = events.filter(
    (e) =>
      e.userAgent?.includes(`(${identity})`) &&
      MUTATING.has(e.verb) &&
      e.objectRef?.resource !== 'leases' &&
      Date.parse(e.requestReceivedTimestamp) > since,
  );
  return { accepted: sent.filter(ok), refused: sent.filter((e) => !ok(e)) };
}

/**
 * Whether an accepted write of the controller could only land on the very version its sender
 * read: a PUT (the controller always sends the resourceVersion it read), a patch of a lease (its
 * finalizers, with resourceVersion), a pod eviction or deletion (UID precondition; I4 and I5
 * judge those too). A patch of an Accelerator may be the cordon mark, which carries nothing, and
 * counts as unconditional.
 */
export function isConditional(e: AuditEvent): boolean {
  const resource = e.objectRef?.resource;
  if (e.verb === 'update') return true;
  if (e.verb === 'patch') return resource === 'acceleratorleases';
  return resource === 'pods';
}

/** Full lists by controller replicas after `since` (ms): informers relisting. */
export function controllerLists(events: readonly AuditEvent[], since: number): number {
  return events.filter(
    (e) => isController(e) && e.verb === 'list' && Date.parse(e.requestReceivedTimestamp) > since,
  ).length;
}
