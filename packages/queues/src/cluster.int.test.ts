// Sharded queues on a real 3-master Redis Cluster: jobs round-trip through every shard, a
// participant always lands on its shard, a worker consumes only its configured shards, and the
// shards' keys are spread over all three masters.
import type { Cluster } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisCluster, type RedisCluster } from '@fitlamp/harness';
import { createProducerConnection, createWorkerConnection, type RedisConnection } from '@fitlamp/runtime';
import { uniquePrefix } from '@fitlamp/testing';
import {
  createQueues,
  enqueue,
  registerQueueMetrics,
  shardLayout,
  shardOf,
  shardQueueName,
  startShardWorkers,
  type SyncPayload,
} from './index.ts';

const SHARDS = 6;

async function ready(connection: RedisConnection): Promise<void> {
  if (connection.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    connection.once('ready', () => resolve());
    connection.once('error', reject);
  });
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('sharded queues on a Redis Cluster', () => {
  let cluster: RedisCluster;
  const opened: RedisConnection[] = [];
  const connect = async (kind: 'producer' | 'worker') => {
    const target = { url: cluster.url, cluster: true };
    const connection = kind === 'producer' ? createProducerConnection(target) : createWorkerConnection(target);
    connection.on('error', () => {});
    opened.push(connection);
    await ready(connection);
    return connection;
  };

  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3 });
  }, 60_000);
  afterAll(async () => {
    for (const connection of opened) connection.disconnect();
    await cluster?.stop();
  });

  it('round-trips sync and delivery jobs through every shard, spread over all three masters', async () => {
    const prefix = uniquePrefix('cluster');
    const layout = shardLayout({ shards: SHARDS, cluster: true });
    const producer = await connect('producer');
    const workerConnection = await connect('worker');
    const queues = createQueues(producer, prefix, layout);

    const participants = Array.from({ length: 36 }, (_, i) => `P${i}`);
    const shardsUsed = new Set(participants.map((p) => shardOf(p, SHARDS)));
    expect(shardsUsed.size).toBe(SHARDS);

    // The fetcher's shape: a sync job ends by enqueueing the participant's delivery.
    const synced: Array<{ participantId: string; queue: string }> = [];
    const delivered = new Map<string, { queue: string; result: string }>();
    const syncWorkers = startShardWorkers('sync', async (job) => {
      synced.push({ participantId: job.data.participantId, queue: job.queueName });
      await enqueue(queues, 'deliver', { participantId: job.data.participantId, reason: 'fetched' });
      return `synced ${job.data.participantId}`;
    }, { connection: workerConnection, prefix, layout, concurrency: 6 });
    const deliverWorkers = startShardWorkers<'deliver', string>('deliver', async (job) => `delivered ${job.data.participantId}`, {
      connection: workerConnection,
      prefix,
      layout,
      concurrency: 6,
    });
    for (const worker of deliverWorkers.workers) {
      worker.on('completed', (job, result) => delivered.set(job.data.participantId, { queue: job.queueName, result }));
    }
    try {
      for (const participantId of participants) await enqueue(queues, 'sync', { participantId, reason: 'scheduled' });
      await until('every delivery', () => delivered.size === participants.length);
    } finally {
      await syncWorkers.close();
      await deliverWorkers.close();
    }

    expect(synced.map((s) => s.participantId).sort()).toEqual([...participants].sort());
    for (const { participantId, queue } of synced) expect(queue).toBe(shardQueueName('sync', shardOf(participantId, SHARDS), layout));
    for (const participantId of participants) {
      expect(delivered.get(participantId)).toEqual({
        queue: shardQueueName('deliver', shardOf(participantId, SHARDS), layout),
        result: `delivered ${participantId}`,
      });
    }

    // Each master holds the keys of exactly the shards whose hash slots it serves: two each.
    const masters = (producer as Cluster).nodes('master');
    expect(masters).toHaveLength(3);
    const shardsPerMaster: number[][] = [];
    for (const master of masters) {
      const keys = await master.keys(`${prefix}:*`);
      const shards = new Set(keys.map((key) => Number(/^[^:]+:(?:sync|deliver)-(\d+)\{/.exec(key)?.[1])));
      expect(shards.has(NaN)).toBe(false);
      shardsPerMaster.push([...shards].sort());
    }
    expect(shardsPerMaster.map((s) => s.length)).toEqual([2, 2, 2]);
    expect(new Set(shardsPerMaster.flat()).size).toBe(SHARDS);

    await queues.close();
  }, 60_000);

  it('a worker consumes only its configured shards; metrics cover every shard', async () => {
    const prefix = uniquePrefix('cluster');
    const layout = shardLayout({ shards: 3, cluster: true });
    const producer = await connect('producer');
    const workerConnection = await connect('worker');
    const queues = createQueues(producer, prefix, layout);
    const registry = new Registry();
    registerQueueMetrics(registry, queues);

    const participants = Array.from({ length: 30 }, (_, i) => `Q${i}`);
    const seen: string[] = [];
    const workers = startShardWorkers('sync', async (job) => void seen.push(job.data.participantId), {
      connection: workerConnection,
      prefix,
      layout,
      consumed: [0, 2],
      concurrency: 4,
    });
    try {
      for (const participantId of participants) await enqueue(queues, 'sync', { participantId, reason: 'manual' });
      const expected = participants.filter((p) => shardOf(p, 3) !== 1);
      const left = participants.filter((p) => shardOf(p, 3) === 1);
      expect(left.length).toBeGreaterThan(0);
      await until('shards 0 and 2 drained', () => seen.length === expected.length);
      expect(seen.sort()).toEqual(expected.sort());
      // Shard 1 has no consumer here: its jobs wait, and /metrics says so per shard.
      expect(await queues.count('sync')).toBe(left.length);
      for (const p of left) expect((await queues.getJob('sync', p))?.data).toEqual({ participantId: p, reason: 'manual' } satisfies SyncPayload);
      const metric = await registry.getSingleMetric('fitlamp_queue_jobs')!.get();
      const waiting = (shard: string) =>
        metric.values.find((v) => v.labels.queue === 'sync' && v.labels.shard === shard && v.labels.state === 'waiting')?.value;
      expect([waiting('0'), waiting('1'), waiting('2')]).toEqual([0, left.length, 0]);
      expect(metric.values.filter((v) => v.labels.queue === 'deliver')).toHaveLength(3 * 6);
    } finally {
      await workers.close();
      await queues.close();
    }
  }, 60_000);
});
