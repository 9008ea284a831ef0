// Annotations the controller writes on Accelerators: part of the API operators read and clear.

/** Set with every owner change; placement prefers the device idle longest. */
export const LAST_HANDOFF_ANNOTATION = 'accel.dmabuf.io/last-handoff';

/**
 * Set on a device whose pins cannot be cleared (the reaper found no evictable holder); no
 * selector lease is placed on it until an operator removes it:
 * `kubectl annotate accel NAME accel.dmabuf.io/cordoned-`.
 */
export const CORDON_ANNOTATION = 'accel.dmabuf.io/cordoned';
