import { sql, type Kysely } from 'kysely';
import type { BatchStatus, Database, DayStatus, DeliveryBatch, ProviderName } from './schema.ts';

/** One participant × stream × day as the ledger has it, for the coordinator. */
export interface LedgerDay {
  stream: string;
  /** The participant's local calendar day, YYYY-MM-DD. */
  day: string;
  status: DayStatus;
  reason: string | null;
  provider: ProviderName | null;
  recordsFetched: number;
  recordsDelivered: number;
  /** Records of the day sitting in a parked delivery batch (mindLAMP refused them). */
  recordsParked: number;
  fetchedAt: Date | null;
}

/**
 * The ledger rows of a participant for the days `from`..`to` (inclusive), optionally only some
 * streams, ordered by day then stream, with each day's parked record count.
 */
export async function findLedgerDays(
  db: Kysely<Database>,
  participantId: string,
  range: { from: string; to: string; streams?: readonly string[] },
): Promise<LedgerDay[]> {
  const only = range.streams && range.streams.length > 0 ? [...range.streams] : undefined;
  const [rows, parked] = await Promise.all([
    db
      .selectFrom('day_ledger')
      .select(['stream', 'day', 'status', 'reason', 'provider', 'records_fetched', 'records_delivered', 'fetched_at'])
      .where('participant_id', '=', participantId)
      .where('day', '>=', range.from)
      .where('day', '<=', range.to)
      .$if(only !== undefined, (qb) => qb.where('stream', 'in', only!))
      .orderBy('day')
      .orderBy('stream')
      .execute(),
    db
      .selectFrom('records')
      .select((eb) => ['stream', 'day', eb.fn.countAll<string>().as('n')])
      .where('participant_id', '=', participantId)
      .where('status', '=', 'parked')
      .where('day', '>=', range.from)
      .where('day', '<=', range.to)
      .$if(only !== undefined, (qb) => qb.where('stream', 'in', only!))
      .groupBy(['stream', 'day'])
      .execute(),
  ]);
  const parkedBy = new Map(parked.map((p) => [`${p.stream}/${p.day}`, Number(p.n)]));
  return rows.map((r) => ({
    stream: r.stream,
    day: r.day,
    status: r.status,
    reason: r.reason,
    provider: r.provider,
    recordsFetched: r.records_fetched,
    recordsDelivered: r.records_delivered,
    recordsParked: parkedBy.get(`${r.stream}/${r.day}`) ?? 0,
    fetchedAt: r.fetched_at,
  }));
}

/** The streams the scheduler syncs for the participant (its sync cursors), sorted by name. */
export async function findScheduledStreams(db: Kysely<Database>, participantId: string): Promise<string[]> {
  const rows = await db.selectFrom('sync_cursors').select('stream').where('participant_id', '=', participantId).orderBy('stream').execute();
  return rows.map((r) => r.stream);
}

/** Delivery batches, newest first, with how many match in all (for paging). */
export async function listDeliveryBatches(
  db: Kysely<Database>,
  filter: { status?: BatchStatus; participantId?: string; limit?: number; offset?: number } = {},
): Promise<{ batches: DeliveryBatch[]; total: number }> {
  let base = db.selectFrom('delivery_batches');
  if (filter.status) base = base.where('status', '=', filter.status);
  if (filter.participantId) base = base.where('participant_id', '=', filter.participantId);
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
    const records = await trx
      .updateTable('records')
      .set({ status: 'pending', batch_id: null, updated_at: sql<Date>`now()` })
      .where('batch_id', '=', batchId)
      .where('status', '=', 'parked')
      .returning('id')
      .execute();
    const updated = await trx
      .updateTable('delivery_batches')
      .set({ status: 'abandoned', updated_at: sql<Date>`now()` })
      .where('id', '=', batchId)
      .returningAll()
      .executeTakeFirstOrThrow();
    return { kind: 'requeued', batch: updated, records: records.length };
  });
}
