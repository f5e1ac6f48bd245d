import { Gauge, type Registry } from 'prom-client';
import type { Queue } from 'bullmq';

const STATES = ['waiting', 'active', 'delayed', 'failed', 'prioritized', 'waiting-children'] as const;

/**
 * `fitlamp_queue_jobs{queue,state}`: jobs per queue and state, read from Redis at scrape time.
 * `waiting` is the metric autoscalers use (queue depth).
 */
export function registerQueueMetrics(registry: Registry, queues: Queue[]): void {
  new Gauge({
    name: 'fitlamp_queue_jobs',
    help: 'Jobs per queue and state, read from Redis when scraped',
    labelNames: ['queue', 'state'],
    registers: [registry],
    async collect() {
      for (const queue of queues) {
        try {
          const counts = await queue.getJobCounts(...STATES);
          for (const state of STATES) this.set({ queue: queue.name, state }, counts[state] ?? 0);
        } catch {
          // Redis down: /readyz says so; leave the last values rather than failing the scrape.
        }
      }
    },
  });
}
