import { Gauge, type Registry } from 'prom-client';
import type { QueueSet } from './catalog.ts';

const STATES = ['waiting', 'active', 'delayed', 'failed', 'prioritized', 'waiting-children'] as const;

/**
 * `fitlamp_queue_jobs{queue,shard,state}`: jobs per queue kind (`sync`, `deliver`), shard and
 * state, read from Redis at scrape time. Sum over `shard` for a kind's depth; `waiting` (plus
 * `prioritized`) is what autoscalers use.
 */
export function registerQueueMetrics(registry: Registry, queues: QueueSet): void {
  new Gauge({
    name: 'fitlamp_queue_jobs',
    help: 'Jobs per queue kind, shard and state, read from Redis when scraped',
    labelNames: ['queue', 'shard', 'state'],
    registers: [registry],
    async collect() {
      for (const { kind, shard, queue } of queues.all) {
        try {
          const counts = await queue.getJobCounts(...STATES);
          for (const state of STATES) this.set({ queue: kind, shard: String(shard), state }, counts[state] ?? 0);
        } catch {
          // Redis down: /readyz says so; leave the last values rather than failing the scrape.
        }
      }
    },
  });
}
