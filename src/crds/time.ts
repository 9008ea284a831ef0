// Times as the API stores them: metav1.Time is RFC 3339 to the second, and a missing time reads
// as undefined (or a fallback the caller names), never as NaN.

/** `t` (ms since the epoch) as a metav1.Time: RFC 3339 in UTC, whole seconds. */
export function kubeTime(t: number): string {
  return new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** `t` as RFC 3339 with milliseconds: for times people read, and annotations we parse back. */
export function preciseTime(t: number): string {
  return new Date(t).toISOString();
}

/** A stored time in ms since the epoch; undefined when absent. */
export function timeMs(t: string | Date | undefined): number | undefined {
  return t === undefined ? undefined : new Date(t).getTime();
}

/** A stored time in ms since the epoch; 0 (the epoch, older than anything) when absent. */
export function timeMsOrZero(t: string | Date | undefined): number {
  return timeMs(t) ?? 0;
}
