import { sql, type Kysely, type Transaction } from 'kysely';
import { recordFetchedDay } from './day-ledger.ts';
import type { Database, ProviderName } from './schema.ts';

/**
 * `records`: the outbox. One row per mindLAMP sensor event fitlamp fetched, under a
 * deterministic `record_key` (participant, sensor, timestamp, and what tells records sharing those
 * apart), so the same datum fetched again, from either provider API, is the same row. Every read
 * and write of the table is in this file; delivery batches ({@link ./delivery-batches.ts}) move
 * records through their statuses with the functions here.
 *
 * `status`, and who sets it:
 * - `pending`: waiting for delivery. New records ({@link storeFetchedDays}, fetcher); records of a
 *   batch known not sent or not found by read-back ({@link releaseBatchRecords}); records of a
 *   parked batch an admin retries ({@link requeueParkedRecords}).
 * - `sending`: claimed into a delivery batch that is `sending` or `unknown`
 *   ({@link takePendingRecords} then {@link assignRecordsToBatch}, lamp-writer).
 * - `delivered`: mindLAMP answered 2xx for the batch, or holds the record by read-back
 *   ({@link markBatchRecordsDelivered}, lamp-writer). Such a record is never sent again.
 * - `parked`: mindLAMP refused the batch (4xx); kept for an admin ({@link parkBatchRecords}).
 *
 * The other columns:
 * - `data_hash`: hash of the event as last fetched; an unchanged re-fetch changes nothing.
 * - `delivered_hash`: hash of what mindLAMP received; differs from `data_hash` when the provider
 *   revised a delivered record later (it is kept, not re-sent: mindLAMP cannot update).
 * - `revision`: bumped by every changed re-fetch.
 * - `batch_id`: the delivery batch a `sending`, `delivered` or `parked` record went out in.
 */

/** Rows per INSERT: 11 parameters each stays far below Postgres' 65,535-parameter limit. */
const CHUNK = 2_000;

/** An outbox record as the lamp-writer sends it. */
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

export interface FetchedDaysOutcome {
  inserted: number;
  changed: number;
  /** Of the changed, how many mindLAMP already had (kept as delivered; see docs/mapping.md). */
  changedAfterDelivery: number;
}

/**
 * Stores one request's worth of days durably, with their ledger rows, in one transaction
 * (DESIGN.md principle 1). Unchanged re-fetches change nothing; changed records take the new
 * value, and stay delivered if mindLAMP already has them (it can neither update nor delete);
 * records that vanished from the provider before delivery are dropped, unless `keepVanished`
 * (a stream whose answers accumulate, like device observations).
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
  const outcome: FetchedDaysOutcome = { inserted: 0, changed: 0, changedAfterDelivery: 0 };
  await db.transaction().execute(async (trx) => {
    for (const fetched of input.days) {
      const rows = fetched.records.map((r) => ({
        record_key: r.key,
        participant_id: input.participantId,
        stream: r.stream,
        day: r.day,
        sensor: r.sensor,
        timestamp: r.timestamp,
        duration: r.duration,
        data: JSON.stringify(r.data),
        data_hash: r.hash,
        status: 'pending' as const,
      }));
      for (let i = 0; i < rows.length; i += CHUNK) {
        const written = await trx
          .insertInto('records')
          .values(rows.slice(i, i + CHUNK))
          .onConflict((oc) =>
            oc
              .column('record_key')
              .doUpdateSet({
                data: (eb) => eb.ref('excluded.data'),
                data_hash: (eb) => eb.ref('excluded.data_hash'),
                duration: (eb) => eb.ref('excluded.duration'),
                revision: sql`records.revision + 1`,
                updated_at: sql`now()`,
              })
              .where('records.data_hash', '<>', (eb) => eb.ref('excluded.data_hash')),
          )
          .returning([sql<boolean>`(xmax = 0)`.as('inserted'), 'status'])
          .execute();
        for (const w of written) {
          if (w.inserted) outcome.inserted++;
          else {
            outcome.changed++;
            if (w.status === 'delivered') outcome.changedAfterDelivery++;
          }
        }
      }
      const keys = rows.map((r) => r.record_key);
      if (!input.keepVanished) {
        await trx
          .deleteFrom('records')
          .where('participant_id', '=', input.participantId)
          .where('stream', '=', input.stream)
          .where('day', '=', fetched.day)
          .where('status', '=', 'pending')
          .$if(keys.length > 0, (qb) => qb.where('record_key', '<>', sql<string>`all(${sql.val(keys)}::text[])`))
          .execute();
      }
      await recordFetchedDay(trx, {
        participantId: input.participantId,
        provider: input.provider,
        stream: input.stream,
        day: fetched.day,
        dayEnd: fetched.dayEnd,
        recordCount: rows.length,
        contentHash: fetched.contentHash,
        lastDeviceSync: input.lastDeviceSync,
      });
    }
  });
  return outcome;
}

/**
 * Locks and answers the participant's oldest pending records, in time order, up to `limit`.
 * `SKIP LOCKED` keeps two writers from claiming the same records should BullMQ ever run a
 * participant's job twice. Run in the transaction that assigns them to a batch.
 */
