import { createHash } from 'node:crypto';
import { sql, type ExpressionBuilder, type Kysely, type Transaction } from 'kysely';
import { markEventsCompacted, recordFetchedDay } from './day-ledger.ts';
import { dayTotalOf, findDaysWithoutTotal, saveDayTotal } from './day-totals.ts';
import { lockParticipantEvents } from './locks.ts';
import type { ChunkEvent, Database, ProviderName, RecordStatus } from './schema.ts';

/**
 * `event_chunks`: the outbox. One row per participant × stream × local day × `seq`, holding that
 * chunk's events (one lz4-compressed jsonb array of {@link ChunkEvent}, in time order) and one
 * status for all of them. Each event has a deterministic key (participant, sensor, timestamp, and
 * what tells events sharing those apart), so the same datum fetched again, from either provider
 * API, is recognised. Every read and write of the table is in this file; delivery batches
 * ({@link ./delivery-batches.ts}) move chunks through their statuses with the functions here.
 * Every change that adds or rewrites chunks holds the participant's events lock
 * ({@link lockParticipantEvents}).
 *
 * `status`, and who sets it:
 * - `pending`: waiting for delivery. New or changed events ({@link storeFetchedDays}, fetcher:
 *   a day's pending events are kept in one chunk, rewritten when the day changes); the rest of a
 *   chunk cut to fit a batch ({@link takePendingRecords}); events of a batch known not sent or not
 *   found by read-back ({@link releaseBatchRecords}, {@link markBatchRecordsDelivered}); a parked
 *   batch an admin retries ({@link requeueParkedRecords}).
 * - `sending`: claimed into a delivery batch that is `sending` or `unknown` (lamp-writer).
 * - `delivered`: mindLAMP answered 2xx for the batch, or holds the events by read-back. Never sent
 *   again; kept, with the values mindLAMP received, until the day is older than the retention
 *   window ({@link compactDeliveredEvents}), so revisions inside the re-fetch window are detected.
 *   A revision of an additive stream's event is sent as a **correction event** (below).
 * - `parked`: mindLAMP refused the batch (4xx); kept for an admin, never compacted.
 *
 * The other columns: `batch_id` (the batch a `sending` or `parked` chunk went out in; null once
 * delivered, so a settled batch is referenced by nothing and leaves with its events), `event_count`,
 * `from_ts` (the earliest event: delivery goes oldest first), `content_hash` (of the events' keys
 * and hashes), `delivered_at`.
 *
 * Correction events (issue 16 item 5; docs/mapping.md, docs/pipeline.md). mindLAMP can neither
 * update nor delete, and Cortex sums `lamp.steps`, so when the provider revises an additive
 * event ({@link ADDITIVE_FIELDS}) after it left the outbox, the day's diff queues one event
 * carrying the difference: same sensor and UTC instant, `data` = the original's with the additive
 * fields set to (new − what mindLAMP holds or was sent), plus `correction: true`, `revision` (1
 * for the event's first correction, 2 for the next, …) and `revised_value` (the event's value
 * after it). It is an ordinary outbox event (chunk, batch, read-back), so it is stored in the
 * fetch's transaction and delivered exactly once; its key is the corrected event's key plus
 * `|correction|{revision}` and its chunk entry names the corrected key (`c`). What mindLAMP holds
 * for an event is the sum of it and its corrections in any status but `pending`; while a
 * correction is still pending it is recomputed by every diff of its day (same revision number),
 * so a second revision before delivery sends one correction, and one after sends only the new
 * difference. The difference may be negative (the provider lowered a minute, or it vanished from
 * a day that still has data): it is sent as it is, so that sums come out right.
 */

/**
 * Events per chunk the fetcher writes at most; a larger day is stored as several chunks. Below
 * mindLAMP's batch (LAMP_BATCH_SIZE, 1,000 by default), so that delivery moves whole chunks
 * instead of cutting them (a cut rewrites the chunk: WAL).
 */
const MAX_CHUNK_EVENTS = 500;

/** Events per merged delivered chunk: they are never sent again, so only the row size bounds them. */
const MERGED_CHUNK_EVENTS = 10_000;

/** A day keeps at most this many delivered chunks; more are merged into one by retention. */
const MAX_DELIVERED_CHUNKS_PER_DAY = 4;

/**
 * The additive streams and the `data` fields of theirs that add up: Cortex sums `lamp.steps` per
 * time bin (mindlamp-api §6), and active zone minutes add up over days the same way. A revision
 * of one of their events after delivery is sent as a correction event; any other stream's is
 * only counted (docs/pipeline.md).
 */
