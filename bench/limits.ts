// Section 1, the raw limits of this machine for the pipeline's work, measured in the same run:
// inserting the pipeline's own rows into Postgres through the same driver, the mindLAMP
// simulator's accept rate, and a BullMQ job round trip.
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Queue, QueueEvents, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { sql, type Kysely } from 'kysely';
import { createDb, migrateToLatest, type Database } from '@fitlamp/db';
import { createLampClient } from '@fitlamp/lamp';
import { createLampSimulator } from '@fitlamp/simulators';
import { testRedisUrl } from '@fitlamp/testing';
import type { ReplayCommand, ReplayReport } from './replay-client.ts';

export interface RawLimits {
  rows: number;
  /** Events/s: INSERT of the same events as one outbox chunk per participant × stream × day, 4 at a time. */
  postgresInsertRowsPerSecond: number;
  /** Events/s over their chunks' whole life in the outbox: insert, then claim (→ sending), then mark delivered. */
  postgresOutboxRowsPerSecond: number;
  /** Events/s: POSTs of 1,000 events each (the writer's batch) to a fresh in-process mindLAMP simulator, 4 at a time. */
  lampAcceptEventsPerSecond: number;
  /** Jobs/s: add → a worker (concurrency 8) completes it → completion seen, 2,000 jobs. */
  bullmqJobsPerSecond: number;
  bullmqRoundTripP50Ms: number;
  /**
   * Events/s: the backfill's provider requests replayed by a bare client in a process of its own
   * at the fetchers' total concurrency, against the same simulator (latency included) with its
   * day cache emptied first: the rate at which the provider side of this machine can hand out
   * the backfill's events, with no pipeline behind it.
   */
  providerReplay?: { requests: number; concurrency: number; seconds: number; failed: Record<string, number>; eventsPerSecond: number };
}

/** One event the pipeline stored, flattened out of its outbox chunk. */
interface Row extends Record<string, unknown> {
  record_key: string;
  participant_id: string;
  stream: string;
  day: string;
  sensor: string;
  timestamp: number;
  duration: number | null;
  /** The event's data as JSON text. */
  data: string;
  data_hash: string;
}

/** Copies up to `limit` events the pipeline stored, as the fetcher handed them to the outbox. */
export async function sampleRows(db: Kysely<Database>, limit: number): Promise<Row[]> {
  const { rows } = await sql<Row>`
    select e->>'k' as record_key, c.participant_id, c.stream, c.day, e->>'s' as sensor, (e->>'t')::bigint as timestamp,
      (e->>'d')::bigint as duration, (e->'v')::text as data, e->>'h' as data_hash
    from event_chunks c cross join lateral jsonb_array_elements(c.events) e
    order by c.id limit ${limit}`.execute(db);
  return rows.map((r) => ({ ...r, timestamp: Number(r.timestamp), duration: r.duration === null ? null : Number(r.duration) }));
}

async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

const chunks = <T>(xs: readonly T[], n: number): T[][] => Array.from({ length: Math.ceil(xs.length / n) }, (_, i) => xs.slice(i * n, i * n + n));

