// Eviction records: the reaper's only memory of a handoff (I5), kept in a lease's status.evictions
// or, when no lease waits, in the Accelerator's spec.owner.idleEvictions. Every fact is a field.
import { z } from 'zod';
import { PodRef, Timestamp } from './common.ts';

/**
 * Planned: chosen, nothing sent. Evicting: an eviction was requested. Refused / Failed: the last
 * eviction got a 429 / another error and is retried after a backoff (a refusal sooner: see
 * src/reaper/decide.ts, retryAt). Deleted: deleted after the
 * deadline. Evicted / Deleted with `finished`: the pod is gone. DryRun: nothing is ever sent.
 */
export const EvictionResult = z.enum([
  'Planned',
  'Evicting',
  'Evicted',
  'Deleted',
  'Refused',
  'Failed',
  'DryRun',
]);
export type EvictionResult = z.infer<typeof EvictionResult>;

/**
 * The API server's answer to the last request: Accepted, Refused (429, a PodDisruptionBudget),
 * Gone (404, or 409 on the uid precondition: the pod no longer exists), Failed (anything else).
 */
export const EvictionOutcome = z.enum(['Accepted', 'Refused', 'Gone', 'Failed']);
export type EvictionOutcome = z.infer<typeof EvictionOutcome>;

/** A list of records (a lease's status.evictions, a device's spec.owner.idleEvictions) holds at most this many. */
export const MAX_EVICTION_RECORDS = 1000;

/** One pod eviction made (or planned) to free a device. */
export const EvictionRecord = z
  .object({
    pod: PodRef,
    uid: z.string().max(64),
    reason: z.string().max(1024),
    started: Timestamp.optional().describe(
      'when the first eviction request was sent: the eviction deadline counts from it',
    ),
    finished: Timestamp.optional(),
    attempts: z
      .int()
      .min(1)
      .max(1000000)
      .optional()
      .describe(
        'requests sent so far for this pod, evictions and then deletions, counted together',
      ),
    lastAttemptTime: Timestamp.optional().describe('when the last of them was sent'),
    lastOutcome: EvictionOutcome.optional().describe(
      'the answer to the last request; absent while none is recorded (in flight, or lost)',
    ),
    retryAfterSeconds: z
      .int()
      .min(1)
      .max(86400)
      .optional()
      .describe(
        'the Retry-After the API server named with the last refusal (429): the retry is sent then, if that is sooner than the backoff',
      ),
    result: EvictionResult,
    message: z.string().max(1024).optional().describe('for people; never read back'),
  })
  .strict();
export type EvictionRecord = z.infer<typeof EvictionRecord>;
