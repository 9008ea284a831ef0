// The API of accel.dmabuf.io/v1alpha1 as zod schemas: TypeScript types, CRDs and runtime validation.
export * from './common.ts';
export * from './accelerator.ts';
export * from './lease.ts';
export * from './eviction.ts';
export * from './export.ts';
export * from './grant.ts';
export * from './policy.ts';
export { InvalidObjectError, parseObject } from './validate.ts';
export { matchesSelector, selectorToString } from './selector.ts';
export { setConditions, findCondition, type ConditionInput } from './conditions.ts';
export { compareText, fitText, MAX_CONDITION_MESSAGE } from './text.ts';
export { kubeTime, preciseTime, timeMs, timeMsOrZero } from './time.ts';
export { LAST_HANDOFF_ANNOTATION, CORDON_ANNOTATION } from './annotations.ts';
export {
  ACCELERATORS,
  ACCELERATOR_LEASES,
  ACCELERATOR_LEASE_POLICIES,
  DMABUF_EXPORTS,
  DMABUF_IMPORT_GRANTS,
} from './resources.ts';
export { CATEGORY, DEFINITIONS, customResourceDefinition } from './definitions.ts';
export { renderCrdFiles, CRD_DIRS } from './generate.ts';
export {
  deviceQueue,
  isFinished,
  isLive,
  leaseExpiry,
  leaseKey,
  queueOrder,
  targetOf,
  type DeviceQueue,
} from './queue.ts';
export * from './dra.ts';