const ADDITIVE_FIELDS: Readonly<Record<string, readonly string[]>> = {
  steps: ['value'],
  active_zone_minutes: ['value', 'fat_burn', 'cardio', 'peak'],
};

/** Whether revisions of the stream's delivered events are sent as correction events. */
export function isAdditiveStream(stream: string): boolean {
  return Object.hasOwn(ADDITIVE_FIELDS, stream);
}

/** The key of the `revision`th correction of the event keyed `key`. */
export const correctionKey = (key: string, revision: number): string => `${key}|correction|${revision}`;

/** An outbox event as the lamp-writer sends it; `id` is its key. */
export interface OutboxRecord {
  id: string;
  stream: string;
  day: string;
  sensor: string;
  /** UTC epoch milliseconds. */
  timestamp: number;
  data: Record<string, unknown>;
}

/** What is POSTed for a record: mindLAMP's SensorEvent, nothing more (mindlamp-api §1.2). */
export function toSensorEvent(record: OutboxRecord): { timestamp: number; sensor: string; data: Record<string, unknown> } {
  return { timestamp: record.timestamp, sensor: record.sensor, data: record.data };
}

/** A normalized event ready for the outbox, keyed and hashed by the fetcher. */
export interface FetchedRecord {
  key: string;
  stream: string;
  day: string;
  sensor: string;
  timestamp: number;
  duration: number | null;
  data: Record<string, unknown>;
  hash: string;
}

/** One local day of one provider answer: its records (unique keys) and their combined hash. */
export interface FetchedDay {
  day: string;
  /** The instant the participant's local day ends (epoch ms): decides `settled` vs `partial`. */
  dayEnd: number;
  records: readonly FetchedRecord[];
  contentHash: string;
}

/** An event whose value changed after it left the outbox (delivered, or in a batch). */
export interface Revision {
  stream: string;
  day: string;
  key: string;
  sensor: string;
  timestamp: number;
  /** The event's chunk status: `delivered` means mindLAMP holds `sent`. */
  status: RecordStatus;
  /** The value mindLAMP received (or was sent); kept in Postgres while the day is within retention. */
  sent: Record<string, unknown>;
  revised: Record<string, unknown>;
}

export interface FetchedDaysOutcome {
  inserted: number;
  changed: number;
  /** Of the changed, how many mindLAMP already had (kept as delivered; see docs/mapping.md). */
  changedAfterDelivery: number;
  /** Changed events no longer pending, with the value sent and the new one (reliability: corrections). */
  revisions: Revision[];
  /** Correction events queued or recomputed (additive streams): each waits for delivery. */
  corrections: number;
  /** Days the content-hash shortcut found unchanged: nothing was written for their events. */
  unchangedDays: number;
  /**
   * Changed days whose delivered events retention had already deleted: their ledger and totals
   * are updated, their events not stored (they could not be told apart from delivered ones, and
   * mindLAMP cannot deduplicate). EVENT_RETENTION_DAYS bounds how late a change is still stored.
   */
  compactedDays: number;
}

const toChunkEvent = (r: FetchedRecord): ChunkEvent => ({ k: r.key, t: r.timestamp, s: r.sensor, d: r.duration, v: r.data, h: r.hash });
const byTime = (a: ChunkEvent, b: ChunkEvent) => a.t - b.t || (a.k < b.k ? -1 : a.k > b.k ? 1 : 0);

function chunkHash(events: readonly ChunkEvent[]): string {
  const hash = createHash('sha256');
  for (const e of events) hash.update(`${e.k}:${e.h},`);
  return hash.digest('base64url').slice(0, 22);
}

/**
 * Inserts one chunk of a day (events in time order) under the next sequence number. Exported for
 * seeding tests with chunks in any status; the outbox's own paths call it under the participant's lock.
 */
export async function insertChunk(
  trx: Kysely<Database>,
  chunk: { participantId: string; stream: string; day: string; status: RecordStatus; batchId?: string | null; events: ChunkEvent[]; deliveredAt?: Date | null },
): Promise<void> {
  const events = [...chunk.events].sort(byTime);
  await trx
    .insertInto('event_chunks')
    .values({
      participant_id: chunk.participantId,
      stream: chunk.stream,
      day: chunk.day,
      seq: sql<number>`(select coalesce(max(seq), 0) + 1 from event_chunks
        where participant_id = ${chunk.participantId} and stream = ${chunk.stream} and day = ${chunk.day})`,
      status: chunk.status,
      batch_id: chunk.batchId ?? null,
      event_count: events.length,
      from_ts: events[0]!.t,
      content_hash: chunkHash(events),
      events: JSON.stringify(events),
      delivered_at: chunk.deliveredAt ?? null,
    })
    .execute();
}

