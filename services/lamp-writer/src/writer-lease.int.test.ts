import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acquireWriterLease, createDb, releaseWriterLease, renewWriterLease, type Database } from '@fitlamp/db';
import { sql, type Kysely } from 'kysely';
import { createLampClient, type LampClient } from '@fitlamp/lamp';
import { jobIdFor, queueCatalog, type DeliverPayload } from '@fitlamp/queues';
import { createLogger } from '@fitlamp/runtime';
import { createLampSimulator, LAMP_DEFAULT_CREDENTIAL, type LampSimulator } from '@fitlamp/simulators';
import { createTestDatabase, testRedisUrl, uniquePrefix, type TestDatabase } from '@fitlamp/testing';
import { createDeliverProcessor, createWriterMetrics, type DeliverDeps } from './deliver.worker.ts';

const BASE = Date.parse('2026-11-20T08:00:00Z');
/** Races that must overlap; a few more participants are raced, since under load a second job may start only after the first ended. */
const RACES = 200;
const PARTICIPANTS = 230;
const EVENTS = 3;
/** Per writer. Jobs hold a pooled connection only between POSTs, so 22 connections serve them. */
const CONCURRENCY = 40;
const participants = Array.from({ length: PARTICIPANTS }, (_, i) => `R${String(i).padStart(4, '0')}`);

