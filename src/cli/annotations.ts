// Accelerator annotations the plugin reads. The controller and reaper define the same values in
// their own folders; src/crds does not export them yet, so they are declared once here.

/** Set by the reaper on a device whose pins no eviction can clear; placement skips it. */
export const CORDON_ANNOTATION = 'accel.dmabuf.io/cordoned';