/** Replaces a chunk's events (a cut or a split), setting its status and batch. */
async function rewriteChunk(
  trx: Transaction<Database>,
  id: string,
  events: ChunkEvent[],
  set: { status: RecordStatus; batchId: string | null; deliveredAt?: Date | null },
): Promise<void> {
  await trx
    .updateTable('event_chunks')
    .set({
      events: JSON.stringify(events),
      event_count: events.length,
      from_ts: events[0]!.t,
      content_hash: chunkHash(events),
      status: set.status,
      batch_id: set.batchId,
      delivered_at: set.deliveredAt ?? null,
      updated_at: new Date(),
    })
    .where('id', '=', id)
    .execute();
}

/**
 * Stores one request's worth of days durably, with their ledger rows and day totals, in one
 * transaction (DESIGN.md principle 1). A day whose content hash equals the ledger's writes no
 * events. Otherwise the day is compared, event key by event key, with its stored chunks: new and
 * changed events not yet sent make up the day's one pending chunk; events that vanished from the
 * provider before delivery are dropped, unless `keepVanished` (a stream whose answers accumulate,
 * like device observations); events already sent keep the value sent (mindLAMP can neither update
 * nor delete), a changed one is reported in `revisions`, and for additive streams a correction
 * event carrying the difference is queued (see the top of this file).
 */
export async function storeFetchedDays(
  db: Kysely<Database>,
  input: {
    participantId: string;
    provider: ProviderName;
    stream: string;
    days: readonly FetchedDay[];
    /** The device's last sync time (epoch ms) the fetch saw. */
    lastDeviceSync: number;
    keepVanished?: boolean;
  },
): Promise<FetchedDaysOutcome> {
  const outcome: FetchedDaysOutcome = { inserted: 0, changed: 0, changedAfterDelivery: 0, revisions: [], corrections: 0, unchangedDays: 0, compactedDays: 0 };
  if (input.days.length === 0) return outcome;
  await db.transaction().execute(async (trx) => {
    await lockParticipantEvents(trx, input.participantId);
    const ledger = await trx
      .selectFrom('day_ledger')
      .select(['day', 'content_hash', 'day_total', 'revised_events', 'events_compacted_at'])
      .where('participant_id', '=', input.participantId)
      .where('stream', '=', input.stream)
      .where('day', 'in', input.days.map((d) => d.day))
      .execute();
    const known = new Map(ledger.map((r) => [r.day, r]));
    for (const fetched of input.days) {
      const entry = {
        participantId: input.participantId,
        provider: input.provider,
        stream: input.stream,
        day: fetched.day,
        dayEnd: fetched.dayEnd,
        recordCount: fetched.records.length,
        contentHash: fetched.contentHash,
        lastDeviceSync: input.lastDeviceSync,
      };
      const before = known.get(fetched.day);
      if (before && before.content_hash === fetched.contentHash) {
        outcome.unchangedDays++;
        await recordFetchedDay(trx, { ...entry, dayTotal: before.day_total, revisedEvents: before.revised_events });
        continue;
      }
      let revisions: DayRevisions = { revisedEvents: before?.revised_events ?? 0 };
      if (before?.events_compacted_at) outcome.compactedDays++;
      else revisions = { ...revisions, ...(await storeDayEvents(trx, input.participantId, input.stream, fetched, input.keepVanished ?? false, outcome)) };
      const total = dayTotalOf(
        input.stream,
        fetched.records.map((r) => ({ d: r.duration, v: r.data })),
      );
      await recordFetchedDay(trx, { ...entry, dayTotal: total, ...revisions });
      await saveDayTotal(trx, { participantId: input.participantId, stream: input.stream, day: fetched.day, total });
    }
  });
  return outcome;
}

/** What a day's diff found revised after delivery, for its ledger row. */
interface DayRevisions {
  revisedEvents: number;
  /** Additive streams: events with a correction, and the net difference of the corrections. */
  correctedEvents?: number;
  correctionDelta?: number;
}

interface StoredEvent {
  event: ChunkEvent;
  status: RecordStatus;
}

const amountOf = (data: Record<string, unknown>, field: string): number => (typeof data[field] === 'number' ? data[field] : 0);

function eventHash(data: Record<string, unknown>): string {
  return createHash('sha256').update(JSON.stringify(data)).digest('base64url').slice(0, 22);
}

