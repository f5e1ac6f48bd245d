import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestDatabase, outboxEvents, seedChunk, type TestDatabase } from '@fitlamp/testing';
import {
  claimBatch,
  compactDeliveredEvents,
  findDayTotals,
  findLedgerDays,
  markBatchDelivered,
  parkBatch,
  storeFetchedDays,
  type FetchedDay,
  type FetchedRecord,
} from './index.ts';

const P = 'U1';
const DAY = '2026-11-20';
const BASE = Date.parse(`${DAY}T08:00:00Z`);
const DAY_END = Date.parse('2026-11-21T05:00:00Z');

function stepsDay(values: readonly number[], day = DAY, base = BASE): FetchedDay {
  const records: FetchedRecord[] = values.map((value, i) => ({
    key: `${P}|lamp.steps|${base + i * 60_000}|`,
    stream: 'steps',
    day,
    sensor: 'lamp.steps',
    timestamp: base + i * 60_000,
    duration: null,
    data: { value, unit: 'count' },
    hash: `v${value}`,
  }));
  return { day, dayEnd: Date.parse(`${day}T05:00:00Z`) + 86_400_000, records, contentHash: values.join(',') };
}

const store = (t: TestDatabase, ...days: FetchedDay[]) =>
  storeFetchedDays(t.db, { participantId: P, provider: 'fitbit', stream: 'steps', days, lastDeviceSync: DAY_END + 1 });

async function chunkRows(t: TestDatabase) {
  return t.db.selectFrom('event_chunks').select(['id', 'day', 'seq', 'status', 'event_count', 'updated_at']).orderBy('id').execute();
}

async function deliverAll(t: TestDatabase) {
  for (;;) {
    const claimed = await claimBatch(t.db, P, 1_000, 1_000_000);
    if (!claimed) return;
    await markBatchDelivered(t.db, claimed.batch);
  }
}

describe('event chunks: storing fetched days', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(async () => {
    await t.drop();
  });
  beforeEach(async () => {
    await t.db.deleteFrom('participants').execute();
    await t.db.insertInto('participants').values({ id: P }).execute();
  });

  it('stores a day as one pending chunk in time order, with its ledger row and day total', async () => {
    const day = stepsDay([5, 7, 9]);
    const outcome = await store(t, { ...day, records: [...day.records].reverse() });
    expect(outcome).toMatchObject({ inserted: 3, changed: 0, revisions: [] });
    const rows = await chunkRows(t);
    expect(rows.map((r) => [r.day, r.seq, r.status, r.event_count])).toEqual([[DAY, 1, 'pending', 3]]);
    expect((await outboxEvents(t.db)).map((e) => e.data.value)).toEqual([5, 7, 9]);
    const [ledger] = await findLedgerDays(t.db, P, { from: DAY, to: DAY });
    expect(ledger).toMatchObject({ status: 'settled', recordsFetched: 3 });
    expect(await findDayTotals(t.db, { participantIds: [P], from: DAY, to: DAY })).toEqual([
      { participantId: P, day: DAY, wearMinutes: null, steps: 21, sleepMinutes: null },
    ]);
  });

  it('writes no event for an unchanged day (content-hash shortcut), nor for one whose events are all stored already', async () => {
    await store(t, stepsDay([5, 7]));
    const before = await chunkRows(t);
    expect(await store(t, stepsDay([5, 7]))).toMatchObject({ inserted: 0, changed: 0, unchangedDays: 1 });
    expect(await chunkRows(t)).toEqual(before);
    // Same events under another day hash (the ledger's is stale): diffed, still nothing to write.
    expect(await store(t, { ...stepsDay([5, 7]), contentHash: 'other' })).toMatchObject({ inserted: 0, changed: 0, unchangedDays: 0 });
    expect(await chunkRows(t)).toEqual(before);
  });

  it('appends events that arrive after delivery as a new pending chunk, and sends only those', async () => {
    await store(t, stepsDay([5, 7]));
    await deliverAll(t);
    const outcome = await store(t, stepsDay([5, 7, 9, 11]));
    expect(outcome).toMatchObject({ inserted: 2, changed: 0 });
    const rows = await chunkRows(t);
    expect(rows.map((r) => [r.seq, r.status, r.event_count])).toEqual([
      [1, 'delivered', 2],
      [2, 'pending', 2],
    ]);
    const claimed = await claimBatch(t.db, P, 1_000, 1_000_000);
    expect(claimed!.records.map((r) => r.data.value)).toEqual([9, 11]);
  });

  it('takes a pending value that changed, and drops a pending event that vanished', async () => {
    await store(t, stepsDay([5, 7, 9]));
    const changed = stepsDay([5, 8]);
    expect(await store(t, changed)).toMatchObject({ inserted: 0, changed: 1, changedAfterDelivery: 0, revisions: [] });
    expect((await outboxEvents(t.db)).map((e) => [e.status, e.data.value])).toEqual([
      ['pending', 5],
      ['pending', 8],
    ]);
  });

  it('reports a revision of a delivered event and keeps the value mindLAMP received', async () => {
    await store(t, stepsDay([5, 7]));
    await deliverAll(t);
    const outcome = await store(t, stepsDay([5, 70]));
    expect(outcome).toMatchObject({ inserted: 0, changed: 1, changedAfterDelivery: 1 });
    expect(outcome.revisions).toEqual([
      { stream: 'steps', day: DAY, key: `${P}|lamp.steps|${BASE + 60_000}|`, sensor: 'lamp.steps', timestamp: BASE + 60_000, status: 'delivered', sent: { value: 7, unit: 'count' }, revised: { value: 70, unit: 'count' } },
    ]);
    expect((await outboxEvents(t.db)).map((e) => [e.status, e.data.value])).toEqual([
      ['delivered', 5],
      ['delivered', 7],
    ]);
    expect(await claimBatch(t.db, P, 1_000, 1_000_000)).toBeNull();
    const ledger = await t.db.selectFrom('day_ledger').select(['revised_events', 'day_total']).executeTakeFirstOrThrow();
    expect(ledger).toEqual({ revised_events: 1, day_total: 75 });
  });

  it('cuts a chunk larger than a batch, keeping the rest pending', async () => {
    await store(t, stepsDay([1, 2, 3, 4, 5]));
    const claimed = await claimBatch(t.db, P, 2, 1_000_000);
    expect(claimed!.records.map((r) => r.data.value)).toEqual([1, 2]);
    expect((await outboxEvents(t.db)).map((e) => [e.status, e.data.value])).toEqual([
      ['sending', 1],
      ['sending', 2],
      ['pending', 3],
      ['pending', 4],
      ['pending', 5],
    ]);
  });
});

