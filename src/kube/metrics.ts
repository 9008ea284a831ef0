// Prometheus metrics shared by every controller in a process, named exactly as client-go's
// workqueue and controller-runtime name them so existing dashboards and alerts apply.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface WorkQueueMetrics {
  depth: Gauge<'name'>;
  adds: Counter<'name'>;
  queueDuration: Histogram<'name'>;
  workDuration: Histogram<'name'>;
  retries: Counter<'name'>;
}

export interface ReconcileMetrics {
  total: Counter<'controller' | 'result'>;
  errors: Counter<'controller'>;
  time: Histogram<'controller'>;
}

// client-go's workqueue buckets: 10ns .. 10s, decades.
const WORKQUEUE_BUCKETS = Array.from({ length: 10 }, (_, i) => 1e-8 * 10 ** i);
// controller-runtime's reconcile_time_seconds buckets.
const RECONCILE_BUCKETS = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9,
  1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60,
];

const workQueueByRegistry = new WeakMap<Registry, WorkQueueMetrics>();
const reconcileByRegistry = new WeakMap<Registry, ReconcileMetrics>();

/** The workqueue_* metrics of registry, created on first use (many queues share them). */
export function workQueueMetrics(registry: Registry): WorkQueueMetrics {
  let m = workQueueByRegistry.get(registry);
  if (!m) {
    const registers = [registry];
    m = {
      depth: new Gauge({
        name: 'workqueue_depth',
        help: 'Current depth of workqueue',
        labelNames: ['name'],
        registers,
      }),
      adds: new Counter({
        name: 'workqueue_adds_total',
        help: 'Total number of adds handled by workqueue',
        labelNames: ['name'],
        registers,
      }),
      queueDuration: new Histogram({
        name: 'workqueue_queue_duration_seconds',
        help: 'How long in seconds an item stays in workqueue before being requested',
        labelNames: ['name'],
        buckets: WORKQUEUE_BUCKETS,
        registers,
      }),
      workDuration: new Histogram({
        name: 'workqueue_work_duration_seconds',
        help: 'How long in seconds processing an item from workqueue takes',
        labelNames: ['name'],
        buckets: WORKQUEUE_BUCKETS,
        registers,
      }),
      retries: new Counter({
        name: 'workqueue_retries_total',
        help: 'Total number of retries handled by workqueue',
        labelNames: ['name'],
        registers,
      }),
    };
    workQueueByRegistry.set(registry, m);
  }
  return m;
}

/** The controller_runtime_reconcile_* metrics of registry, created on first use. */
export function reconcileMetrics(registry: Registry): ReconcileMetrics {
  let m = reconcileByRegistry.get(registry);
  if (!m) {
    const registers = [registry];
    m = {
      total: new Counter({
        name: 'controller_runtime_reconcile_total',
        help: 'Total number of reconciliations per controller',
        labelNames: ['controller', 'result'],
        registers,
      }),
      errors: new Counter({
        name: 'controller_runtime_reconcile_errors_total',
        help: 'Total number of reconciliation errors per controller',
        labelNames: ['controller'],
        registers,
      }),
      time: new Histogram({
        name: 'controller_runtime_reconcile_time_seconds',
        help: 'Length of time per reconciliation per controller',
        labelNames: ['controller'],
        buckets: RECONCILE_BUCKETS,
        registers,
      }),
    };
    reconcileByRegistry.set(registry, m);
  }
  return m;
}
