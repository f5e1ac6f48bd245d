import { Redis } from 'ioredis';
import type { Kysely } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createDb, scheduleStreams, type Database } from '@fitlamp/db';
import { startRedisServer, type RedisServer } from '@fitlamp/harness';
import { createQueues, type QueueSet } from '@fitlamp/queues';
import { createLogger, createProducerConnection, type RedisConnection } from '@fitlamp/runtime';
import { createTestDatabase, testRedisUrl, uniquePrefix, type TestDatabase } from '@fitlamp/testing';
import { runTick } from './tick.ts';
import { startTickLoop, type TickLoop, type TickOutcome } from './tick-loop.ts';

const logger = createLogger({ name: 't', level: 'silent' });

/**
 * A replica's timer, ended by hand: the loop's wait returns when the test calls `advance()`.
 * Each replica has its own, so the test decides the phase of every replica within an interval.
 */
function manualTimer() {
  let waiting: (() => void) | undefined;
  return {
    sleep(_ms: number, signal: AbortSignal): Promise<void> {
      return new Promise((resolve) => {
        if (signal.aborted) return resolve();
        const end = () => {
          waiting = undefined;
          resolve();
        };
        waiting = end;
        signal.addEventListener('abort', end, { once: true });
      });
    },
    /** Whether the loop is waiting, which it does only after reporting its attempt. */
    get waiting() {
      return waiting !== undefined;
    },
    advance() {
      waiting?.();
    },
  };
}

/** One scheduler replica: its own pool, Redis connection and queues, as a separate process would have. */
interface Replica {
  name: string;
  db: Kysely<Database>;
  redis: RedisConnection;
  queues: QueueSet;
  loop: TickLoop;
  timer: ReturnType<typeof manualTimer>;
  /** Passes this replica ran (the work). */
  work: { passes: number };
  outcomes: TickOutcome[];
}

