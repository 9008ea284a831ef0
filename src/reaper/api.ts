// The reaper's calls to the API server: policy/v1 Evictions and pod deletions, each with a UID
// precondition, their answers turned into the outcomes the records understand.
import { retryAfterSeconds, statusCode, type KubeClient } from '../kube/index.ts';
import type { ReaperEffect } from './effects.ts';
import type { CallOutcome } from './records.ts';

type PodCall = Extract<ReaperEffect, { type: 'evict' | 'delete' }>;

function outcomeOf(err: unknown): CallOutcome {
  const code = statusCode(err);
  // 409 here is the UID precondition: the pod with that name is a replacement, ours is gone.
  if (code === 404 || code === 409) return { kind: 'gone' };
  const message = err instanceof Error ? err.message : String(err);
  if (code === 429) {
    const after = retryAfterSeconds(err);
    return { kind: 'refused', message, ...(after !== undefined && { retryAfterSeconds: after }) };
  }
  return { kind: 'failed', message };
}

/**
 * Evict or delete the pod an effect names. Never throws: every answer becomes an outcome.
 * A delete uses the effect's gracePeriodSeconds (absent: the pod's own), never 0 unless given.
 */
export async function callPod(
  client: KubeClient,
  effect: PodCall,
  signal?: AbortSignal,
): Promise<CallOutcome> {
  const { namespace, name } = effect.pod;
  const base = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`;
  const preconditions = { uid: effect.uid };
  try {
    if (effect.type === 'evict') {
      await client.request({
        method: 'POST',
        path: `${base}/eviction`,
        body: {
          apiVersion: 'policy/v1',
          kind: 'Eviction',
          metadata: { name, namespace },
          deleteOptions: { preconditions },
        },
        ...(signal && { signal }),
      });
    } else {
      await client.request({
        method: 'DELETE',
        path: base,
        body: {
          apiVersion: 'v1',
          kind: 'DeleteOptions',
          preconditions,
          ...(effect.gracePeriodSeconds !== undefined && {
            gracePeriodSeconds: effect.gracePeriodSeconds,
          }),
        },
        ...(signal && { signal }),
      });
    }
    return { kind: 'accepted' };
  } catch (err) {
    return outcomeOf(err);
  }
}
