import { sql, type Kysely } from 'kysely';
import { addDeliveredCounts } from './day-ledger.ts';
import {
  findParticipantsWithStaleRecords,
  hasPendingRecords,
  markBatchRecordsDelivered,
  parkBatchRecords,
  releaseBatchRecords,
  requeueParkedRecords,
  takePendingRecords,
  type OutboxRecord,
} from './outbox.ts';
import type { BatchStatus, Database, DeliveryBatch } from './schema.ts';

/**
 * `delivery_batches`: one row per POST of a participant's records to mindLAMP, so that an
 * outcome fitlamp cannot know is settled by reading back before anything is sent again
 * (DESIGN.md principle 2). Every write to the table is in this file, and each moves the batch's
 * outbox records ({@link ./outbox.ts}) in the same transaction.
 *
 * `status`, and who sets it (the lamp-writer, unless said otherwise):
 * - `sending`: claimed, POST in flight ({@link claimBatch}). Still `sending` later means the writer
 *   died mid-batch: the next delivery job reconciles it first ({@link findOpenBatches}).
 * - `delivered`: mindLAMP answered 2xx ({@link markBatchDelivered}), or a read-back found every
 *   event ({@link settleReconciledBatch}).
 * - `unknown`: timeout, reset or 5xx: mindLAMP may have stored some or all of it
 *   ({@link markBatchUnknown}); read back before the records are sent again.
 * - `parked`: mindLAMP refused it (4xx) ({@link parkBatch}); `last_error` says why; shown to
 *   admins until retried.
 * - `abandoned`: closed without (full) delivery, its unsent records back in the outbox: known not
 *   sent ({@link abandonBatch}), partly found by read-back ({@link settleReconciledBatch}), or a
 *   parked batch an admin retried ({@link requeueParkedBatch}, gateway).
 *
 * `attempts` counts POSTs, `last_error` keeps the last failure or read-back note, `from_ts` and
 * `to_ts` bound the events' timestamps (the read-back range), `completed_at` is set on settling.
 */

/** A batch just claimed, with its records in send order. */
export interface ClaimedBatch {
  batch: DeliveryBatch;
  records: OutboxRecord[];
}

/**
 * Claims the participant's oldest pending events, in time order, up to `maxEvents` and
 * `maxBytes` of JSON, as one batch in state `sending` (its chunks, cut to fit, go `sending` with
 * it). Answers `null` when nothing is pending.
 */
export async function claimBatch(
  db: Kysely<Database>,
  participantId: string,
  maxEvents: number,
  maxBytes: number,
): Promise<ClaimedBatch | null> {
  return db.transaction().execute(async (trx) => {
    if (!(await hasPendingRecords(trx, participantId))) return null;
    // The batch row comes first so its chunks can point at it; its counts are set once they are cut.
    const draft = await trx
      .insertInto('delivery_batches')
      .values({ participant_id: participantId, status: 'sending', event_count: 0, bytes: 0, from_ts: 0, to_ts: 0, attempts: 1 })
      .returning('id')
      .executeTakeFirstOrThrow();
    const { records, bytes } = await takePendingRecords(trx, participantId, { maxEvents, maxBytes }, draft.id);
    if (records.length === 0) {
      await trx.deleteFrom('delivery_batches').where('id', '=', draft.id).execute();
      return null;
    }
    const batch = await trx
      .updateTable('delivery_batches')
      .set({
        event_count: records.length,
        bytes,
        from_ts: records[0]!.timestamp,
        to_ts: records[records.length - 1]!.timestamp,
      })
      .where('id', '=', draft.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    return { batch, records };
  });
}

/** mindLAMP answered 2xx: the batch's records are delivered, and counted in the day ledger. */
export async function markBatchDelivered(db: Kysely<Database>, batch: DeliveryBatch): Promise<void> {
  await db.transaction().execute(async (trx) => {
    const counts = await markBatchRecordsDelivered(trx, batch.participant_id, batch.id);
    await addDeliveredCounts(trx, batch.participant_id, counts);
    await trx
      .updateTable('delivery_batches')
      .set({ status: 'delivered', completed_at: new Date(), updated_at: new Date() })
      .where('id', '=', batch.id)
      .execute();
  });
}

/**
 * Settles a batch after reading back what mindLAMP holds: the records found are delivered, the
 * rest go back to pending; the batch is `delivered` if all were found, else `abandoned`, with `note`.
 */
export async function settleReconciledBatch(
  db: Kysely<Database>,
  batch: DeliveryBatch,
  foundIds: readonly string[],
  note: string,
): Promise<void> {
  await db.transaction().execute(async (trx) => {
    if (foundIds.length > 0) {
      const counts = await markBatchRecordsDelivered(trx, batch.participant_id, batch.id, foundIds);
      await addDeliveredCounts(trx, batch.participant_id, counts);
    }
    await releaseBatchRecords(trx, batch.id);
    await trx
      .updateTable('delivery_batches')
      .set({
        status: foundIds.length === batch.event_count ? 'delivered' : 'abandoned',
        last_error: note,
        completed_at: new Date(),
        updated_at: new Date(),
      })
      .where('id', '=', batch.id)
      .execute();
  });
}

/** Known not sent (connection refused, or the researcher credential refused): records return to pending untouched. */
export async function abandonBatch(db: Kysely<Database>, batch: DeliveryBatch, reason: string): Promise<void> {
  await settleReconciledBatch(db, batch, [], reason);
}

/** mindLAMP refused the batch (4xx): park it with the reason, visible to admins; the rest keeps flowing. */
export async function parkBatch(db: Kysely<Database>, batch: DeliveryBatch, reason: string): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await parkBatchRecords(trx, batch.id);
    await trx
      .updateTable('delivery_batches')
      .set({ status: 'parked', last_error: reason, completed_at: new Date(), updated_at: new Date() })
      .where('id', '=', batch.id)
      .execute();
  });
}

