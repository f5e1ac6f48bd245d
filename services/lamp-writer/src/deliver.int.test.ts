import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Job } from 'bullmq';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { claimBatch, toSensorEvent } from '@fitlamp/db';
import { createLampClient, type LampClient } from '@fitlamp/lamp';
import type { DeliverPayload } from '@fitlamp/queues';
import { createLogger } from '@fitlamp/runtime';
import { createLampSimulator, LAMP_DEFAULT_CREDENTIAL, type LampSimulator } from '@fitlamp/simulators';
import { createTestDatabase, outboxEvents, seedChunk, type TestDatabase } from '@fitlamp/testing';
import { createDeliverProcessor, createWriterMetrics, type DeliverDeps } from './deliver.worker.ts';

const P = 'U1000000001';
const BASE = Date.parse('2026-11-20T08:00:00Z');

const job = (participantId = P) => ({ id: `deliver-${participantId}`, data: { participantId, reason: 'manual' } }) as Job<DeliverPayload>;

describe('lamp-writer delivery', () => {
  let t: TestDatabase;
  let sim: LampSimulator;
  let lamp: LampClient;
  let deps: DeliverDeps;
  let simUrl: string;

  beforeAll(async () => {
    t = await createTestDatabase();
    sim = createLampSimulator({ participants: [{ id: P, studyId: 'S1' }, { id: 'U2', studyId: 'S1' }] });
    simUrl = await sim.app.listen({ port: 0, host: '127.0.0.1' });
    lamp = createLampClient({ baseUrl: simUrl, ...LAMP_DEFAULT_CREDENTIAL, timeoutMs: 2_000 });
  });
  afterAll(async () => {
    await lamp.close();
    await sim.app.close();
    await t.drop();
  });
  beforeEach(async () => {
    sim.reset();
    await t.db.deleteFrom('event_chunks').execute();
    await t.db.deleteFrom('delivery_batches').execute();
    await t.db.deleteFrom('day_ledger').execute();
    await t.db.deleteFrom('participants').execute();
    await t.db.insertInto('participants').values([{ id: P }, { id: 'U2' }]).execute();
    deps = {
      db: t.db,
      lamp,
      logger: createLogger({ name: 'test', level: 'silent' }),
      batchSize: 10,
      leaseMs: 10_000,
      maxBytes: 1_000_000,
      metrics: createWriterMetrics(new Registry()),
    };
  });
  afterEach(() => sim.clearFaults());

  async function seed(count: number, participantId = P) {
    // Seeded newest first: delivery must still be in time order.
    const events = Array.from({ length: count }, (_, i) => count - 1 - i).map((i) => ({
      key: `${participantId}|lamp.steps|${BASE + i * 60_000}|`,
      timestamp: BASE + i * 60_000,
      data: { value: i + 1, unit: 'count', type: 'step_count', source: 'com.fitbit.webapi' },
      hash: `h${i}`,
    }));
    await seedChunk(t.db, { participantId, stream: 'steps', day: '2026-11-20', status: 'pending', events });
    await t.db
      .insertInto('day_ledger')
      .values({ participant_id: participantId, stream: 'steps', day: '2026-11-20', status: 'settled', records_fetched: count })
      .onConflict((oc) => oc.doNothing())
      .execute();
  }

  const statuses = async () => (await outboxEvents(t.db, P)).map((r) => r.status);
  const stored = () => sim.listEvents({ participantId: P, sensor: 'lamp.steps' });

  it('posts pending records in time order, in batches, and marks them delivered', async () => {
    await seed(25);
    const summary = await createDeliverProcessor(deps)(job());
    expect(summary).toMatchObject({ delivered: 25, batches: 3, parked: 0 });
    const posts = sim.listRequests().filter((r) => r.method === 'POST');
    expect(posts.map((r) => r.eventCount)).toEqual([10, 10, 5]);
    const timestamps = stored().map((e) => e.event.timestamp as number);
    expect(timestamps).toEqual([...timestamps].sort((a, b) => a - b));
    expect(await statuses()).toEqual(Array(25).fill('delivered'));
    const ledger = await t.db.selectFrom('day_ledger').select('records_delivered').executeTakeFirstOrThrow();
    expect(ledger.records_delivered).toBe(25);
    // A second run has nothing to do and sends nothing.
    expect(await createDeliverProcessor(deps)(job())).toMatchObject({ delivered: 0, batches: 0 });
    expect(sim.findDuplicates().extraCopies).toBe(0);
  });

  it('keeps each POST under the byte cap', async () => {
    await seed(12);
    const summary = await createDeliverProcessor({ ...deps, maxBytes: 600 })(job());
    expect(summary.delivered).toBe(12);
    const posts = sim.listRequests().filter((r) => r.method === 'POST');
    expect(posts.length).toBeGreaterThan(2);
    expect(Math.max(...posts.map((r) => r.eventCount ?? 0))).toBeLessThan(10);
  });

  it('reads back after a dropped connection whose events were stored, and sends nothing twice', async () => {
    await seed(10);
    sim.addFault({ route: 'Participant.create_sensor_events', fault: { kind: 'store-then-drop' }, times: 1 });
    await expect(createDeliverProcessor(deps)(job())).rejects.toMatchObject({ code: 'outcome_unknown' });
    expect((await t.db.selectFrom('delivery_batches').select('status').executeTakeFirstOrThrow()).status).toBe('unknown');
    // The retry reads back first, finds everything, and sends nothing.
    const summary = await createDeliverProcessor(deps)(job());
    expect(summary).toMatchObject({ reconciled: 10, delivered: 0 });
    expect(stored()).toHaveLength(10);
    expect(sim.findDuplicates().extraCopies).toBe(0);
    expect(await statuses()).toEqual(Array(10).fill('delivered'));
    const batch = await t.db.selectFrom('delivery_batches').selectAll().executeTakeFirstOrThrow();
    expect(batch.status).toBe('delivered');
    expect(batch.last_error).toMatch(/10 of 10/);
  });

  it('after a 500 that stored part of a batch, resends only the missing events', async () => {
    await seed(10);
    sim.addFault({ route: 'Participant.create_sensor_events', fault: { kind: 'partial-write', stored: 4 }, times: 1 });
    await expect(createDeliverProcessor(deps)(job())).rejects.toMatchObject({ code: 'server_error' });
    expect(stored()).toHaveLength(4);
    // BullMQ retries the job: it reads back (4 found), then sends the other 6, nothing twice.
    expect(await createDeliverProcessor(deps)(job())).toMatchObject({ reconciled: 4, delivered: 6 });
    expect(stored()).toHaveLength(10);
    expect(sim.findDuplicates().extraCopies).toBe(0);
  });

  it('a 503 that stored nothing leaves the records pending for the retry', async () => {
    await seed(5);
    sim.addFault({ route: 'Participant.create_sensor_events', fault: { kind: 'status', status: 503 }, times: 1 });
    await expect(createDeliverProcessor(deps)(job())).rejects.toMatchObject({ code: 'server_error' });
    expect(await statuses()).toEqual(Array(5).fill('sending'));
    expect(await createDeliverProcessor(deps)(job())).toMatchObject({ reconciled: 0, delivered: 5 });
    expect(stored()).toHaveLength(5);
  });

  it('waits for a slow server that stores after the client gave up, instead of sending twice', async () => {
    await seed(6);
    const impatient = createLampClient({ baseUrl: simUrl, ...LAMP_DEFAULT_CREDENTIAL, timeoutMs: 300 });
    try {
      // undici's header timeout ticks at about one-second resolution: answer well after it.
      sim.addFault({ route: 'Participant.create_sensor_events', fault: { kind: 'latency', ms: 2_500 }, times: 1 });
      await expect(createDeliverProcessor({ ...deps, lamp: impatient })(job())).rejects.toMatchObject({ code: 'outcome_unknown' });
      // The server finishes its write after the client timed out; BullMQ's backoff (>= 5 s)
      // covers that in production, the test waits for it explicitly.
      for (let i = 0; i < 100 && stored().length < 6; i++) await new Promise((r) => setTimeout(r, 50));
      expect(await createDeliverProcessor(deps)(job())).toMatchObject({ reconciled: 6, delivered: 0 });
      expect(stored()).toHaveLength(6);
      expect(sim.findDuplicates().extraCopies).toBe(0);
    } finally {
      await impatient.close();
    }
  });

  it('reads back too soon after a timeout while mindLAMP is still storing: sends nothing again until the batch settles', async () => {
    await seed(6);
    const impatient = createLampClient({ baseUrl: simUrl, ...LAMP_DEFAULT_CREDENTIAL, timeoutMs: 300 });
    const patient = { ...deps, settleMs: 60_000 };
    try {
      // A server slower than the retry: it stores the batch long after the client gave up.
      sim.addFault({ route: 'Participant.create_sensor_events', fault: { kind: 'latency', ms: 3_000 }, times: 1 });
      await expect(createDeliverProcessor({ ...patient, lamp: impatient })(job())).rejects.toMatchObject({ code: 'outcome_unknown' });
      expect(stored()).toHaveLength(0);
      // The retry comes before the server has stored: the read-back finds nothing, and the
      // missing events are not sent again while the POST is younger than settleMs.
      await expect(createDeliverProcessor(patient)(job())).rejects.toThrow(/read back too soon/);
      expect(sim.listRequests().filter((r) => r.operationId === 'Participant.create_sensor_events')).toHaveLength(1);
      for (let i = 0; i < 100 && stored().length < 6; i++) await new Promise((r) => setTimeout(r, 50));
      expect(stored()).toHaveLength(6);
      // Once the server has stored it, the next read-back finds every event: nothing twice.
      expect(await createDeliverProcessor(patient)(job())).toMatchObject({ reconciled: 6, delivered: 0 });
      expect(sim.findDuplicates().extraCopies).toBe(0);
      expect(await statuses()).toEqual(Array(6).fill('delivered'));
    } finally {
      await impatient.close();
    }
  });

  it('sends the events a read-back misses once the unknown batch is older than settleMs', async () => {
    await seed(6);
    sim.addFault({ route: 'Participant.create_sensor_events', fault: { kind: 'status', status: 503 }, times: 1 });
    await expect(createDeliverProcessor(deps)(job())).rejects.toMatchObject({ code: 'server_error' });
    await expect(createDeliverProcessor({ ...deps, settleMs: 60_000 })(job())).rejects.toThrow(/read back too soon/);
    // The POST is now older than a 100 ms settle time: the 6 missing events go out once.
    await new Promise((r) => setTimeout(r, 150));
    expect(await createDeliverProcessor({ ...deps, settleMs: 100 })(job())).toMatchObject({ reconciled: 0, delivered: 6 });
    expect(stored()).toHaveLength(6);
    expect(sim.findDuplicates().extraCopies).toBe(0);
  });

  it('reconciles a batch a crashed writer left mid-flight before sending anything new', async () => {
    await seed(10);
    // A writer claimed a batch, POSTed it, and died before recording the answer.
    const claimed = await claimBatch(t.db, P, 10, 1_000_000);
    await lamp.postSensorEvents(P, claimed!.records.map(toSensorEvent));
    const summary = await createDeliverProcessor(deps)(job());
    expect(summary).toMatchObject({ reconciled: 10, delivered: 0 });
    expect(stored()).toHaveLength(10);
    expect(sim.findDuplicates().extraCopies).toBe(0);
  });

  it('tells apart identical-looking events from the phone app when reading back', async () => {
    await seed(3);
    // The phone app stored an event at the same timestamp with different data: not ours.
    await fetch(`${simUrl}/_control/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        participantId: P,
        events: [{ timestamp: BASE, sensor: 'lamp.steps', data: { value: 99, unit: 'count', type: 'step_count', source: 'com.apple.health' } }],
      }),
    });
    sim.addFault({ route: 'Participant.create_sensor_events', fault: { kind: 'status', status: 502 }, times: 1 });
    await expect(createDeliverProcessor(deps)(job())).rejects.toMatchObject({ code: 'server_error' });
    await createDeliverProcessor(deps)(job());
    expect(stored()).toHaveLength(4);
    expect(sim.findDuplicates().extraCopies).toBe(0);
  });

  it('parks a batch mindLAMP refuses with a 4xx, with its reason, and keeps the rest flowing', async () => {
    await seed(20);
    sim.addFault({ route: 'Participant.create_sensor_events', fault: { kind: 'status', status: 400, body: { error: '400.bad-request' } }, times: 1 });
    const summary = await createDeliverProcessor(deps)(job());
    expect(summary).toMatchObject({ parked: 10, delivered: 10 });
    const parked = await t.db.selectFrom('delivery_batches').selectAll().where('status', '=', 'parked').executeTakeFirstOrThrow();
    expect(parked.last_error).toMatch(/400/);
    expect((await statuses()).filter((s) => s === 'parked')).toHaveLength(10);
  });

  it('when mindLAMP refuses connections, nothing is marked sent and records stay pending', async () => {
    await seed(4);
    const closed = createLampClient({ baseUrl: 'http://127.0.0.1:9', ...LAMP_DEFAULT_CREDENTIAL });
    await expect(createDeliverProcessor({ ...deps, lamp: closed })(job())).rejects.toMatchObject({ code: 'unavailable' });
    await closed.close();
    expect(await statuses()).toEqual(Array(4).fill('pending'));
    const batch = await t.db.selectFrom('delivery_batches').select('status').executeTakeFirstOrThrow();
    expect(batch.status).toBe('abandoned');
  });

  it('appends delivered events to the raw archive as NDJSON per participant and day, when ARCHIVE_DIR is set', async () => {
    await seed(12);
    const dir = await mkdtemp(join(tmpdir(), 'fitlamp-archive-'));
    try {
      sim.addFault({ route: 'Participant.create_sensor_events', fault: { kind: 'partial-write', stored: 4 }, times: 1 });
      await expect(createDeliverProcessor({ ...deps, archiveDir: dir })(job())).rejects.toMatchObject({ code: 'server_error' });
      expect(await createDeliverProcessor({ ...deps, archiveDir: dir })(job())).toMatchObject({ reconciled: 4, delivered: 8 });
      const lines = (await readFile(join(dir, P, '2026-11-20.ndjson'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
      // Every event once: the 4 found by read-back, then the rest.
      expect(lines.map((l) => l.timestamp).sort((a, b) => a - b)).toEqual(Array.from({ length: 12 }, (_, i) => BASE + i * 60_000));
      expect(lines[0]).toEqual({ timestamp: BASE, sensor: 'lamp.steps', data: { value: 1, unit: 'count', type: 'step_count', source: 'com.fitbit.webapi' }, stream: 'steps' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