describe('retention', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(async () => {
    await t.drop();
  });

  it('compacts delivered old days into their totals, never touches parked or pending events, and the ledger still reads them', async () => {
    await t.db.insertInto('participants').values({ id: P }).execute();
    const days = ['2026-11-10', '2026-11-11', '2026-11-12', '2026-11-20'];
    for (const [i, day] of days.entries()) await store(t, stepsDay([10 + i, 20], day, Date.parse(`${day}T08:00:00Z`)));
    // 11-10 and 11-20 are delivered; 11-11 is parked; 11-12 stays pending.
    const first = await claimBatch(t.db, P, 2, 1_000_000);
    await markBatchDelivered(t.db, first!.batch);
    const second = await claimBatch(t.db, P, 2, 1_000_000);
    await parkBatch(t.db, second!.batch, '400 bad_request');
    const parkedId = second!.batch.id;
    await t.db.updateTable('event_chunks').set({ status: 'delivered' }).where('day', '=', '2026-11-20').execute();

    const outcome = await compactDeliveredEvents(t.db, P, '2026-11-13');
    expect(outcome).toMatchObject({ deletedChunks: 1, deletedEvents: 2, deletedBatches: 1 });
    // The delivered batch left with its events; the parked one stays for an admin.
    expect(await t.db.selectFrom('delivery_batches').select(['id', 'status']).execute()).toEqual([{ id: parkedId, status: 'parked' }]);
    const left = await outboxEvents(t.db, P);
    expect(left.map((e) => [e.day, e.status])).toEqual([
      ['2026-11-11', 'parked'],
      ['2026-11-11', 'parked'],
      ['2026-11-12', 'pending'],
      ['2026-11-12', 'pending'],
      ['2026-11-20', 'delivered'],
      ['2026-11-20', 'delivered'],
    ]);
    expect(left[0]!.batchId).toBe(parkedId);
    // Totals for every day, compacted or not.
    expect((await findDayTotals(t.db, { from: '2026-11-01', to: '2026-11-30' })).map((d) => [d.day, d.steps])).toEqual([
      ['2026-11-10', 30],
      ['2026-11-11', 31],
      ['2026-11-12', 32],
      ['2026-11-20', 33],
    ]);
    const ledger = await findLedgerDays(t.db, P, { from: '2026-11-10', to: '2026-11-11' });
    expect(ledger.map((d) => [d.day, d.status, d.recordsFetched, d.recordsDelivered, d.recordsParked])).toEqual([
      ['2026-11-10', 'settled', 2, 2, 0],
      ['2026-11-11', 'settled', 2, 0, 2],
    ]);

    // A compacted day fetched again with other values: its totals follow, no event is stored again.
    const refetch = await store(t, stepsDay([100, 200, 300], '2026-11-10', Date.parse('2026-11-10T08:00:00Z')));
    expect(refetch).toMatchObject({ inserted: 0, compactedDays: 1 });
    expect((await outboxEvents(t.db, P)).filter((e) => e.day === '2026-11-10')).toEqual([]);
    expect((await findDayTotals(t.db, { participantIds: [P], from: '2026-11-10', to: '2026-11-10' }))[0]!.steps).toBe(600);

    // Compacting again finds nothing more to delete.
    expect(await compactDeliveredEvents(t.db, P, '2026-11-13')).toMatchObject({ deletedChunks: 0, deletedBatches: 0 });

    // A delivered chunk no longer names its batch; the batch stays while its newest event (11-12
    // 08:00 UTC) could be inside the window in some time zone, and leaves once it cannot.
    const third = await claimBatch(t.db, P, 2, 1_000_000);
    await markBatchDelivered(t.db, third!.batch);
    expect((await outboxEvents(t.db, P)).filter((e) => e.day === '2026-11-12').map((e) => [e.status, e.batchId])).toEqual([
      ['delivered', null],
      ['delivered', null],
    ]);
    expect(await compactDeliveredEvents(t.db, P, '2026-11-12')).toMatchObject({ deletedChunks: 0, deletedBatches: 0 });
    expect(await compactDeliveredEvents(t.db, P, '2026-11-13')).toMatchObject({ deletedChunks: 1, deletedBatches: 1 });
    expect(await t.db.selectFrom('delivery_batches').select('status').execute()).toEqual([{ status: 'parked' }]);
  });

  it('fills a missing summary before deleting, keeps days not yet complete, and merges many small delivered chunks of a day into one', async () => {
    await t.db.insertInto('participants').values({ id: 'U2' }).execute();
    const heart = (day: string, i: number) => ({ key: `U2|hr|${day}|${i}`, timestamp: Date.parse(`${day}T08:00:00Z`) + i * 60_000, data: { value: 60 + i }, sensor: 'lamp.heart_rate' });
    await seedChunk(t.db, { participantId: 'U2', stream: 'heart_rate', day: '2026-11-01', status: 'delivered', events: [heart('2026-11-01', 0), heart('2026-11-01', 1)] });
    // A day still partial is fetched again and may bring events: it is not compacted, however old.
    await seedChunk(t.db, { participantId: 'U2', stream: 'heart_rate', day: '2026-11-02', status: 'delivered', events: [heart('2026-11-02', 0)] });
    await t.db
      .insertInto('day_ledger')
      .values([
        { participant_id: 'U2', stream: 'heart_rate', day: '2026-11-01', status: 'settled' },
        { participant_id: 'U2', stream: 'heart_rate', day: '2026-11-02', status: 'partial' },
      ])
      .execute();
    for (let i = 0; i < 6; i++) {
      await seedChunk(t.db, { participantId: 'U2', stream: 'heart_rate', day: '2026-11-19', status: 'delivered', events: [heart('2026-11-19', i)] });
    }
    const outcome = await compactDeliveredEvents(t.db, 'U2', '2026-11-13');
    expect(outcome).toEqual({ deletedChunks: 1, deletedEvents: 2, mergedDays: 1, deletedBatches: 0 });
    expect(await findDayTotals(t.db, { participantIds: ['U2'], from: '2026-11-01', to: '2026-11-01' })).toEqual([
      { participantId: 'U2', day: '2026-11-01', wearMinutes: 2, steps: null, sleepMinutes: null },
    ]);
    const rows = await t.db.selectFrom('event_chunks').select(['day', 'event_count', 'status']).where('participant_id', '=', 'U2').orderBy('day').execute();
    expect(rows).toEqual([
      { day: '2026-11-02', event_count: 1, status: 'delivered' },
      { day: '2026-11-19', event_count: 6, status: 'delivered' },
    ]);
    expect((await outboxEvents(t.db, 'U2')).filter((e) => e.day === '2026-11-19').map((e) => e.data.value)).toEqual([60, 61, 62, 63, 64, 65]);

    // Before the sync window (never fetched again), a day still partial is compacted too.
    expect(await compactDeliveredEvents(t.db, 'U2', '2026-11-13', '2026-11-02')).toMatchObject({ deletedChunks: 0 });
    expect(await compactDeliveredEvents(t.db, 'U2', '2026-11-13', '2026-11-03')).toMatchObject({ deletedChunks: 1, deletedEvents: 1 });
    expect(await findDayTotals(t.db, { participantIds: ['U2'], from: '2026-11-02', to: '2026-11-02' })).toEqual([
      { participantId: 'U2', day: '2026-11-02', wearMinutes: 1, steps: null, sleepMinutes: null },
    ]);
    expect((await t.db.selectFrom('event_chunks').select('day').where('participant_id', '=', 'U2').execute()).map((r) => r.day)).toEqual(['2026-11-19']);
  });
});
