// Shapes of the core objects this folder writes (events.k8s.io/v1 Event, coordination.k8s.io/v1
// Lease), as zod schemas so replies are checked and the TypeScript types follow from them.
import { z } from 'zod';

export const objectReferenceSchema = z.object({
  apiVersion: z.string().optional(),
  kind: z.string().optional(),
  namespace: z.string().optional(),
  name: z.string().optional(),
  uid: z.string().optional(),
  resourceVersion: z.string().optional(),
  fieldPath: z.string().optional(),
});
export type ObjectReference = z.infer<typeof objectReferenceSchema>;

const objectMetaSchema = z.looseObject({
  name: z.string().optional(),
  namespace: z.string().optional(),
  uid: z.string().optional(),
  resourceVersion: z.string().optional(),
});

export const eventSchema = z.looseObject({
  apiVersion: z.literal('events.k8s.io/v1').optional(),
  kind: z.literal('Event').optional(),
  metadata: objectMetaSchema,
  eventTime: z.string(),
  series: z.object({ count: z.number(), lastObservedTime: z.string() }).optional(),
  reportingController: z.string(),
  reportingInstance: z.string(),
  action: z.string(),
  reason: z.string(),
  note: z.string().optional(),
  type: z.enum(['Normal', 'Warning']),
  regarding: objectReferenceSchema,
  related: objectReferenceSchema.optional(),
});
export type KubeEvent = z.infer<typeof eventSchema>;

export const leaseSpecSchema = z.looseObject({
  holderIdentity: z.string().optional(),
  leaseDurationSeconds: z.number().optional(),
  acquireTime: z.string().optional(),
  renewTime: z.string().optional(),
  leaseTransitions: z.number().optional(),
});
export type LeaseSpec = z.infer<typeof leaseSpecSchema>;

export const leaseSchema = z.looseObject({
  apiVersion: z.string().optional(),
  kind: z.string().optional(),
  metadata: objectMetaSchema,
  spec: leaseSpecSchema.optional(),
});
export type Lease = z.infer<typeof leaseSchema>;