/**
 * The diff of one fetched day against its chunks: new and changed pending events, and for an
 * additive stream the correction events its revisions need. Answers what it found revised.
 */
async function storeDayEvents(
  trx: Transaction<Database>,
  participantId: string,
  stream: string,
  fetched: FetchedDay,
  keepVanished: boolean,
  outcome: FetchedDaysOutcome,
): Promise<Partial<DayRevisions>> {
  const chunks = await trx
    .selectFrom('event_chunks')
    .select(['id', 'status', 'events'])
    .where('participant_id', '=', participantId)
    .where('stream', '=', stream)
    .where('day', '=', fetched.day)
    .forUpdate()
    .execute();
  const stored = new Map<string, StoredEvent>();
  const correctionsOf = new Map<string, StoredEvent[]>();
  const pendingBefore: ChunkEvent[] = [];
  for (const chunk of chunks) {
    for (const event of chunk.events) {
      if (event.c === undefined) stored.set(event.k, { event, status: chunk.status });
      else correctionsOf.set(event.c, [...(correctionsOf.get(event.c) ?? []), { event, status: chunk.status }]);
      if (chunk.status === 'pending') pendingBefore.push(event);
    }
  }
  const fields = ADDITIVE_FIELDS[stream];
  let revised = 0;
  const pending = new Map<string, ChunkEvent>();

  /**
   * An additive event mindLAMP holds (or was sent, or has a correction of): its pending correction
   * becomes `revised` − (the event and its corrections not pending), or goes when that is 0. An
   * original still pending beside a sent correction (its batch was released) stays as it is.
   * Answers false for an event nothing of which has left the outbox: it is simply replaced.
   */
  const correct = (prior: StoredEvent, revisedData: Record<string, unknown> | undefined): boolean => {
    const sent = (correctionsOf.get(prior.event.k) ?? []).filter((c) => c.status !== 'pending');
    if (prior.status === 'pending' && sent.length === 0) return false;
    if (prior.status === 'pending') pending.set(prior.event.k, prior.event);
    const held = [prior.event, ...sent.map((c) => c.event)];
    const target = fields!.map((f) => (revisedData ? amountOf(revisedData, f) : 0));
    const diff = fields!.map((f, i) => target[i]! - held.reduce((sum, e) => sum + amountOf(e.v, f), 0));
    if (diff.every((d) => d === 0)) return true;
    const revision = 1 + Math.max(0, ...sent.map((c) => amountOf(c.event.v, 'revision')));
    const data: Record<string, unknown> = { ...(revisedData ?? prior.event.v) };
    fields!.forEach((f, i) => {
      if (f in data || f in prior.event.v || diff[i] !== 0) data[f] = diff[i];
    });
    Object.assign(data, { correction: true, revision, revised_value: target[0] });
    const key = correctionKey(prior.event.k, revision);
    pending.set(key, { k: key, t: prior.event.t, s: prior.event.s, d: prior.event.d, v: data, h: eventHash(data), c: prior.event.k });
    return true;
  };
  const report = (prior: StoredEvent, revisedData: Record<string, unknown>) => {
    revised++;
    if (prior.status === 'delivered') outcome.changedAfterDelivery++;
    outcome.revisions.push({
      stream,
      day: fetched.day,
      key: prior.event.k,
      sensor: prior.event.s,
      timestamp: Number(prior.event.t),
      status: prior.status,
      sent: prior.event.v,
      revised: revisedData,
    });
  };

  for (const record of fetched.records) {
    const prior = stored.get(record.key);
    if (!prior) {
      outcome.inserted++;
      pending.set(record.key, toChunkEvent(record));
      continue;
    }
    const changed = prior.event.h !== record.hash;
    if (changed) outcome.changed++;
    if (changed && prior.status !== 'pending') report(prior, record.data);
    if (fields && correct(prior, record.data)) continue;
    if (prior.status === 'pending') pending.set(record.key, toChunkEvent(record));
  }
  // An additive event gone from a day that still has data is now 0 (a minute revised to no steps
  // is left out, docs/mapping.md). A day answered empty is more likely a provider gap than a day
  // whose every minute was revised away: it corrects nothing.
  if (fields && fetched.records.length > 0) {
    const present = new Set(fetched.records.map((r) => r.key));
    for (const prior of stored.values()) {
      if (present.has(prior.event.k)) continue;
      const zeroed = { ...prior.event.v, ...Object.fromEntries(fields.filter((f) => f in prior.event.v).map((f) => [f, 0])) };
      if (prior.status !== 'pending' && prior.event.v.value !== 0) report(prior, zeroed);
      correct(prior, undefined);
    }
  }
  if (keepVanished) for (const event of pendingBefore) if (!pending.has(event.k)) pending.set(event.k, event);
  // Nor does it drop what is pending beside a correction: a queued correction, or an original
  // whose correction mindLAMP has (mindLAMP's sum counts on both).
  if (fields && fetched.records.length === 0) {
    for (const event of pendingBefore) {
      const sent = (correctionsOf.get(event.k) ?? []).some((c) => c.status !== 'pending');
      if (event.c !== undefined || sent) pending.set(event.k, event);
    }
  }

  const next = [...pending.values()].sort(byTime);
  // A day answered empty says nothing of what was revised: the last diff's counts stand.
  let revisions: Partial<DayRevisions> = fields && fetched.records.length === 0 ? {} : { revisedEvents: revised };
  if (fields) {
    const before = new Set(pendingBefore.map((e) => `${e.k}:${e.h}`));
    const queued = next.filter((e) => e.c !== undefined);
    outcome.corrections += queued.filter((e) => !before.has(`${e.k}:${e.h}`)).length;
    const all = [...[...correctionsOf.values()].flat().filter((c) => c.status !== 'pending').map((c) => c.event), ...queued];
    revisions = {
      ...revisions,
      correctedEvents: new Set(all.map((e) => e.c)).size,
      correctionDelta: all.reduce((sum, e) => sum + amountOf(e.v, 'value'), 0),
    };
  }
  const same = next.length === pendingBefore.length && chunkHash(next) === chunkHash([...pendingBefore].sort(byTime));
  if (same) return revisions;
  const pendingIds = chunks.filter((c) => c.status === 'pending').map((c) => c.id);
  if (pendingIds.length > 0) await trx.deleteFrom('event_chunks').where('id', 'in', pendingIds).execute();
  for (let i = 0; i < next.length; i += MAX_CHUNK_EVENTS) {
    await insertChunk(trx, { participantId, stream, day: fetched.day, status: 'pending', events: next.slice(i, i + MAX_CHUNK_EVENTS) });
  }
  return revisions;
}

