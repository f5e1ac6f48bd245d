// Rows as the fetcher and the lamp-writer leave them, for the tests of what reads them (the
// gateway's admin API and dashboard). Participants, connections and cursors are written through
// `@fitlamp/db`, the way the services write them. The day ledger, the records outbox and delivery
// batches are written here directly: no production path stores an arbitrary status and count, and
// their storage is being redesigned, so every test that seeds them does it through this one file.
import type { Kysely } from 'kysely';
import {
  endConnection,
  markNeedsReconsent,
  markReconnectNeeded,
  markSynced,
  recordDeviceSync,
  saveConnectedTokens,
  scheduleStreams,
  upsertParticipant,
  type BatchStatus,
  type ConnectionStatus,
  type Database,
  type DayStatus,
  type ProviderName,
} from '@fitlamp/db';

/** When every seeded connection was made: the pages show it, so it must not move. */
export const SEEDED_CONNECTED_AT = new Date('2026-03-01T09:30:00Z');

export interface SeedParticipantOptions {
  provider?: ProviderName;
  /** A connection in this status (none if absent), provider user id `FB<participant id>`. */
  status?: ConnectionStatus;
  /** Why the connection is in `status` (not for `connected`). */
  statusReason?: string;
  /** Streams scheduled for the participant. */
  streams?: string[];
  lastSyncAt?: Date;
  /** The device's last sync as the fetcher records it, with its battery percent. */
  device?: { syncedAt: Date; battery: number | null };
  /** The participant's mindLAMP study (S1 if absent). */
  studyId?: string;
}

/**
 * A participant of study S1 (or `studyId`), with a connection when `status` is given. The connection goes
 * through the statuses as the services move it (connected, then lost or ended); its tokens are
 * placeholders that no cipher decrypts.
 */
export async function seedParticipant(db: Kysely<Database>, participantId: string, options: SeedParticipantOptions = {}): Promise<void> {
  await upsertParticipant(db, participantId, options.studyId ?? 'S1');
  if (options.status) {
    const provider = options.provider ?? 'fitbit';
    const reason = options.statusReason ?? null;
    const connection = await saveConnectedTokens(db, {
      participantId,
      provider,
      providerUserId: `FB${participantId}`,
      accessTokenEnc: 'seeded-not-a-token',
      refreshTokenEnc: null,
      keyId: 'seed',
      accessTokenExpiresAt: new Date(SEEDED_CONNECTED_AT.getTime() + 8 * 3_600_000),
      refreshTokenExpiresAt: null,
      scopes: [],
    });
    if (options.status === 'reconnect_needed') await markReconnectNeeded(db, connection.id, reason ?? 'seeded');
    if (options.status === 'needs_reconsent') await markNeedsReconsent(db, connection.id, reason ?? 'seeded');
    if (options.status === 'disconnected' || options.status === 'revoked') await endConnection(db, participantId, provider, options.status, reason);
    if (options.lastSyncAt) await markSynced(db, connection.id, options.lastSyncAt);
    if (options.device) await recordDeviceSync(db, connection.id, options.device.syncedAt, options.device.battery);
    // No function backdates a connection; the pages show when it was made.
    await db.updateTable('provider_connections').set({ connected_at: SEEDED_CONNECTED_AT }).where('id', '=', connection.id).execute();
  }
  if (options.streams?.length) await scheduleStreams(db, participantId, options.streams);
}

export interface SeedDay {
  stream: string;
  day: string;
  status: DayStatus;
  reason?: string | null;
  fetched?: number;
  delivered?: number;
  /** When the day was fetched; 23:00 UTC that day if absent, never if `null`. */
  fetchedAt?: Date | null;
  provider?: ProviderName;
}

/** Day ledger rows, as the fetcher and the lamp-writer would have left them. */
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

/**
 * Heart-rate records for `minutes` minutes of `day` from 00:00 UTC, one a minute, delivered: the
 * wear time the day totals count.
 */
export async function seedWear(db: Kysely<Database>, participantId: string, day: string, minutes: number): Promise<void> {
  const start = Date.parse(`${day}T00:00:00Z`);
  for (let from = 0; from < minutes; from += CHUNK_ROWS) {
    const count = Math.min(CHUNK_ROWS, minutes - from);
    await db
      .insertInto('records')
      .values(
        Array.from({ length: count }, (_, i) => {
          const timestamp = start + (from + i) * 60_000;
          return {
            record_key: `${participantId}/lamp.heart_rate/${timestamp}`,
            participant_id: participantId,
            stream: 'heart_rate',
            day,
            sensor: 'lamp.heart_rate',
            timestamp,
            data: JSON.stringify({ value: 70, unit: 'bpm', source: 'com.fitbit.webapi' }),
            data_hash: `hr${timestamp}`,
            status: 'delivered' as const,
          };
        }),
      )
      .execute();
  }
}
const CHUNK_ROWS = 2_000;

/** The outbox state of records by id: status and batch. */
export async function recordsOf(db: Kysely<Database>, ids: readonly string[]) {
  return db.selectFrom('records').select(['id', 'status', 'batch_id']).where('id', 'in', [...ids]).orderBy('id').execute();
}

export async function batchStatus(db: Kysely<Database>, batchId: string): Promise<BatchStatus | undefined> {
  const row = await db.selectFrom('delivery_batches').select('status').where('id', '=', batchId).executeTakeFirst();
  return row?.status;
}