describe('scheduler tick loop: two replicas on real Postgres and Redis', () => {
  let t: TestDatabase;
  let server: RedisServer;
  let admin: Redis;
  const replicas: Replica[] = [];
  const prefix = uniquePrefix('loop');

  function startReplica(name: string): Replica {
    const db = createDb(t.url, { max: 4 });
    // The service's own producer settings: no offline queue, so commands fail fast while Redis is away.
    const redis = createProducerConnection(server.url);
    redis.on('error', () => {});
    const queues = createQueues(redis, prefix);
    // BullMQ re-emits connection errors on each queue; the outage test causes some on purpose.
    for (const { queue } of queues.all) queue.on('error', () => {});
    const timer = manualTimer();
    const outcomes: TickOutcome[] = [];
    const work = { passes: 0 };
    const loop = startTickLoop({
      db,
      intervalMs: 60_000,
      logger,
      sleep: timer.sleep,
      onTick: (outcome) => outcomes.push(outcome),
      tick: () => {
        work.passes++;
        return runTick({ db, queues, logger, spreadMs: 0, sweepAfterMs: 60_000 });
      },
    });
    const replica: Replica = { name, db, redis, queues, timer, loop, work, outcomes };
    replicas.push(replica);
    return replica;
  }

  const stopped = new Set<Replica>();
  const running = () => replicas.filter((r) => !stopped.has(r));

  /** Waits until the replica has reported its attempt (it then waits for its timer); answers the attempt. */
  async function attemptOf(r: Replica, before: number): Promise<TickOutcome['kind']> {
    await vi.waitFor(() => expect(r.timer.waiting).toBe(true), { timeout: 20_000, interval: 5 });
    const fresh = r.outcomes.slice(before);
    // One attempt per replica per interval.
    expect(fresh, r.name).toHaveLength(1);
    return fresh[0]!.kind;
  }

  /**
   * One interval with the replicas' timers ending at different moments within it, in `order`
   * (each replica tries the lock only after the previous one finished its attempt, as replicas
   * started at different times do). Answers what each running replica did.
   */
  async function round(order: 'forward' | 'backward' = 'forward'): Promise<Map<string, TickOutcome['kind']>> {
    const live = running();
    if (order === 'backward') live.reverse();
    const kinds = new Map<string, TickOutcome['kind']>();
    for (const r of live) {
      const before = r.outcomes.length;
      r.timer.advance();
      kinds.set(r.name, await attemptOf(r, before));
    }
    return kinds;
  }

  const syncJobs = async () => (await replicas[0]!.queues.getJobs('sync', ['waiting', 'delayed', 'prioritized'])).map((j) => j.id);

  beforeAll(async () => {
    t = await createTestDatabase();
    server = await startRedisServer();
    admin = new Redis(server.url, { maxRetriesPerRequest: 1, lazyConnect: true });
    admin.on('error', () => {});
    await admin.connect();
    // P1 is connected and due now; P2 is connected without any cursor: due as well.
    await t.db.insertInto('participants').values([{ id: 'P1' }, { id: 'P2' }]).execute();
    await t.db
      .insertInto('provider_connections')
      .values([
        { participant_id: 'P1', provider: 'fitbit', status: 'connected' },
        { participant_id: 'P2', provider: 'google-health', status: 'connected' },
      ])
      .execute();
    await scheduleStreams(t.db, 'P1', ['steps']);
  });

  afterEach(async () => {
    // Jobs from one test must not satisfy the next one's assertions.
    await admin.flushall().catch(() => {});
  });

  afterAll(async () => {
    for (const r of replicas) {
      await r.loop.stop();
      await r.queues.close().catch(() => {});
      r.redis.disconnect();
      await r.db.destroy();
    }
    admin.disconnect();
    await server.stop();
    await t.drop();
  });

  it('ticks once per interval: the replica holding the lock does the work, the other skips', async () => {
    // Both start at once and race for the lock.
    const started = [startReplica('a'), startReplica('b')];
    const first = await Promise.all(started.map((r) => attemptOf(r, 0)));
    expect(first.sort()).toEqual(['ok', 'skipped']);
    expect((await syncJobs()).sort()).toEqual(['sync-P1', 'sync-P2']);

    const rounds = 6;
    for (let i = 0; i < rounds; i++) {
      // Either replica's timer may end first in an interval.
      const kinds = await round(i % 2 === 0 ? 'forward' : 'backward');
      expect([...kinds.values()].sort(), `interval ${i + 2}`).toEqual(['ok', 'skipped']);
    }
    // Across both replicas, the pass ran exactly once per interval.
    expect(replicas.reduce((n, r) => n + r.work.passes, 0)).toBe(rounds + 1);
    expect(replicas.reduce((n, r) => n + r.outcomes.filter((o) => o.kind === 'skipped').length, 0)).toBe(rounds + 1);
  });

  it('goes on ticking after a Redis FLUSHALL and re-creates the lost jobs', async () => {
    await round();
    expect((await syncJobs()).sort()).toEqual(['sync-P1', 'sync-P2']);
    await admin.flushall();
    expect(await syncJobs()).toEqual([]);

    const kinds = await round();
    expect([...kinds.values()].sort()).toEqual(['ok', 'skipped']);
    expect((await syncJobs()).sort()).toEqual(['sync-P1', 'sync-P2']);
  });

  it('survives Redis going away: the interval’s tick fails, and the first one after Redis is back re-creates the jobs', async () => {
    await round();
    await server.stop();
    await vi.waitFor(() => expect(replicas.every((r) => r.redis.status !== 'ready')).toBe(true), { timeout: 20_000, interval: 10 });

    const down = await round();
    // Still one replica made the interval's attempt (and failed); the other skipped.
    expect([...down.values()].sort()).toEqual(['error', 'skipped']);

    server = await startRedisServer({ port: server.port });
    await vi.waitFor(() => expect(replicas.every((r) => r.redis.status === 'ready')).toBe(true), { timeout: 20_000, interval: 10 });
    await admin.connect().catch(() => {});

    const back = await round();
    expect([...back.values()].sort()).toEqual(['ok', 'skipped']);
    // The restarted Redis kept nothing (no persistence): Postgres said what is due, and the jobs are back.
    expect((await syncJobs()).sort()).toEqual(['sync-P1', 'sync-P2']);
  });

  it('hands over when the replica holding the lock stops', async () => {
    await round();
    const holder = running().find((r) => r.outcomes.at(-1)?.kind === 'ok')!;
    const other = running().find((r) => r !== holder)!;
    stopped.add(holder);
    await holder.loop.stop();
    const passes = other.work.passes;

    const kinds = await round();
    expect(kinds).toEqual(new Map([[other.name, 'ok']]));
    expect(other.work.passes).toBe(passes + 1);
  });
});

describe('scheduler tick loop on its own timer', () => {
  let t: TestDatabase;
  let redis: Redis;
  let queues: QueueSet;

  beforeAll(async () => {
    t = await createTestDatabase();
    redis = new Redis(testRedisUrl, { maxRetriesPerRequest: 2 });
    queues = createQueues(redis, uniquePrefix('loop'));
  });
  afterAll(async () => {
    await queues.close();
    redis.disconnect();
    await t.drop();
  });

  it('keeps ticking until stopped, and ticks no more after stop() resolves', async () => {
    const outcomes: TickOutcome[] = [];
    const loop = startTickLoop({
      db: t.db,
      intervalMs: 20,
      logger,
      onTick: (outcome) => outcomes.push(outcome),
      tick: () => runTick({ db: t.db, queues, logger, spreadMs: 0, sweepAfterMs: 60_000 }),
    });
    await vi.waitFor(() => expect(outcomes.filter((o) => o.kind === 'ok').length).toBeGreaterThanOrEqual(3), { timeout: 20_000, interval: 10 });
    await loop.stop();
    const after = outcomes.length;
    expect(outcomes.every((o) => o.kind === 'ok')).toBe(true);
    // Stopped for good: a second stop is harmless, and no attempt follows.
    await loop.stop();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(outcomes.length).toBe(after);
  });
});