const toRecord = (stream: string, day: string) => (e: ChunkEvent): OutboxRecord => ({
  id: e.k,
  stream,
  day,
  sensor: e.s,
  timestamp: Number(e.t),
  data: e.v,
});

/** Whether the participant has events waiting for delivery. */
export async function hasPendingRecords(trx: Transaction<Database>, participantId: string): Promise<boolean> {
  const row = await trx
    .selectFrom('event_chunks')
    .select('id')
    .where('participant_id', '=', participantId)
    .where('status', '=', 'pending')
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}

/**
 * Claims the participant's oldest pending events into `batchId`, whole chunks in time order,
 * up to `maxEvents` and `maxBytes` of JSON: the batch ends at the first chunk that does not fit,
 * unless that is the first, which is cut (at least one event), its rest staying pending as a new
 * chunk. Whole chunks change only their status; a cut rewrites one. `SKIP LOCKED` keeps two writers from claiming the
 * same chunks should BullMQ ever run a participant's job twice. Answers the events in send order
 * and their JSON size; run in the transaction that creates the batch.
 */
export async function takePendingRecords(
  trx: Transaction<Database>,
  participantId: string,
  limits: { maxEvents: number; maxBytes: number },
  batchId: string,
): Promise<{ records: OutboxRecord[]; bytes: number }> {
  await lockParticipantEvents(trx, participantId);
  const heads = await trx
    .selectFrom('event_chunks')
    .select(['id', 'event_count'])
    .where('participant_id', '=', participantId)
    .where('status', '=', 'pending')
    .orderBy('from_ts')
    .orderBy('id')
    .limit(limits.maxEvents)
    .forUpdate()
    .skipLocked()
    .execute();
  const records: OutboxRecord[] = [];
  let bytes = 2;
  let events = 0;
  for (const head of heads) {
    if (events >= limits.maxEvents) break;
    const chunk = await trx
      .selectFrom('event_chunks')
      .select(['id', 'stream', 'day', 'events'])
      .where('id', '=', head.id)
      .executeTakeFirstOrThrow();
    const sizes = chunk.events.map((e) => JSON.stringify(toSensorEvent(toRecord(chunk.stream, chunk.day)(e))).length + 1);
    const chunkBytes = sizes.reduce((a, b) => a + b, 0);
    let taken: ChunkEvent[];
    if (events + chunk.events.length <= limits.maxEvents && bytes + chunkBytes <= limits.maxBytes) {
      taken = chunk.events;
      bytes += chunkBytes;
    } else if (events === 0) {
      // A chunk larger than a batch: cut it, the rest stays pending as a new chunk.
      taken = [];
      for (const [i, event] of chunk.events.entries()) {
        if (taken.length >= limits.maxEvents || (taken.length > 0 && bytes + sizes[i]! > limits.maxBytes)) break;
        taken.push(event);
        bytes += sizes[i]!;
      }
    } else {
      break; // whole chunks only after the first: fewer rewrites, and time order is kept
    }
    for (const event of taken) records.push(toRecord(chunk.stream, chunk.day)(event));
    events += taken.length;
    if (taken.length === chunk.events.length) {
      await trx
        .updateTable('event_chunks')
        .set({ status: 'sending', batch_id: batchId, updated_at: new Date() })
        .where('id', '=', chunk.id)
        .execute();
      continue;
    }
    await rewriteChunk(trx, chunk.id, taken, { status: 'sending', batchId });
    await insertChunk(trx, { participantId, stream: chunk.stream, day: chunk.day, status: 'pending', events: chunk.events.slice(taken.length) });
    break;
  }
  records.sort((a, b) => a.timestamp - b.timestamp);
  return { records, bytes };
}

