// Section 1, the raw limits of this machine for the pipeline's work, measured in the same run:
// inserting the pipeline's own rows into Postgres through the same driver, the mindLAMP
// simulator's accept rate, and a BullMQ job round trip.
import { randomBytes } from 'node:crypto';
import { Queue, QueueEvents, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { sql, type Kysely } from 'kysely';
import { createDb, migrateToLatest, type Database } from '@fitlamp/db';
import { createLampClient } from '@fitlamp/lamp';
import { createLampSimulator } from '@fitlamp/simulators';
import { testRedisUrl } from '@fitlamp/testing';

export interface RawLimits {
  rows: number;
  /** Rows/s: multi-row INSERT … ON CONFLICT of the same rows (2,000 per statement, as the fetcher), 4 at a time. */
  postgresInsertRowsPerSecond: number;
  /** Rows/s over the records' whole life in the outbox: insert, then claim (→ sending), then mark delivered. */
  postgresOutboxRowsPerSecond: number;
  /** Events/s: POSTs of 1,000 events each (the writer's batch) to a fresh in-process mindLAMP simulator, 4 at a time. */
  lampAcceptEventsPerSecond: number;
  /** Jobs/s: add → a worker (concurrency 8) completes it → completion seen, 2,000 jobs. */
  bullmqJobsPerSecond: number;
  bullmqRoundTripP50Ms: number;
}

type Row = Omit<Database['records'], 'id' | 'created_at' | 'updated_at' | 'revision' | 'batch_id' | 'delivered_at' | 'delivered_hash'> &
  Record<string, unknown>;

/** Copies up to `limit` records the pipeline stored, as the rows the fetcher inserted. */
export async function sampleRows(db: Kysely<Database>, limit: number): Promise<Row[]> {
  const rows = await db
    .selectFrom('records')
    .select(['record_key', 'participant_id', 'stream', 'day', 'sensor', 'timestamp', 'duration', 'data', 'data_hash'])
    .orderBy('id')
    .limit(limit)
    .execute();
  return rows.map((r) => ({ ...r, data: JSON.stringify(r.data), status: 'pending' as const })) as unknown as Row[];
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
    const t0 = performance.now();
    await mapLimit(chunks(rows, 2_000), 4, async (chunk) => {
      await db
        .insertInto('records')
        .values(chunk as never)
        .onConflict((oc) =>
          oc
            .column('record_key')
            .doUpdateSet({ data: (eb) => eb.ref('excluded.data'), data_hash: (eb) => eb.ref('excluded.data_hash') })
            .where('records.data_hash', '<>', (eb) => eb.ref('excluded.data_hash')),
        )
        .execute();
    });
    const insertSeconds = (performance.now() - t0) / 1000;
    // The rest of an outbox row's life, done as cheaply as SQL allows: claim 1,000 at a time
    // per participant, then mark them delivered.
    const t1 = performance.now();
    await mapLimit(participants, 4, async (participantId) => {
      for (;;) {
        const claimed = await sql<{ id: string }>`
          update records set status = 'sending', updated_at = now() where id in (
            select id from records where participant_id = ${participantId} and status = 'pending'
            order by timestamp, id limit 1000 for update skip locked)
          returning id`.execute(db);
        if (claimed.rows.length === 0) break;
        await sql`update records set status = 'delivered', delivered_at = now(), delivered_hash = data_hash, updated_at = now()
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
        events: chunk.map((r) => ({ timestamp: Number(r.timestamp), sensor: r.sensor as string, data: JSON.parse(r.data as unknown as string) })),
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