export async function takePendingRecords(trx: Transaction<Database>, participantId: string, limit: number): Promise<OutboxRecord[]> {
  const rows = await trx
    .selectFrom('records')
    .select(['id', 'stream', 'day', 'sensor', 'timestamp', 'data'])
    .where('participant_id', '=', participantId)
    .where('status', '=', 'pending')
    .orderBy('timestamp')
    .orderBy('id')
    .limit(limit)
    .forUpdate()
    .skipLocked()
    .execute();
  return rows.map((r) => ({ ...r, timestamp: Number(r.timestamp) }));
}

/** Puts records taken by {@link takePendingRecords} into a batch: `sending`. */
export async function assignRecordsToBatch(trx: Transaction<Database>, recordIds: readonly string[], batchId: string): Promise<void> {
  if (recordIds.length === 0) return;
  await trx
    .updateTable('records')
    .set({ status: 'sending', batch_id: batchId, updated_at: new Date() })
    .where('id', 'in', [...recordIds])
    .execute();
}

/** The records of a batch still `sending` (its outcome not settled yet). */
export async function findBatchRecords(db: Kysely<Database>, batchId: string): Promise<OutboxRecord[]> {
  const rows = await db
    .selectFrom('records')
    .select(['id', 'stream', 'day', 'sensor', 'timestamp', 'data'])
    .where('batch_id', '=', batchId)
    .where('status', '=', 'sending')
    .execute();
  return rows.map((r) => ({ ...r, timestamp: Number(r.timestamp) }));
}

/**
 * Marks a batch's `sending` records delivered (only `onlyIds` when given: what a read-back
 * found), remembering the hash mindLAMP received. Answers how many per stream and day, for the
 * ledger's delivered counts.
 */
export async function markBatchRecordsDelivered(
  trx: Transaction<Database>,
  batchId: string,
  onlyIds?: readonly string[],
): Promise<Array<{ stream: string; day: string; records: number }>> {
  if (onlyIds !== undefined && onlyIds.length === 0) return [];
  const rows = await trx
    .updateTable('records')
    .set({ status: 'delivered', delivered_at: new Date(), delivered_hash: sql`data_hash`, updated_at: new Date() })
    .where('batch_id', '=', batchId)
    .where('status', '=', 'sending')
    .$if(onlyIds !== undefined, (qb) => qb.where('id', 'in', [...onlyIds!]))
    .returning(['stream', 'day'])
    .execute();
  const counts = new Map<string, { stream: string; day: string; records: number }>();
  for (const r of rows) {
    const key = `${r.stream}/${r.day}`;
    const entry = counts.get(key) ?? { stream: r.stream, day: r.day, records: 0 };
    entry.records++;
    counts.set(key, entry);
  }
  return [...counts.values()];
}

/** A batch's records still `sending` go back to `pending`, out of the batch. */
export async function releaseBatchRecords(trx: Transaction<Database>, batchId: string): Promise<number> {
  const result = await trx
    .updateTable('records')
    .set({ status: 'pending', batch_id: null, updated_at: new Date() })
    .where('batch_id', '=', batchId)
    .where('status', '=', 'sending')
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** A refused batch's records are `parked` with it. */
export async function parkBatchRecords(trx: Transaction<Database>, batchId: string): Promise<number> {
  const result = await trx.updateTable('records').set({ status: 'parked', updated_at: new Date() }).where('batch_id', '=', batchId).executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** A parked batch's records go back to `pending`, out of the batch, for the lamp-writer to send again. */
export async function requeueParkedRecords(trx: Transaction<Database>, batchId: string): Promise<number> {
  const result = await trx
    .updateTable('records')
    .set({ status: 'pending', batch_id: null, updated_at: sql<Date>`now()` })
    .where('batch_id', '=', batchId)
    .where('status', '=', 'parked')
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/**
 * Participants with records still `pending` or `sending` whose last change is older than
 * `olderThanMs` by the database's clock (the scheduler's own clock may follow a simulation).
 */
export async function findParticipantsWithStaleRecords(db: Kysely<Database>, olderThanMs: number): Promise<string[]> {
  const rows = await db
    .selectFrom('records')
    .select('participant_id')
    .distinct()
    .where('status', 'in', ['pending', 'sending'])
    .where('updated_at', '<', sql<Date>`now() - make_interval(secs => ${olderThanMs / 1000})`)
    .execute();
  return rows.map((r) => r.participant_id);
}

/** Parked records per `stream/day` of a participant's days `from`..`to`, optionally only some streams. */
export async function countParkedRecordsByDay(
  db: Kysely<Database>,
  participantId: string,
  range: { from: string; to: string; streams?: readonly string[] },
): Promise<Map<string, number>> {
  const only = range.streams && range.streams.length > 0 ? [...range.streams] : undefined;
  const rows = await db
    .selectFrom('records')
    .select((eb) => ['stream', 'day', eb.fn.countAll<string>().as('n')])
    .where('participant_id', '=', participantId)
    .where('status', '=', 'parked')
    .where('day', '>=', range.from)
    .where('day', '<=', range.to)
    .$if(only !== undefined, (qb) => qb.where('stream', 'in', only!))
    .groupBy(['stream', 'day'])
    .execute();
  return new Map(rows.map((r) => [`${r.stream}/${r.day}`, Number(r.n)]));
}
