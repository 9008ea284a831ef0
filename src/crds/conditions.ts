// KEP-1623 condition bookkeeping: lastTransitionTime moves only when status actually changes.
import type { Condition } from './common.ts';
import { fitText, MAX_CONDITION_MESSAGE } from './text.ts';

export type ConditionInput = Omit<Condition, 'lastTransitionTime'>;

/**
 * Merge `next` into `current` by type. A condition whose status did not change keeps its
 * lastTransitionTime; reason, message and observedGeneration always follow `next`. Messages are
 * cut to the schema's maxLength: they are built from names and lists a tenant controls.
 */
export function setConditions(
  current: readonly Condition[] | undefined,
  next: readonly ConditionInput[],
  now: string,
): Condition[] {
  const byType = new Map((current ?? []).map((c) => [c.type, c]));
  for (const cond of next) {
    const prev = byType.get(cond.type);
    const lastTransitionTime = prev && prev.status === cond.status ? prev.lastTransitionTime : now;
    const message = fitText(cond.message, MAX_CONDITION_MESSAGE);
    byType.set(cond.type, { ...cond, message, lastTransitionTime });
  }
  return [...byType.values()].sort((a, b) => a.type.localeCompare(b.type));
}

export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}