describe('writer lease', () => {
  let t: TestDatabase;
  let sim: LampSimulator;
  let lamp: LampClient;

  beforeAll(async () => {
    t = await createTestDatabase();
    sim = createLampSimulator({ participants: participants.map((id) => ({ id, studyId: 'S1' })) });
    lamp = createLampClient({ baseUrl: await sim.app.listen({ port: 0, host: '127.0.0.1' }), ...LAMP_DEFAULT_CREDENTIAL, timeoutMs: 5_000 });
    await t.db.insertInto('participants').values(participants.map((id) => ({ id }))).execute();
  });
  afterAll(async () => {
    await lamp.close();
    await sim.app.close();
    await t.drop();
  });

  it('is held by one holder at a time, renewable only by it, and taken over once expired', async () => {
    const [p] = participants;
    expect(await acquireWriterLease(t.db, p!, 'a', 60_000)).toBe(true);
    expect(await acquireWriterLease(t.db, p!, 'b', 60_000)).toBe(false);
    expect(await renewWriterLease(t.db, p!, 'b', 60_000)).toBe(false);
    expect(await renewWriterLease(t.db, p!, 'a', 60_000)).toBe(true);
    await releaseWriterLease(t.db, p!, 'b');
    expect(await acquireWriterLease(t.db, p!, 'b', 60_000)).toBe(false);
    // A dead holder's lease lapses; its successor takes it, and the dead one cannot renew it back.
    expect(await acquireWriterLease(t.db, p!, 'a', 30)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(await acquireWriterLease(t.db, p!, 'b', 60_000)).toBe(true);
    expect(await renewWriterLease(t.db, p!, 'a', 60_000)).toBe(false);
    await releaseWriterLease(t.db, p!, 'b');
    expect(await acquireWriterLease(t.db, p!, 'c', 60_000)).toBe(true);
    await releaseWriterLease(t.db, p!, 'c');
  });

  it(`two live writers racing on one participant never send an event twice (${RACES} races)`, { timeout: 120_000 }, async () => {
    await t.db
      .insertInto('records')
      .values(
        participants.flatMap((participantId) =>
          Array.from({ length: EVENTS }, (_, i) => ({
            record_key: `${participantId}|lamp.steps|${BASE + i * 60_000}|`,
            participant_id: participantId,
            stream: 'steps',
            day: '2026-11-20',
            sensor: 'lamp.steps',
            timestamp: BASE + i * 60_000,
            data: JSON.stringify({ value: i + 1, unit: 'count', type: 'step_count', source: 'com.fitbit.webapi' }),
            data_hash: `h${i}`,
            status: 'pending' as const,
          })),
        ),
      )
      .execute();
    // A slow mindLAMP: each POST of 2 events waits before storing, so a writer's batch is in
    // flight (`sending`) while the other writer's job runs. Reads stay fast.
    sim.addFault({ route: 'Participant.create_sensor_events', fault: { kind: 'latency', ms: 400 } });

    // Each writer has its own pool, as two writer processes would.
    const pools = ['a', 'b'].map(() => createDb(t.url, { max: 22 }));
    const depsOf = (db: Kysely<Database>): DeliverDeps => ({
      db,
      lamp,
      logger: createLogger({ name: 'test', level: 'silent' }),
      batchSize: 2,
      maxBytes: 1_000_000,
      leaseMs: 10_000,
      metrics: createWriterMetrics(new Registry()),
    });
    // Two writers that each believe they own the participant's deliver job: two BullMQ worlds, as
    // when a Redis flush lets the fetcher re-add a job while the first still runs. World a gets
    // every participant's job at once; world b gets a participant's job once a's first batch for
    // them is in flight (POSTs take 400 ms), which is when a second writer does harm.
    const worlds = ['a', 'b'].map((name) => ({ name, prefix: uniquePrefix(`lease-${name}`) }));
    const runs: { world: string; participantId: string; start: number; end: number; outcome: string }[] = [];
    const connections: Redis[] = [];
    const queues = worlds.map((w) => {
      const producer = new Redis(testRedisUrl, { maxRetriesPerRequest: 2 });
      connections.push(producer);
      return new Queue<DeliverPayload>(queueCatalog.deliver.name, { connection: producer, prefix: w.prefix });
    });
    const add = (queue: Queue<DeliverPayload>, ids: string[]) =>
      queue.addBulk(
        ids.map((participantId) => ({
          name: queueCatalog.deliver.jobName,
          data: { participantId, reason: 'fetched' as const },
          opts: { ...queueCatalog.deliver.options, jobId: jobIdFor('deliver', participantId) },
        })),
      );
    const completed = new Map<string, number>(worlds.map((w) => [w.name, 0]));
    let failure: Error | undefined;
    const workers = worlds.map((w, i) => {
      const processor = createDeliverProcessor(depsOf(pools[i]!));
      const connection = new Redis(testRedisUrl, { maxRetriesPerRequest: null });
      connections.push(connection);
      const worker = new Worker<DeliverPayload>(
        queueCatalog.deliver.name,
        async (job: Job<DeliverPayload>, token?: string) => {
          const start = Date.now();
          try {
            const summary = await processor(job, token);
            runs.push({ world: w.name, participantId: job.data.participantId, start, end: Date.now(), outcome: `delivered ${summary.delivered}` });
            return summary;
          } catch (error) {
            runs.push({ world: w.name, participantId: job.data.participantId, start, end: Date.now(), outcome: (error as Error).name });
            throw error;
          }
        },
        { connection, prefix: w.prefix, concurrency: CONCURRENCY },
      );
      worker.on('completed', () => completed.set(w.name, completed.get(w.name)! + 1));
      worker.on('failed', (_job, error) => (failure ??= error));
      return worker;
    });
    try {
      await add(queues[0]!, participants);
      const raced = new Set<string>();
      while (completed.get('a')! < PARTICIPANTS || completed.get('b')! < PARTICIPANTS) {
        if (failure) throw failure;
        const inFlight = await t.db
          .selectFrom('delivery_batches')
          .select('participant_id')
          .groupBy('participant_id')
          .having((eb) => eb.fn.countAll(), '=', 1)
          .having(sql<boolean>`bool_and(status = 'sending')`)
          .execute();
        const now = inFlight.map((r) => r.participant_id).filter((id) => !raced.has(id));
        for (const id of now) raced.add(id);
        if (now.length > 0) await add(queues[1]!, now);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(raced.size).toBe(PARTICIPANTS);
    } finally {
      for (const worker of workers) await worker.close();
      for (const queue of queues) await queue.close();
      for (const connection of connections) connection.disconnect();
      for (const pool of pools) await pool.destroy();
    }

    // A race counts when the two worlds' first runs for the participant were active together, by
    // their recorded times.
    let overlapped = 0;
    let backedOff = 0;
    for (const participantId of participants) {
      const [a, b] = worlds.map((w) => runs.filter((r) => r.participantId === participantId && r.world === w.name).sort((x, y) => x.start - y.start)[0]!);
      if (!(a!.start < b!.end && b!.start < a!.end)) continue;
      overlapped++;
      // The second writer either found the lease taken, or took it only once the first had
      // released it (their recorded spans include the release), with nothing left to send.
      expect([a!.outcome, b!.outcome]).toEqual([`delivered ${EVENTS}`, expect.stringMatching(/^(DelayedError|delivered 0)$/)]);
      if (b!.outcome === 'DelayedError') backedOff++;
    }
    expect(overlapped).toBeGreaterThanOrEqual(RACES);

    // Every event reached mindLAMP exactly once; nothing is left pending or in flight.
    const stored = new Map<string, number>();
    for (const participantId of participants) {
      for (const { event } of sim.listEvents({ participantId, sensor: 'lamp.steps' })) {
        const key = `${participantId}|${event.timestamp}|${JSON.stringify(event.data)}`;
        stored.set(key, (stored.get(key) ?? 0) + 1);
      }
    }
    const duplicated = [...stored.values()].filter((n) => n > 1).length;
    expect({ distinct: stored.size, duplicated }).toEqual({ distinct: PARTICIPANTS * EVENTS, duplicated: 0 });
    // The lease, not luck, kept them apart: nearly every second writer met a held lease.
    expect(backedOff).toBeGreaterThanOrEqual(RACES);
    const notDelivered = await t.db.selectFrom('records').select('id').where('status', '!=', 'delivered').execute();
    expect(notDelivered).toEqual([]);
    expect(await t.db.selectFrom('writer_leases').selectAll().execute()).toEqual([]);
    const span = Math.max(...runs.map((r) => r.end)) - Math.min(...runs.map((r) => r.start));
    console.info(`writer lease: ${runs.length} runs over ${span} ms; ${PARTICIPANTS} raced, ${overlapped} overlapped, ${backedOff} backed off, ${duplicated} duplicated`);
  });
});
