// Records events.k8s.io/v1 Events without ever failing or blocking the caller: writes are
// queued, repeats within a window become series updates of one Event, errors are logged.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { realClock, toMicroTime, type Clock } from './clock.ts';
import type { KubeClient } from './client.ts';
import { isNotFound } from './errors.ts';
import {
  eventNamespace,
  observeOccurrence,
  seriesKey,
  truncateNote,
  type Occurrence,
  type SeriesState,
} from './event-series.ts';
import { eventSchema, type KubeEvent, type ObjectReference } from './event-types.ts';
import { ResourceClient, type ResourceType } from './resources.ts';

export const EVENTS: ResourceType = {
  group: 'events.k8s.io',
  version: 'v1',
  plural: 'events',
  kind: 'Event',
  namespaced: true,
};

export interface EventRecorderOptions {
  /** Who reports, e.g. accel.dmabuf.io/controller (a qualified name). */
  reportingController: string;
  /** Which replica reports, e.g. the pod name (at most 128 characters). */
  reportingInstance: string;
  logger?: Logger;
  clock?: Clock;
  /** Repeats closer than this extend the series (client-go: 6 minutes). */
  windowMs?: number;
  /** Series remembered; the least recently used are forgotten first. */
  maxSeries?: number;
  /** Pending writes beyond this are dropped (and logged) rather than buffered. */
  maxPending?: number;
}

interface Tracked {
  state: SeriesState;
  occurrence: Occurrence;
  related: ObjectReference | undefined;
  /** Count the server has; 0 until the Event is created. */
  written: number;
}

/**
 * An Event's name: the regarding object's name and a random suffix, as client-go names them, but
 * never longer than the 253 characters a name may have, however long the object's own name is.
 */
export function eventName(base: string): string {
  const suffix = `.${randomBytes(8).toString('hex')}`;
  return base.slice(0, 253 - suffix.length).replace(/[.-]+$/, '') + suffix;
}

export class EventRecorder {
  private readonly events: ResourceClient<KubeEvent>;
  private readonly opts: EventRecorderOptions;
  private readonly clock: Clock;
  private readonly log: Logger | undefined;
  private readonly series = new Map<string, Tracked>();
  private readonly pending = new Set<string>();
  private writing: Promise<void> | undefined;

  constructor(client: KubeClient, opts: EventRecorderOptions) {
    this.events = new ResourceClient(client, EVENTS, (o) => eventSchema.parse(o));
    this.opts = opts;
    this.clock = opts.clock ?? realClock;
    this.log = opts.logger?.child({ component: 'event-recorder' });
  }

  /** Records one occurrence. Returns at once; never throws. */
  event(
    regarding: ObjectReference,
    type: 'Normal' | 'Warning',
    reason: string,
    action: string,
    note: string,
    related?: ObjectReference,
  ): void {
    try {
      const occurrence: Occurrence = { regarding, type, reason, action, note: truncateNote(note) };
      const key = seriesKey(occurrence);
      const prev = this.series.get(key);
      const now = this.clock.now();
      const state = observeOccurrence(prev?.state, now, this.opts.windowMs ?? 6 * 60_000, {
        name: eventName(regarding.name ?? 'unknown'),
        namespace: eventNamespace(regarding),
      });
      const fresh = !prev || prev.state.name !== state.name;
      if (!this.pending.has(key) && this.pending.size >= (this.opts.maxPending ?? 1000)) {
        this.log?.warn(
          { reason, regarding: refText(regarding) },
          'event dropped: too many pending',
        );
        return;
      }
      this.series.delete(key); // re-insert: Map order doubles as LRU order
      this.series.set(key, { state, occurrence, related, written: fresh ? 0 : prev.written });
      this.evict();
      this.pending.add(key);
      this.kick();
    } catch (err) {
      this.log?.warn({ err: String(err), reason }, 'event not recorded');
    }
  }

  /** Resolves when every queued write has been attempted (for shutdown and tests). */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
  }

  private kick(): void {
    this.writing ??= this.drain().finally(() => {
      this.writing = undefined;
      if (this.pending.size > 0) this.kick();
    });
  }

  private async drain(): Promise<void> {
    // Start after the caller's synchronous burst, so repeats fold into the first write.
    await Promise.resolve();
    for (const key of this.pending) {
      this.pending.delete(key);
      const tracked = this.series.get(key);
      if (tracked) await this.write(tracked);
    }
  }

  private async write(t: Tracked): Promise<void> {
    const { state, occurrence } = t;
    const count = state.count;
    try {
      if (t.written > 0) {
        if (t.written >= count) return;
        try {
          await this.events.mergePatch(state.name, state.namespace, {
            series: { count, lastObservedTime: toMicroTime(state.lastObserved) },
          });
          t.written = count;
          return;
        } catch (err) {
          if (!isNotFound(err)) throw err;
          // The Event expired (events have a TTL) or was deleted: start a new one.
          t.state = {
            ...state,
            name: eventName(state.name.replace(/\.[^.]*$/, '')),
          };
        }
      }
      await this.events.create(this.render(t));
      t.written = count;
    } catch (err) {
      this.log?.warn(
        {
          err: err instanceof Error ? err.message : String(err),
          reason: occurrence.reason,
          regarding: refText(occurrence.regarding),
        },
        'event not recorded',
      );
    }
  }

  private render(t: Tracked): KubeEvent {
    const { state, occurrence: o } = t;
    return {
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { name: t.state.name, namespace: state.namespace },
      eventTime: toMicroTime(state.firstObserved),
      // The API accepts a series only from the second occurrence on.
      ...(state.count > 1
        ? { series: { count: state.count, lastObservedTime: toMicroTime(state.lastObserved) } }
        : {}),
      reportingController: this.opts.reportingController,
      reportingInstance: this.opts.reportingInstance.slice(0, 128),
      action: o.action.slice(0, 128),
      reason: o.reason.slice(0, 128),
      note: o.note,
      type: o.type,
      regarding: o.regarding,
      ...(t.related ? { related: t.related } : {}),
    };
  }

  private evict(): void {
    const max = this.opts.maxSeries ?? 4096;
    for (const key of this.series.keys()) {
      if (this.series.size <= max) break;
      if (!this.pending.has(key)) this.series.delete(key);
    }
  }
}

function refText(r: ObjectReference): string {
  return `${r.kind ?? '?'} ${r.namespace ? `${r.namespace}/` : ''}${r.name ?? '?'}`;
}