/** The events of a batch still `sending` (its outcome not settled yet). */
export async function findBatchRecords(db: Kysely<Database>, batchId: string): Promise<OutboxRecord[]> {
  const chunks = await db
    .selectFrom('event_chunks')
    .select(['stream', 'day', 'events'])
    .where('batch_id', '=', batchId)
    .where('status', '=', 'sending')
    .orderBy('from_ts')
    .execute();
  return chunks.flatMap((c) => c.events.map(toRecord(c.stream, c.day)));
}

/**
 * Marks a batch's `sending` events delivered (only `onlyIds` when given: what a read-back found;
 * a chunk partly found is split, its missing events going back to pending). Answers how many per
 * stream and day, for the ledger's delivered counts.
 */
export async function markBatchRecordsDelivered(
  trx: Transaction<Database>,
  participantId: string,
  batchId: string,
  onlyIds?: readonly string[],
): Promise<Array<{ stream: string; day: string; records: number }>> {
  const counts = new Map<string, { stream: string; day: string; records: number }>();
  const count = (stream: string, day: string, n: number) => {
    const key = `${stream}/${day}`;
    const entry = counts.get(key) ?? { stream, day, records: 0 };
    entry.records += n;
    counts.set(key, entry);
  };
  const now = new Date();
  if (onlyIds === undefined) {
    const rows = await trx
      .updateTable('event_chunks')
      .set({ status: 'delivered', batch_id: null, delivered_at: now, updated_at: now })
      .where('batch_id', '=', batchId)
      .where('status', '=', 'sending')
      .returning(['stream', 'day', 'event_count'])
      .execute();
    for (const r of rows) count(r.stream, r.day, r.event_count);
    return [...counts.values()];
  }
  if (onlyIds.length === 0) return [];
  await lockParticipantEvents(trx, participantId);
  const found = new Set(onlyIds);
  const chunks = await trx
    .selectFrom('event_chunks')
    .select(['id', 'stream', 'day', 'events'])
    .where('batch_id', '=', batchId)
    .where('status', '=', 'sending')
    .forUpdate()
    .execute();
  for (const chunk of chunks) {
    const hit = chunk.events.filter((e) => found.has(e.k));
    if (hit.length === 0) continue; // stays `sending`: released to pending with the batch
    count(chunk.stream, chunk.day, hit.length);
    if (hit.length === chunk.events.length) {
      await trx.updateTable('event_chunks').set({ status: 'delivered', batch_id: null, delivered_at: now, updated_at: now }).where('id', '=', chunk.id).execute();
      continue;
    }
    await rewriteChunk(trx, chunk.id, hit, { status: 'delivered', batchId: null, deliveredAt: now });
    const missing = chunk.events.filter((e) => !found.has(e.k));
    await insertChunk(trx, { participantId, stream: chunk.stream, day: chunk.day, status: 'pending', events: missing });
  }
  return [...counts.values()];
}

/** A batch's chunks still `sending` go back to `pending`, out of the batch. Answers their events. */
export async function releaseBatchRecords(trx: Transaction<Database>, batchId: string): Promise<number> {
  const rows = await trx
    .updateTable('event_chunks')
    .set({ status: 'pending', batch_id: null, updated_at: new Date() })
    .where('batch_id', '=', batchId)
    .where('status', '=', 'sending')
    .returning('event_count')
    .execute();
  return rows.reduce((n, r) => n + r.event_count, 0);
}

