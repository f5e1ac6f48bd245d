import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database, DeliveryBatch } from '@fitlamp/db';
import type { SensorEvent } from '@fitlamp/lamp';

export interface ClaimedRecord {
  id: string;
  stream: string;
  day: string;
  sensor: string;
  timestamp: number;
  data: Record<string, unknown>;
}

export interface ClaimedBatch {
  batch: DeliveryBatch;
  records: ClaimedRecord[];
}

/** What is POSTed for a record: mindLAMP's SensorEvent, nothing more (reference §1.2). */
export function toSensorEvent(record: ClaimedRecord): SensorEvent {
  return { timestamp: record.timestamp, sensor: record.sensor, data: record.data };
}

/**
 * Claims the participant's oldest pending records, in time order, up to `maxEvents` and
 * `maxBytes` of JSON, as one batch in state `sending`. `SKIP LOCKED` keeps two writers from
 * claiming the same records should BullMQ ever run a participant's job twice.
 */
export async function claimBatch(
  db: Kysely<Database>,
  participantId: string,
  maxEvents: number,
  maxBytes: number,
): Promise<ClaimedBatch | null> {
  return db.transaction().execute(async (trx) => {
    const rows = await trx
      .selectFrom('records')
      .select(['id', 'stream', 'day', 'sensor', 'timestamp', 'data'])
      .where('participant_id', '=', participantId)
      .where('status', '=', 'pending')
      .orderBy('timestamp')
      .orderBy('id')
      .limit(maxEvents)
      .forUpdate()
      .skipLocked()
      .execute();
    if (rows.length === 0) return null;
    const records: ClaimedRecord[] = [];
    let bytes = 2;
    for (const row of rows) {
      const record = { ...row, timestamp: Number(row.timestamp) };
      const size = JSON.stringify(toSensorEvent(record)).length + 1;
      if (records.length > 0 && bytes + size > maxBytes) break;
      records.push(record);
      bytes += size;
    }
    const batch = await trx
      .insertInto('delivery_batches')
      .values({
        participant_id: participantId,
        status: 'sending',
        event_count: records.length,
        bytes,
        from_ts: records[0]!.timestamp,
        to_ts: records[records.length - 1]!.timestamp,
        attempts: 1,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    await trx
      .updateTable('records')
      .set({ status: 'sending', batch_id: batch.id, updated_at: new Date() })
      .where('id', 'in', records.map((r) => r.id))
      .execute();
    return { batch, records };
  });
}

async function addDelivered(trx: Transaction<Database>, participantId: string, recordIds: readonly string[]) {
  if (recordIds.length === 0) return;
  // The ledger counts what reached mindLAMP per day, for the coordinator's dashboard.
  await sql`
    update day_ledger l set records_delivered = l.records_delivered + c.n, updated_at = now()
    from (
      select stream, day, count(*)::int as n from records
      where id = any(${sql.val(recordIds)}::bigint[]) group by stream, day
    ) c
    where l.participant_id = ${participantId} and l.stream = c.stream and l.day = c.day`.execute(trx);
}

/** mindLAMP answered 2xx: the batch's records leave the outbox. */
export async function markBatchDelivered(db: Kysely<Database>, batch: DeliveryBatch): Promise<void> {
  await db.transaction().execute(async (trx) => {
    const ids = await trx
      .updateTable('records')
      .set({ status: 'delivered', delivered_at: new Date(), delivered_hash: sql`data_hash`, updated_at: new Date() })
      .where('batch_id', '=', batch.id)
      .where('status', '=', 'sending')
      .returning('id')
      .execute();
    await addDelivered(trx, batch.participant_id, ids.map((r) => r.id));
    await trx
      .updateTable('delivery_batches')
      .set({ status: 'delivered', completed_at: new Date(), updated_at: new Date() })
      .where('id', '=', batch.id)
      .execute();
  });
}

/** Settles a batch after reading back what mindLAMP holds: found records are delivered, the rest go back to pending. */
export async function settleReconciledBatch(
  db: Kysely<Database>,
  batch: DeliveryBatch,
  foundIds: readonly string[],
  note: string,
): Promise<void> {
  await db.transaction().execute(async (trx) => {
    if (foundIds.length > 0) {
      await trx
        .updateTable('records')
        .set({ status: 'delivered', delivered_at: new Date(), delivered_hash: sql`data_hash`, updated_at: new Date() })
        .where('batch_id', '=', batch.id)
        .where('id', 'in', foundIds)
        .execute();
      await addDelivered(trx, batch.participant_id, foundIds);
    }
    await trx
      .updateTable('records')
      .set({ status: 'pending', batch_id: null, updated_at: new Date() })
      .where('batch_id', '=', batch.id)
      .where('status', '=', 'sending')
      .execute();
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

/** Known not sent (connection refused): records return to pending untouched. */
export async function abandonBatch(db: Kysely<Database>, batch: DeliveryBatch, reason: string): Promise<void> {
  await settleReconciledBatch(db, batch, [], reason);
}

/** mindLAMP refused the batch (4xx): park it with the reason, visible to admins; the rest keeps flowing. */
export async function parkBatch(db: Kysely<Database>, batch: DeliveryBatch, reason: string): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx
      .updateTable('records')
      .set({ status: 'parked', updated_at: new Date() })
      .where('batch_id', '=', batch.id)
      .execute();
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
    .set({ status: 'unknown', last_error: reason, updated_at: new Date() })
    .where('id', '=', batch.id)
    .execute();
}

/** Batches whose outcome is not known: left `sending` by a crash, or `unknown` after a timeout. */
export async function findOpenBatches(db: Kysely<Database>, participantId: string): Promise<DeliveryBatch[]> {
  return db
    .selectFrom('delivery_batches')
    .selectAll()
    .where('participant_id', '=', participantId)
    .where('status', 'in', ['sending', 'unknown'])
    .orderBy('id')
    .execute();
}

export async function loadBatchRecords(db: Kysely<Database>, batchId: string): Promise<ClaimedRecord[]> {
  const rows = await db
    .selectFrom('records')
    .select(['id', 'stream', 'day', 'sensor', 'timestamp', 'data'])
    .where('batch_id', '=', batchId)
    .where('status', '=', 'sending')
    .execute();
  return rows.map((r) => ({ ...r, timestamp: Number(r.timestamp) }));
}