/** A fresh database on the Postgres server of `adminUrl` (the throughput run's), dropped by `drop()`. */
async function scratchDatabase(adminUrl: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `fitlamp_bench_raw_${randomBytes(4).toString('hex')}`;
  const admin = async (statement: string) => {
    const db = createDb(adminUrl, { max: 1, applicationName: 'fitlamp-bench-raw' });
    try {
      await sql.raw(statement).execute(db);
    } finally {
      await db.destroy();
    }
  };
  await admin(`create database ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => admin(`drop database if exists ${name} with (force)`) };
}

export async function measurePostgres(rows: Row[], adminUrl: string): Promise<{ insert: number; outbox: number }> {
  const t = await scratchDatabase(adminUrl);
  const db = createDb(t.url, { max: 6, applicationName: 'fitlamp-bench-raw' });
  try {
    await migrateToLatest(db);
    const participants = [...new Set(rows.map((r) => r.participant_id as string))];
    await db.insertInto('participants').values(participants.map((id) => ({ id }))).execute();
    // The outbox's unit of write: one chunk row per participant × stream × day (as the fetcher).
    const days = new Map<string, Row[]>();
    for (const r of rows) {
      const key = `${r.participant_id}|${r.stream}|${r.day}`;
      days.set(key, [...(days.get(key) ?? []), r]);
    }
    const t0 = performance.now();
    await mapLimit([...days.values()], 4, async (day) => {
      const first = day[0]!;
      const events = day.map((r) => ({ k: r.record_key, t: r.timestamp, s: r.sensor, d: r.duration, v: JSON.parse(r.data), h: r.data_hash }));
      await db
        .insertInto('event_chunks')
        .values({
          participant_id: first.participant_id,
          stream: first.stream,
          day: first.day,
          seq: 1,
          status: 'pending',
          event_count: events.length,
          from_ts: Math.min(...events.map((e) => e.t)),
          content_hash: first.data_hash,
          events: JSON.stringify(events),
        })
        .execute();
    });
    const insertSeconds = (performance.now() - t0) / 1000;
    // The rest of a chunk's life, done as cheaply as SQL allows: claim up to 1,000 events' worth
    // of chunks at a time per participant, then mark them delivered.
    const t1 = performance.now();
    await mapLimit(participants, 4, async (participantId) => {
      for (;;) {
        const claimed = await sql<{ id: string }>`
          update event_chunks set status = 'sending', updated_at = now() where id in (
            select id from event_chunks where participant_id = ${participantId} and status = 'pending'
            order by from_ts, id limit 10 for update skip locked)
          returning id`.execute(db);
        if (claimed.rows.length === 0) break;
        await sql`update event_chunks set status = 'delivered', delivered_at = now(), updated_at = now()
          where id = any(${sql.val(claimed.rows.map((r) => r.id))}::bigint[])`.execute(db);
      }
    });
    const lifeSeconds = insertSeconds + (performance.now() - t1) / 1000;
    return { insert: rows.length / insertSeconds, outbox: rows.length / lifeSeconds };
  } finally {
    await db.destroy();
    await t.drop();
  }
}

export async function measureLamp(rows: Row[]): Promise<number> {
  const secretKey = randomBytes(8).toString('hex');
  const byParticipant = new Map<string, Row[]>();
  for (const r of rows) byParticipant.set(r.participant_id as string, [...(byParticipant.get(r.participant_id as string) ?? []), r]);
  const sim = createLampSimulator({
    credentials: [{ accessKey: 'bench@fitlamp', secretKey }],
    participants: [...byParticipant.keys()].map((id) => ({ id, studyId: 'S0000000001' })),
  });
  const url = await sim.app.listen({ port: 0, host: '127.0.0.1' });
  const client = createLampClient({ baseUrl: url, accessKey: 'bench@fitlamp', secretKey });
  try {
    const batches = [...byParticipant].flatMap(([participantId, list]) =>
      chunks(list, 1_000).map((chunk) => ({
        participantId,
        events: chunk.map((r) => ({ timestamp: r.timestamp, sensor: r.sensor, data: JSON.parse(r.data) })),
      })),
    );
    const t0 = performance.now();
    await mapLimit(batches, 4, (b) => client.postSensorEvents(b.participantId, b.events));
    return rows.length / ((performance.now() - t0) / 1000);
  } finally {
    await client.close();
    await sim.app.close();
  }
}

export async function measureBullmq(jobs = 2_000): Promise<{ jobsPerSecond: number; p50Ms: number }> {
  const prefix = `fitlamp-bench-${randomBytes(4).toString('hex')}`;
  const producer = new Redis(testRedisUrl, { maxRetriesPerRequest: null });
  const workerConnection = new Redis(testRedisUrl, { maxRetriesPerRequest: null });
  const eventsConnection = new Redis(testRedisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue('roundtrip', { connection: producer, prefix });
  const events = new QueueEvents('roundtrip', { connection: eventsConnection, prefix });
  const latencies: number[] = [];
  const added = new Map<string, number>();
  let done = 0;
  let resolveAll!: () => void;
  const all = new Promise<void>((r) => (resolveAll = r));
  await events.waitUntilReady();
  events.on('completed', ({ jobId }) => {
    const start = added.get(jobId);
    if (start !== undefined) latencies.push(performance.now() - start);
    if (++done === jobs) resolveAll();
  });
  const worker = new Worker('roundtrip', async (job) => ({ participantId: job.data.participantId }), {
    connection: workerConnection,
    prefix,
    concurrency: 8,
  });
  try {
    const t0 = performance.now();
    // The same shape as the pipeline's jobs: one per participant id, removed on completion.
    await mapLimit(Array.from({ length: jobs }, (_, i) => i), 16, async (i) => {
      const jobId = `deliver-U${i}`;
      added.set(jobId, performance.now());
      await queue.add('deliver-participant', { participantId: `U${i}`, reason: 'fetched' }, { jobId, removeOnComplete: true, removeOnFail: true });
    });
    await all;
    const seconds = (performance.now() - t0) / 1000;
    latencies.sort((a, b) => a - b);
    return { jobsPerSecond: jobs / seconds, p50Ms: latencies[Math.floor(latencies.length / 2)] ?? 0 };
  } finally {
    await worker.close();
    await events.close();
    await queue.obliterate({ force: true }).catch(() => {});
    await queue.close();
    for (const c of [producer, workerConnection, eventsConnection]) c.disconnect();
  }
}

/** Replays `command` from a forked bare client and answers its report. */
export function replayRequests(command: ReplayCommand): Promise<ReplayReport> {
  return new Promise((resolve, reject) => {
    const child = fork(new URL('./replay-client.ts', import.meta.url).pathname, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.once('message', (report: ReplayReport) => resolve(report));
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) reject(new Error(`the replay client exited with ${code}`));
    });
    child.send(command);
  });
}

/** The provider side's raw limit: see {@link RawLimits.providerReplay}. */
export async function measureProviderReplay(
  o: { baseUrl: string; requests: ReplayCommand['requests']; concurrency: number; events: number; emptyCache: () => void },
  log: (line: string) => void,
): Promise<NonNullable<RawLimits['providerReplay']>> {
  o.emptyCache();
  const report = await replayRequests({ baseUrl: o.baseUrl, concurrency: o.concurrency, requests: o.requests });
  const eventsPerSecond = o.events / report.seconds;
  log(`    provider (Fitbit simulator, latency included): ${o.requests.length} requests replayed ${o.concurrency} at a time in ${report.seconds.toFixed(1)} s = ${eventsPerSecond.toFixed(0)} events/s${Object.keys(report.failed).length ? ` (failed: ${JSON.stringify(report.failed)})` : ''}`);
  return { requests: o.requests.length, concurrency: o.concurrency, seconds: report.seconds, failed: report.failed, eventsPerSecond };
}

/** `adminUrl`: the Postgres server the pipeline ran on, so both are measured on the same one. */
export async function measureRawLimits(source: Kysely<Database>, adminUrl: string, maxRows: number, log: (line: string) => void): Promise<RawLimits> {
  const rows = await sampleRows(source, maxRows);
  log(`    raw limits over ${rows.length} of the pipeline's rows`);
  const pgResult = await measurePostgres(rows, adminUrl);
  log(`    postgres: ${pgResult.insert.toFixed(0)} rows/s insert, ${pgResult.outbox.toFixed(0)} rows/s insert+claim+deliver`);
  const lamp = await measureLamp(rows);
  log(`    mindLAMP simulator: ${lamp.toFixed(0)} events/s`);
  const bull = await measureBullmq();
  log(`    BullMQ: ${bull.jobsPerSecond.toFixed(0)} jobs/s, p50 ${bull.p50Ms.toFixed(1)} ms`);
  return {
    rows: rows.length,
    postgresInsertRowsPerSecond: pgResult.insert,
    postgresOutboxRowsPerSecond: pgResult.outbox,
    lampAcceptEventsPerSecond: lamp,
    bullmqJobsPerSecond: bull.jobsPerSecond,
    bullmqRoundTripP50Ms: bull.p50Ms,
  };
}