/** Marks a batch's outcome unknown (timeout, reset, 5xx) so that any later attempt reconciles it first. */
export async function markBatchUnknown(db: Kysely<Database>, batch: DeliveryBatch, reason: string): Promise<void> {
  await db
    .updateTable('delivery_batches')
    // On the database's clock, like a claim's: {@link findOpenBatches} measures the age with it.
    .set({ status: 'unknown', last_error: reason, updated_at: sql<Date>`now()` })
    .where('id', '=', batch.id)
    .execute();
}

/**
 * Batches whose outcome is not known: left `sending` by a crash, or `unknown` after a timeout,
 * with `ageMs`: how long ago, on the database's clock, the batch last changed (claimed, or its
 * POST ended without an answer).
 */
export async function findOpenBatches(db: Kysely<Database>, participantId: string): Promise<Array<DeliveryBatch & { ageMs: number }>> {
  return db
    .selectFrom('delivery_batches')
    .selectAll()
    .select(sql<number>`(extract(epoch from (clock_timestamp() - updated_at)) * 1000)::float8`.as('ageMs'))
    .where('participant_id', '=', participantId)
    .where('status', 'in', ['sending', 'unknown'])
    .orderBy('id')
    .execute();
}

/**
 * Lost work for the scheduler's sweep, by participant: records that should have reached mindLAMP
 * by now, and batches left `sending` or `unknown`, unchanged for longer than `olderThanMs` by
 * the database's clock (their `updated_at` is the database's or a writer's wall time; the
 * scheduler's own clock may follow a simulated provider).
 */
export async function findParticipantsWithLostDeliveries(db: Kysely<Database>, olderThanMs: number): Promise<string[]> {
  const [records, batches] = await Promise.all([
    findParticipantsWithStaleRecords(db, olderThanMs),
    db
      .selectFrom('delivery_batches')
      .select('participant_id')
      .distinct()
      .where('status', 'in', ['sending', 'unknown'])
      .where('updated_at', '<', sql<Date>`now() - make_interval(secs => ${olderThanMs / 1000})`)
      .execute(),
  ]);
  return [...new Set([...records, ...batches.map((b) => b.participant_id)])];
}

/** Delivery batches, newest first, with how many match in all (for paging). */
export async function listDeliveryBatches(
  db: Kysely<Database>,
  filter: { status?: BatchStatus; participantId?: string; studyIds?: readonly string[]; limit?: number; offset?: number } = {},
): Promise<{ batches: DeliveryBatch[]; total: number }> {
  if (filter.studyIds && filter.studyIds.length === 0) return { batches: [], total: 0 };
  let base = db.selectFrom('delivery_batches');
  if (filter.status) base = base.where('status', '=', filter.status);
  if (filter.participantId) base = base.where('participant_id', '=', filter.participantId);
  if (filter.studyIds) {
    const studyIds = [...filter.studyIds];
    base = base.where('participant_id', 'in', (eb) => eb.selectFrom('participants').select('id').where('study_id', 'in', studyIds));
  }
  const [batches, count] = await Promise.all([
    base
      .selectAll()
      .orderBy('updated_at', 'desc')
      .orderBy('id', 'desc')
      .limit(filter.limit ?? 100)
      .offset(filter.offset ?? 0)
      .execute(),
    base.select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow(),
  ]);
  return { batches, total: Number(count.n) };
}

/** What became of a request to retry a parked batch. */
export type RequeueOutcome =
  | { kind: 'requeued'; batch: DeliveryBatch; records: number }
  | { kind: 'not_found' }
  | { kind: 'not_parked'; status: BatchStatus };

/**
 * Puts a parked batch's records back in the outbox (`pending`, out of the batch) so the
 * lamp-writer sends them again, and closes the batch as `abandoned` (its reason is kept). The
 * batch row is locked first, so two retries of the same batch cannot both succeed.
 */
export async function requeueParkedBatch(db: Kysely<Database>, batchId: string): Promise<RequeueOutcome> {
  return db.transaction().execute(async (trx) => {
    const batch = await trx.selectFrom('delivery_batches').selectAll().where('id', '=', batchId).forUpdate().executeTakeFirst();
    if (!batch) return { kind: 'not_found' };
    if (batch.status !== 'parked') return { kind: 'not_parked', status: batch.status };
    const records = await requeueParkedRecords(trx, batchId);
    const updated = await trx
      .updateTable('delivery_batches')
      .set({ status: 'abandoned', updated_at: sql<Date>`now()` })
      .where('id', '=', batchId)
      .returningAll()
      .executeTakeFirstOrThrow();
    return { kind: 'requeued', batch: updated, records };
  });
}

/** The participant a delivery batch belongs to, if the batch exists. */
export async function findBatchParticipant(db: Kysely<Database>, batchId: string): Promise<string | undefined> {
  const row = await db.selectFrom('delivery_batches').select('participant_id').where('id', '=', batchId).executeTakeFirst();
  return row?.participant_id;
}
