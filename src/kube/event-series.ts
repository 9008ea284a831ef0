// Whether an occurrence of an event starts a new Event object or bumps the series of the one
// recorded a moment ago: the pure half of the recorder, as in client-go's events library.
import type { ObjectReference } from './event-types.ts';

/** What the recorder remembers of one Event it wrote (or is about to write). */
export interface SeriesState {
  /** metadata.name of the Event object. */
  name: string;
  namespace: string;
  /** Occurrences so far (1 for a fresh Event). */
  count: number;
  /** eventTime: first occurrence. */
  firstObserved: number;
  lastObserved: number;
}

export interface Occurrence {
  regarding: ObjectReference;
  type: 'Normal' | 'Warning';
  reason: string;
  action: string;
  note: string;
}

/** Repeats of the same thing about the same object share a key (and so an Event). */
export function seriesKey(o: Occurrence): string {
  const r = o.regarding;
  return JSON.stringify([
    r.apiVersion ?? '',
    r.kind ?? '',
    r.namespace ?? '',
    r.name ?? '',
    r.uid ?? '',
    o.type,
    o.reason,
    o.action,
    o.note,
  ]);
}

/**
 * The state after one more occurrence at `now`: the same Event with count+1 if the previous
 * occurrence was at most windowMs ago, else a fresh Event named by newName().
 */
export function observeOccurrence(
  prev: SeriesState | undefined,
  now: number,
  windowMs: number,
  fresh: { name: string; namespace: string },
): SeriesState {
  if (prev && now - prev.lastObserved <= windowMs) {
    return { ...prev, count: prev.count + 1, lastObserved: now };
  }
  return { ...fresh, count: 1, firstObserved: now, lastObserved: now };
}

/** Namespace of the Event about obj: its own, or `default` for cluster-scoped objects. */
export function eventNamespace(regarding: ObjectReference): string {
  return regarding.namespace || 'default';
}

/** The API server limits note to 1 KiB; longer notes are cut (never rejected). */
export function truncateNote(note: string, maxBytes = 1024): string {
  if (Buffer.byteLength(note) <= maxBytes) return note;
  let cut = note.slice(0, maxBytes);
  while (Buffer.byteLength(cut) > maxBytes - 3) cut = cut.slice(0, -1);
  return `${cut}...`;
}
