import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findScheduledStreams } from '@fitlamp/db';
import { createQueues, type QueueSet } from '@fitlamp/queues';
import { createLogger } from '@fitlamp/runtime';
import { createTestDatabase, seedChunk, testRedisUrl, uniquePrefix, type TestDatabase } from '@fitlamp/testing';
import { runTick, type TickDeps } from './tick.ts';

describe('scheduler tick on real Postgres and Redis', () => {
  let t: TestDatabase;
  let redis: Redis;
  const opened: QueueSet[] = [];
  const now = Date.parse('2026-11-20T12:00:00Z');

  beforeAll(async () => {
    t = await createTestDatabase();
    redis = new Redis(testRedisUrl, { maxRetriesPerRequest: 2 });
    await t.db.insertInto('participants').values([{ id: 'DUE' }, { id: 'LATER' }, { id: 'GONE' }, { id: 'NEW' }]).execute();
    await t.db
      .insertInto('provider_connections')
      .values([
        { participant_id: 'DUE', provider: 'fitbit', status: 'connected' },
        { participant_id: 'LATER', provider: 'fitbit', status: 'connected' },
        { participant_id: 'GONE', provider: 'fitbit', status: 'needs_reconsent' },
        { participant_id: 'NEW', provider: 'google-health', status: 'connected' },
      ])
      .execute();
    await t.db
      .insertInto('sync_cursors')
      .values([
        { participant_id: 'DUE', stream: 'steps', next_due_at: new Date(now - 1_000) },
        { participant_id: 'DUE', stream: 'sleep', next_due_at: new Date(now - 5_000) },
        { participant_id: 'LATER', stream: 'steps', next_due_at: new Date(now + 600_000) },
        { participant_id: 'GONE', stream: 'steps', next_due_at: new Date(now - 1_000) },
      ])
      .execute();
  });
  afterAll(async () => {
    for (const q of opened) await q.close();
    redis.disconnect();
    await t.drop();
  });

  const depsFor = (prefix: string): TickDeps => {
    const queues = createQueues(redis, prefix);
    opened.push(queues);
    return { db: t.db, queues, logger: createLogger({ name: 't', level: 'silent' }), spreadMs: 0, sweepAfterMs: 60_000, now: () => now };
  };

  it('enqueues exactly one sync per due, connected participant however many schedulers tick', async () => {
    const prefix = uniquePrefix('sched');
    const a = depsFor(prefix);
    const b = depsFor(prefix);
    const results = await Promise.all([runTick(a), runTick(b), runTick(a)]);
    // NEW has no cursors: it is due now, found without a placeholder cursor being written.
    expect(results.map((r) => r.dueParticipants)).toEqual([2, 2, 2]);
    expect(await findScheduledStreams(t.db, 'NEW')).toEqual([]);
    const jobs = await a.queues.getJobs('sync', ['waiting', 'delayed', 'prioritized']);
    expect(jobs.map((j) => j.id).sort()).toEqual(['sync-DUE', 'sync-NEW']);
    expect(jobs.every((j) => j.data.reason === 'scheduled')).toBe(true);
  });

  it('re-creates every lost job after Redis forgets them (FLUSHALL stand-in)', async () => {
    const prefix = uniquePrefix('sched');
    const deps = depsFor(prefix);
    await runTick(deps);
    expect(await deps.queues.count('sync')).toBe(2);
    await Promise.all(deps.queues.sync.map((q) => q.obliterate({ force: true })));
    expect(await deps.queues.count('sync')).toBe(0);
    await runTick(deps);
    expect(await deps.queues.count('sync')).toBe(2);
  });

  it('sweeps records left undelivered and batches left mid-flight into delivery jobs', async () => {
    const prefix = uniquePrefix('sched');
    const deps = depsFor(prefix);
    // Outbox rows carry the database's time (the scheduler's own clock may be simulated).
    const old = new Date(Date.now() - 3_600_000);
    const event = (key: string) => [{ key, timestamp: 1, data: {} }];
    await seedChunk(t.db, { participantId: 'DUE', stream: 'steps', day: '2026-11-20', status: 'pending', events: event('a') });
    await seedChunk(t.db, { participantId: 'LATER', stream: 'steps', day: '2026-11-20', status: 'pending', events: event('b') });
    await seedChunk(t.db, { participantId: 'GONE', stream: 'steps', day: '2026-11-20', status: 'delivered', events: event('c') });
    await t.db.updateTable('event_chunks').set({ updated_at: old }).where('participant_id', 'in', ['DUE', 'GONE']).execute();
    await t.db
      .insertInto('delivery_batches')
      .values({ participant_id: 'NEW', status: 'unknown', event_count: 1, bytes: 10, from_ts: 1, to_ts: 1, updated_at: old })
      .execute();
    const result = await runTick(deps);
    expect(result.deliverySweeps).toBe(2);
    const jobs = await deps.queues.getJobs('deliver', ['waiting']);
    expect(jobs.map((j) => j.id).sort()).toEqual(['deliver-DUE', 'deliver-NEW']);
  });
});
