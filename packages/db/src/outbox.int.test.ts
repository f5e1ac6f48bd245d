import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestDatabase, outboxEvents, seedChunk, type TestDatabase } from '@fitlamp/testing';
import {
  claimBatch,
  compactDeliveredEvents,
  findDayTotals,
  findLedgerDays,
  markBatchDelivered,
  markBatchUnknown,
  parkBatch,
  settleReconciledBatch,
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

/**
 * A database of this describe block's own, handed to `set` before its tests; with `participant`,
 * every test starts with that participant alone.
 */
function useDatabase(set: (t: TestDatabase) => void, o: { participant?: string } = {}): void {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
    set(t);
  });
  afterAll(async () => {
    await t.drop();
  });
  if (o.participant === undefined) return;
  const id = o.participant;
  beforeEach(async () => {
    await t.db.deleteFrom('participants').execute();
    await t.db.insertInto('participants').values({ id }).execute();
  });
}

describe('event chunks: storing fetched days', () => {
  let t: TestDatabase;
  useDatabase((db) => (t = db), { participant: P });

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

  it('reports a revision of a delivered event, keeps the value mindLAMP received, and queues a correction carrying the difference', async () => {
    await store(t, stepsDay([5, 7]));
    await deliverAll(t);
    const outcome = await store(t, stepsDay([5, 70]));
    expect(outcome).toMatchObject({ inserted: 0, changed: 1, changedAfterDelivery: 1, corrections: 1 });
    expect(outcome.revisions).toEqual([
      { stream: 'steps', day: DAY, key: `${P}|lamp.steps|${BASE + 60_000}|`, sensor: 'lamp.steps', timestamp: BASE + 60_000, status: 'delivered', sent: { value: 7, unit: 'count' }, revised: { value: 70, unit: 'count' } },
    ]);
    expect((await outboxEvents(t.db)).map((e) => [e.status, e.key, e.data])).toEqual([
      ['delivered', `${P}|lamp.steps|${BASE}|`, { value: 5, unit: 'count' }],
      ['delivered', `${P}|lamp.steps|${BASE + 60_000}|`, { value: 7, unit: 'count' }],
      ['pending', `${P}|lamp.steps|${BASE + 60_000}||correction|1`, { value: 63, unit: 'count', correction: true, revision: 1, revised_value: 70 }],
    ]);
    const claimed = await claimBatch(t.db, P, 1_000, 1_000_000);
    expect(claimed!.records.map((r) => [r.timestamp, r.data.value])).toEqual([[BASE + 60_000, 63]]);
    const ledger = await t.db.selectFrom('day_ledger').select(['revised_events', 'day_total', 'corrected_events', 'correction_delta']).executeTakeFirstOrThrow();
    expect(ledger).toEqual({ revised_events: 1, day_total: 75, corrected_events: 1, correction_delta: 63 });
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
  useDatabase((db) => (t = db));

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

describe('corrections: revisions of additive events after delivery', () => {
  let t: TestDatabase;
  useDatabase((db) => (t = db), { participant: P });

  const minute = (i: number) => BASE + i * 60_000;
  /** What mindLAMP ends up holding per minute once every event is delivered: the sum of its events. */
  async function sums(): Promise<Record<number, number>> {
    const out: Record<number, number> = {};
    for (const e of await outboxEvents(t.db, P)) out[(e.timestamp - BASE) / 60_000] = (out[(e.timestamp - BASE) / 60_000] ?? 0) + (e.data.value as number);
    return out;
  }
  const corrections = async () => (await outboxEvents(t.db, P)).filter((e) => e.data.correction === true).map((e) => [e.status, (e.timestamp - BASE) / 60_000, e.data.revision, e.data.value]);
  const ledger = () => t.db.selectFrom('day_ledger').select(['revised_events', 'corrected_events', 'correction_delta']).where('day', '=', DAY).executeTakeFirstOrThrow();

  it('queues a correction once: not again for a retried fetch, nor for the same values under another day hash, nor from a fetch that failed before its commit', async () => {
    await store(t, stepsDay([5, 7]));
    await deliverAll(t);
    // The fetch that sees the revision dies before its transaction commits (here: a later day of
    // the same request cannot be stored): nothing of it is kept, not even the correction.
    const broken: FetchedDay = { ...stepsDay([1], '2026-11-21', minute(24 * 60)), contentHash: 'broken' };
    broken.records = broken.records.map((r) => ({ ...r, data: { value: 10n } as unknown as Record<string, unknown> }));
    await expect(store(t, stepsDay([5, 9]), broken)).rejects.toThrow(/BigInt/);
    expect(await corrections()).toEqual([]);
    expect(await ledger()).toEqual({ revised_events: 0, corrected_events: 0, correction_delta: 0 });

    expect(await store(t, stepsDay([5, 9]))).toMatchObject({ changedAfterDelivery: 1, corrections: 1 });
    expect(await store(t, stepsDay([5, 9]))).toMatchObject({ unchangedDays: 1, corrections: 0 });
    expect(await store(t, { ...stepsDay([5, 9]), contentHash: 'other' })).toMatchObject({ unchangedDays: 0, corrections: 0 });
    expect(await corrections()).toEqual([['pending', 1, 1, 2]]);
    await deliverAll(t);
    expect(await store(t, { ...stepsDay([5, 9]), contentHash: 'again' })).toMatchObject({ corrections: 0 });
    expect(await corrections()).toEqual([['delivered', 1, 1, 2]]);
    expect(await sums()).toEqual({ 0: 5, 1: 9 });
    expect(await ledger()).toEqual({ revised_events: 1, corrected_events: 1, correction_delta: 2 });
  });

  it('a correction whose delivery outcome is unknown is read back first: released when not found and sent once, settled when found', async () => {
    await store(t, stepsDay([5, 7, 4]));
    await deliverAll(t);
    await store(t, stepsDay([5, 8, 4]));
    const first = await claimBatch(t.db, P, 1_000, 1_000_000);
    expect(first!.records.map((r) => [r.id, r.data])).toEqual([[`${P}|lamp.steps|${minute(1)}||correction|1`, { value: 1, unit: 'count', correction: true, revision: 1, revised_value: 8 }]]);
    // A timeout: the read-back does not find it, so it goes back to pending and is claimed again, unchanged.
    await markBatchUnknown(t.db, first!.batch, 'timeout');
    await settleReconciledBatch(t.db, first!.batch, [], 'reconciled by read-back: 0 of 1 events were stored');
    const again = await claimBatch(t.db, P, 1_000, 1_000_000);
    expect(again!.records).toEqual(first!.records);
    // This time mindLAMP had stored it: the read-back finds it, and nothing is left to send.
    await markBatchUnknown(t.db, again!.batch, 'connection reset');
    await settleReconciledBatch(t.db, again!.batch, [again!.records[0]!.id], 'reconciled by read-back: 1 of 1 events were stored');
    expect(await claimBatch(t.db, P, 1_000, 1_000_000)).toBeNull();
    expect(await corrections()).toEqual([['delivered', 1, 1, 1]]);
    // A revision of another minute meanwhile leaves the delivered correction alone.
    await store(t, stepsDay([5, 8, 6]));
    expect(await corrections()).toEqual([
      ['delivered', 1, 1, 1],
      ['pending', 2, 1, 2],
    ]);
  });

  it('a second revision recomputes a pending correction, and after delivery sends only the new difference; negative differences and vanished minutes too', async () => {
    await store(t, stepsDay([5, 7]));
    await deliverAll(t);
    await store(t, stepsDay([5, 10]));
    await store(t, stepsDay([5, 12]));
    expect(await corrections()).toEqual([['pending', 1, 1, 5]]);
    await deliverAll(t);
    expect(await store(t, stepsDay([5, 11]))).toMatchObject({ corrections: 1 });
    expect(await corrections()).toEqual([
      ['delivered', 1, 1, 5],
      ['pending', 1, 2, -1],
    ]);
    await deliverAll(t);
    // Minute 0 revised to no steps: Fitbit leaves a zero-step minute out of the day.
    const vanished = stepsDay([5, 11]);
    const outcome = await store(t, { ...vanished, records: vanished.records.slice(1), contentHash: 'minute 0 gone' });
    expect(outcome.revisions.map((r) => [r.timestamp, r.sent.value, r.revised.value])).toEqual([
      [minute(1), 7, 11],
      [minute(0), 5, 0],
    ]);
    await deliverAll(t);
    expect(await corrections()).toEqual([
      ['delivered', 0, 1, -5],
      ['delivered', 1, 1, 5],
      ['delivered', 1, 2, -1],
    ]);
    expect(await sums()).toEqual({ 0: 0, 1: 11 });
    // A day answered empty (a provider gap, likelier than every minute revised away) corrects
    // nothing, and leaves a queued correction queued.
    const again = stepsDay([5, 14]);
    await store(t, { ...again, records: again.records.slice(1), contentHash: 'minute 1 at 14' });
    expect(await store(t, { ...stepsDay([]), contentHash: 'empty' })).toMatchObject({ corrections: 0 });
    expect((await corrections()).filter(([status]) => status === 'pending')).toEqual([['pending', 1, 3, 3]]);
    await deliverAll(t);
    expect(await sums()).toEqual({ 0: 0, 1: 14 });
    // Every correction of a minute has its own data: a read-back tells them apart.
    const data = (await outboxEvents(t.db, P)).filter((e) => e.timestamp === minute(1)).map((e) => JSON.stringify(e.data));
    expect(new Set(data).size).toBe(4);
    expect(await ledger()).toEqual({ revised_events: 2, corrected_events: 2, correction_delta: 2 });
  });

  it('an event revised while its batch is in flight: the correction counts the value sent, and sums stay right if that batch is released', async () => {
    await store(t, stepsDay([5, 7]));
    const inFlight = await claimBatch(t.db, P, 1_000, 1_000_000);
    await store(t, stepsDay([5, 9]));
    const correction = await claimBatch(t.db, P, 1_000, 1_000_000);
    expect(correction!.records.map((r) => r.data.value)).toEqual([2]);
    await markBatchDelivered(t.db, correction!.batch);
    // The first batch was never stored after all: its events go back to pending, with the value first sent.
    await settleReconciledBatch(t.db, inFlight!.batch, [], 'reconciled by read-back: 0 of 2 events were stored');
    expect(await sums()).toEqual({ 0: 5, 1: 9 });
    // A later revision keeps the released event as it is (a correction of it is in mindLAMP) and corrects on top.
    await store(t, stepsDay([5, 12]));
    await deliverAll(t);
    expect(await sums()).toEqual({ 0: 5, 1: 12 });
    expect(await corrections()).toEqual([
      ['delivered', 1, 1, 2],
      ['delivered', 1, 2, 3],
    ]);
  });

  it('before anything left the outbox, a revision just replaces the pending value (no correction)', async () => {
    await store(t, stepsDay([5, 7]));
    expect(await store(t, stepsDay([5, 9]))).toMatchObject({ corrections: 0 });
    expect(await corrections()).toEqual([]);
    expect(await sums()).toEqual({ 0: 5, 1: 9 });
  });

  it('heart rate is not additive: a revision after delivery is counted, never sent', async () => {
    const heart = (values: number[]): FetchedDay => {
      const day = stepsDay(values);
      return { ...day, records: day.records.map((r) => ({ ...r, key: r.key.replace('lamp.steps', 'lamp.heart_rate'), stream: 'heart_rate', sensor: 'lamp.heart_rate' })) };
    };
    const storeHeart = (day: FetchedDay) => storeFetchedDays(t.db, { participantId: P, provider: 'fitbit', stream: 'heart_rate', days: [day], lastDeviceSync: DAY_END + 1 });
    await storeHeart(heart([60, 61]));
    await deliverAll(t);
    expect(await storeHeart(heart([60, 62]))).toMatchObject({ changedAfterDelivery: 1, corrections: 0 });
    expect(await claimBatch(t.db, P, 1_000, 1_000_000)).toBeNull();
    expect((await outboxEvents(t.db, P)).map((e) => e.data.value)).toEqual([60, 61]);
    expect(await t.db.selectFrom('day_ledger').select(['revised_events', 'corrected_events', 'correction_delta']).executeTakeFirstOrThrow()).toEqual({
      revised_events: 1,
      corrected_events: 0,
      correction_delta: 0,
    });
  });
});