/** A refused batch's chunks are `parked` with it. Answers their events. */
export async function parkBatchRecords(trx: Transaction<Database>, batchId: string): Promise<number> {
  const rows = await trx
    .updateTable('event_chunks')
    .set({ status: 'parked', updated_at: new Date() })
    .where('batch_id', '=', batchId)
    .where('status', '=', 'sending')
    .returning('event_count')
    .execute();
  return rows.reduce((n, r) => n + r.event_count, 0);
}

/** A parked batch's chunks go back to `pending`, out of the batch, for the lamp-writer to send again. */
export async function requeueParkedRecords(trx: Transaction<Database>, batchId: string): Promise<number> {
  const rows = await trx
    .updateTable('event_chunks')
    .set({ status: 'pending', batch_id: null, updated_at: sql<Date>`now()` })
    .where('batch_id', '=', batchId)
    .where('status', '=', 'parked')
    .returning('event_count')
    .execute();
  return rows.reduce((n, r) => n + r.event_count, 0);
}

/**
 * Participants with events still `pending` or `sending` whose last change is older than
 * `olderThanMs` by the database's clock (the scheduler's own clock may follow a simulation).
 */
export async function findParticipantsWithStaleRecords(db: Kysely<Database>, olderThanMs: number): Promise<string[]> {
  const rows = await db
    .selectFrom('event_chunks')
    .select('participant_id')
    .distinct()
    .where('status', 'in', ['pending', 'sending'])
    .where('updated_at', '<', sql<Date>`now() - make_interval(secs => ${olderThanMs / 1000})`)
    .execute();
  return rows.map((r) => r.participant_id);
}

/** Parked events per `stream/day` of a participant's days `from`..`to`, optionally only some streams. */
export async function countParkedRecordsByDay(
  db: Kysely<Database>,
  participantId: string,
  range: { from: string; to: string; streams?: readonly string[] },
): Promise<Map<string, number>> {
  const only = range.streams && range.streams.length > 0 ? [...range.streams] : undefined;
  const rows = await db
    .selectFrom('event_chunks')
    .select((eb) => ['stream', 'day', eb.fn.sum<string>('event_count').as('n')])
    .where('participant_id', '=', participantId)
    .where('status', '=', 'parked')
    .where('day', '>=', range.from)
    .where('day', '<=', range.to)
    .$if(only !== undefined, (qb) => qb.where('stream', 'in', only!))
    .groupBy(['stream', 'day'])
    .execute();
  return new Map(rows.map((r) => [`${r.stream}/${r.day}`, Number(r.n)]));
}

/**
 * Whether a day's delivered events may leave: a day the ledger calls complete (`settled`,
 * `empty`), or any day before `finalBefore`, which the fetcher never fetches again. Inside the
 * sync window a `partial` or `failed` day is fetched again and may still bring events, which must
 * be told apart from delivered ones; outside it, it stays `partial` for good (a nightly value
 * fetched before the device's sync passed the day's end, the device stream), and keeping its
 * events would grow the table with every day of the study.
 */
const finalDay = (eb: ExpressionBuilder<Database, 'event_chunks'>, finalBefore: string | undefined) => {
  const settled = eb.exists(
    eb
      .selectFrom('day_ledger as l')
      .select('l.day')
      .whereRef('l.participant_id', '=', 'event_chunks.participant_id')
      .whereRef('l.stream', '=', 'event_chunks.stream')
      .whereRef('l.day', '=', 'event_chunks.day')
      .where('l.status', 'in', ['settled', 'empty']),
  );
  return finalBefore === undefined ? settled : eb.or([eb('event_chunks.day', '<', finalBefore), settled]);
};

/** What {@link compactDeliveredEvents} did. */
export interface CompactionOutcome {
  /** Delivered chunks deleted, their days older than the retention window. */
  deletedChunks: number;
  deletedEvents: number;
  /** Days whose many delivered chunks were merged into one. */
  mergedDays: number;
  /** Delivered batches whose newest event is older than the retention window. */
  deletedBatches: number;
}

/** The most a participant's local time is ahead of UTC (UTC+14): a local day starts no earlier than its UTC date minus this. */
const MAX_UTC_OFFSET_MS = 14 * 3_600_000;

