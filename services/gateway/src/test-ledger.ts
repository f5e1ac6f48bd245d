// Test support (imported only by this service's tests): participants, ledger rows and delivery
// batches written straight into Postgres, as the fetcher and the lamp-writer would leave them.
import type { Kysely } from 'kysely';
import { upsertParticipant, type BatchStatus, type ConnectionStatus, type Database, type DayStatus, type ProviderName } from '@fitlamp/db';

export async function seedParticipant(
  db: Kysely<Database>,
  participantId: string,
  options: { provider?: ProviderName; status?: ConnectionStatus; statusReason?: string; streams?: string[]; lastSyncAt?: Date } = {},
): Promise<void> {
  await upsertParticipant(db, participantId, 'S1');
  if (options.status) {
    await db
      .insertInto('provider_connections')
      .values({
        participant_id: participantId,
        provider: options.provider ?? 'fitbit',
        status: options.status,
        status_reason: options.statusReason ?? null,
        provider_user_id: `FB${participantId}`,
        connected_at: new Date('2026-03-01T09:30:00Z'),
        last_sync_at: options.lastSyncAt ?? null,
      })
      .execute();
  }
  if (options.streams?.length) {
    await db
      .insertInto('sync_cursors')
      .values(options.streams.map((stream) => ({ participant_id: participantId, stream })))
      .execute();
  }
}

export interface SeedDay {
  stream: string;
  day: string;
  status: DayStatus;
  reason?: string | null;
  fetched?: number;
  delivered?: number;
  fetchedAt?: Date | null;
  provider?: ProviderName;
}

export async function seedLedger(db: Kysely<Database>, participantId: string, days: readonly SeedDay[]): Promise<void> {
  await db
    .insertInto('day_ledger')
    .values(
      days.map((d) => ({
        participant_id: participantId,
        stream: d.stream,
        day: d.day,
        status: d.status,
        reason: d.reason ?? null,
        provider: d.provider ?? 'fitbit',
        records_fetched: d.fetched ?? 0,
        records_delivered: d.delivered ?? 0,
        fetched_at: d.fetchedAt === undefined ? new Date(`${d.day}T23:00:00Z`) : d.fetchedAt,
      })),
    )
    .execute();
}

let keySeq = 0;

/**
 * A delivery batch of `count` step records on `day`, in `status` (its records `parked` when the
 * batch is, else `delivered`). Answers the batch id and its record ids.
 */
export async function seedBatch(
  db: Kysely<Database>,
  participantId: string,
  options: { status?: BatchStatus; count?: number; day?: string; reason?: string } = {},
): Promise<{ batchId: string; recordIds: string[] }> {
  const status = options.status ?? 'parked';
  const count = options.count ?? 3;
  const day = options.day ?? '2026-03-02';
  const start = Date.parse(`${day}T08:00:00Z`);
  const batch = await db
    .insertInto('delivery_batches')
    .values({
      participant_id: participantId,
      status,
      event_count: count,
      bytes: 100 * count,
      from_ts: start,
      to_ts: start + (count - 1) * 60_000,
      attempts: 1,
      last_error: options.reason ?? (status === 'parked' ? '403 forbidden: the researcher key may not write to this participant' : null),
      completed_at: new Date(),
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  const records = await db
    .insertInto('records')
    .values(
      Array.from({ length: count }, (_, i) => ({
        record_key: `${participantId}/lamp.steps/${start + i * 60_000}/${++keySeq}`,
        participant_id: participantId,
        stream: 'steps',
        day,
        sensor: 'lamp.steps',
        timestamp: start + i * 60_000,
        data: JSON.stringify({ value: 10 + i, unit: 'count', type: 'step_count', source: 'com.fitbit.webapi' }),
        data_hash: `h${keySeq}`,
        status: status === 'parked' ? ('parked' as const) : ('delivered' as const),
        batch_id: batch.id,
      })),
    )
    .returning('id')
    .execute();
  return { batchId: batch.id, recordIds: records.map((r) => r.id) };
}

export async function recordsOf(db: Kysely<Database>, ids: readonly string[]) {
  return db.selectFrom('records').select(['id', 'status', 'batch_id']).where('id', 'in', [...ids]).orderBy('id').execute();
}

export async function batchStatus(db: Kysely<Database>, batchId: string): Promise<BatchStatus | undefined> {
  const row = await db.selectFrom('delivery_batches').select('status').where('id', '=', batchId).executeTakeFirst();
  return row?.status;
}
