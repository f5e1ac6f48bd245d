import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { testRedisUrl, uniquePrefix } from '@fitlamp/testing';
import { createQueues, enqueue, jobIdFor, queueCatalog, type SyncPayload } from './index.ts';

describe('queues on real Redis', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  it('round-trips a job through the catalog and keeps one job per participant', async () => {
    const prefix = uniquePrefix('q');
    const producer = new Redis(testRedisUrl, { maxRetriesPerRequest: 2 });
    const queues = createQueues(producer, prefix);
    cleanups.push(() => producer.quit(), () => queues.close());

    const first = await enqueue(queues, 'sync', { participantId: 'U42', reason: 'connected' }, { delayMs: 200 });
    const second = await enqueue(queues, 'sync', { participantId: 'U42', reason: 'scheduled' });
    expect(first).toBe(jobIdFor('sync', 'U42'));
    expect(second).toBe(first);
    expect(await queues.count('sync')).toBe(1);

    const seen: Array<{ id: string | undefined; data: SyncPayload }> = [];
    const workerConnection = new Redis(testRedisUrl, { maxRetriesPerRequest: null });
    const worker = new Worker<SyncPayload>(
      queueCatalog.sync.name,
      async (job) => {
        seen.push({ id: job.id, data: job.data });
      },
      { connection: workerConnection, prefix },
    );
    cleanups.push(() => workerConnection.quit());
    await new Promise<void>((resolve) => worker.on('completed', () => resolve()));
    await worker.close();
    expect(seen).toEqual([{ id: 'sync-U42', data: { participantId: 'U42', reason: 'connected' } }]);
    // Completed jobs are removed, so the participant can be enqueued again.
    expect(await queues.getJob('sync', 'U42')).toBeUndefined();
    await enqueue(queues, 'sync', { participantId: 'U42', reason: 'scheduled' });
    expect(await queues.count('sync')).toBe(1);
  });

  it('refuses an invalid payload without adding anything', async () => {
    const prefix = uniquePrefix('q');
    const producer = new Redis(testRedisUrl, { maxRetriesPerRequest: 2 });
    const queues = createQueues(producer, prefix);
    cleanups.push(() => producer.quit(), () => queues.close());
    await expect(enqueue(queues, 'deliver', { participantId: 'U1', reason: 'nope' as never })).rejects.toThrow();
    expect(await queues.count('deliver')).toBe(0);
  });
});