/**
 * Retention for one participant: deletes delivered chunks of days before `beforeDay` that are
 * complete or never fetched again ({@link finalDay}; their
 * totals are in `day_summaries`, filled first where missing) and delivered batches whose events
 * are all older than that (only parked, abandoned and in-flight batches stay), and merges a day's delivered chunks
 * into one row once it has more than {@link MAX_DELIVERED_CHUNKS_PER_DAY}, so rows stay few and
 * large. Pending, sending and parked chunks are never touched. Deletes are per participant-day,
 * so nothing accumulates for VACUUM with history.
 */
export async function compactDeliveredEvents(
  db: Kysely<Database>,
  participantId: string,
  beforeDay: string,
  /** Days before this are never fetched again (before the fetcher's sync window): compacted whatever their ledger status. */
  finalBefore?: string,
): Promise<CompactionOutcome> {
  const outcome: CompactionOutcome = { deletedChunks: 0, deletedEvents: 0, mergedDays: 0, deletedBatches: 0 };
  await db.transaction().execute(async (trx) => {
    await lockParticipantEvents(trx, participantId);
    const old = await trx
      .selectFrom('event_chunks')
      .select(['stream', 'day'])
      .distinct()
      .where('participant_id', '=', participantId)
      .where('status', '=', 'delivered')
      .where('day', '<', beforeDay)
      .where((eb) => finalDay(eb, finalBefore))
      .execute();
    const daysByStream = new Map<string, string[]>();
    for (const r of old) daysByStream.set(r.stream, [...(daysByStream.get(r.stream) ?? []), r.day]);
    for (const [stream, days] of daysByStream) {
      for (const day of await findDaysWithoutTotal(trx, participantId, stream, days)) {
        const chunks = await trx
          .selectFrom('event_chunks')
          .select('events')
          .where('participant_id', '=', participantId)
          .where('stream', '=', stream)
          .where('day', '=', day)
          .execute();
        await saveDayTotal(trx, { participantId, stream, day, total: dayTotalOf(stream, chunks.flatMap((c) => c.events)) }, true);
      }
    }
    if (old.length > 0) {
      await markEventsCompacted(trx, participantId, old);
      const deleted = await trx
        .deleteFrom('event_chunks')
        .where('participant_id', '=', participantId)
        .where('status', '=', 'delivered')
        .where('day', '<', beforeDay)
        .where((eb) => finalDay(eb, finalBefore))
        .returning('event_count')
        .execute();
      outcome.deletedChunks = deleted.length;
      outcome.deletedEvents = deleted.reduce((n, r) => n + r.event_count, 0);
    }

    // A delivered batch is history once its events are: its newest event is before the window in
    // any time zone. Nothing points at it (a delivered chunk has no batch_id); the check is for
    // chunks delivered before that rule, and costs an index probe (event_chunks_batch_idx).
    const batchesBefore = Date.parse(`${beforeDay}T00:00:00Z`) - MAX_UTC_OFFSET_MS;
    const batches = await trx
      .deleteFrom('delivery_batches as b')
      .where('b.participant_id', '=', participantId)
      .where('b.status', '=', 'delivered')
      .where('b.to_ts', '<', String(batchesBefore))
      .where((eb) => eb.not(eb.exists(eb.selectFrom('event_chunks as c').select('c.id').whereRef('c.batch_id', '=', 'b.id'))))
      .executeTakeFirst();
    outcome.deletedBatches = Number(batches.numDeletedRows);

    const crowded = await trx
      .selectFrom('event_chunks')
      .select(['stream', 'day'])
      .where('participant_id', '=', participantId)
      .where('status', '=', 'delivered')
      .groupBy(['stream', 'day'])
      .having((eb) => eb.fn.countAll(), '>', MAX_DELIVERED_CHUNKS_PER_DAY)
      .execute();
    for (const { stream, day } of crowded) {
      const chunks = await trx
        .deleteFrom('event_chunks')
        .where('participant_id', '=', participantId)
        .where('stream', '=', stream)
        .where('day', '=', day)
        .where('status', '=', 'delivered')
        .returning(['events', 'delivered_at'])
        .execute();
      const events = chunks.flatMap((c) => c.events).sort(byTime);
      const deliveredAt = chunks.reduce<Date | null>((at, c) => (at && c.delivered_at && at > c.delivered_at ? at : c.delivered_at), null);
      for (let i = 0; i < events.length; i += MERGED_CHUNK_EVENTS) {
        await insertChunk(trx, { participantId, stream, day, status: 'delivered', events: events.slice(i, i + MERGED_CHUNK_EVENTS), deliveredAt });
      }
      outcome.mergedDays++;
    }
  });
  return outcome;
}
