// Rows as the fetcher and the lamp-writer leave them, for the tests of what reads them (the
// gateway's admin API and dashboard). Participants, connections and cursors are written through
// `@fitlamp/db`, the way the services write them. The day ledger, the event-chunk outbox and delivery
// batches are written here directly: no production path stores an arbitrary status and count, and
// their storage is being redesigned, so every test that seeds them does it through this one file.
import { sql, type Kysely } from 'kysely';
import {
  endConnection,
  insertChunk,
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
  type RecordStatus,
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
  /** The stream's total for the day (`day_total`: wear minutes, steps, sleep minutes), for streams that have one. */
  total?: number | null;
  /** Revised after delivery: events changed, events corrected, the corrections' net difference. */
  revised?: { events: number; corrected: number; delta: number };
}

/** Day ledger rows, as the fetcher and the lamp-writer would have left them. */
export async function seedLedger(db: Kysely<Database>, participantId: string, days: readonly SeedDay[]): Promise<void> {
  await seedLedgerRows(db, days.map((d) => ({ ...d, participantId })));
}

/**
 * Day ledger rows of any number of participants in one statement (each column sent as one array and
 * unnested by Postgres), for seeds the size of a study.
 */
export async function seedLedgerRows(db: Kysely<Database>, rows: ReadonlyArray<SeedDay & { participantId: string }>): Promise<void> {
  if (rows.length === 0) return;
  const column = <T>(pick: (d: SeedDay & { participantId: string }) => T) => rows.map(pick);
  await sql`
    insert into day_ledger (participant_id, stream, day, status, reason, provider, records_fetched, records_delivered, fetched_at, day_total,
      revised_events, corrected_events, correction_delta)
    select * from unnest(
      ${column((d) => d.participantId)}::text[], ${column((d) => d.stream)}::text[], ${column((d) => d.day)}::date[],
      ${column((d) => d.status)}::text[], ${column((d) => d.reason ?? null)}::text[], ${column((d) => d.provider ?? 'fitbit')}::text[],
      ${column((d) => d.fetched ?? 0)}::int[], ${column((d) => d.delivered ?? 0)}::int[],
      ${column((d) => (d.fetchedAt === undefined ? new Date(`${d.day}T23:00:00Z`) : d.fetchedAt)?.toISOString() ?? null)}::timestamptz[],
      ${column((d) => d.total ?? null)}::int[], ${column((d) => d.revised?.events ?? 0)}::int[],
      ${column((d) => d.revised?.corrected ?? 0)}::int[], ${column((d) => d.revised?.delta ?? 0)}::int[])`.execute(db);
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
  const events = Array.from({ length: count }, (_, i) => ({
    key: `${participantId}/lamp.steps/${start + i * 60_000}/${++keySeq}`,
    timestamp: start + i * 60_000,
    data: { value: 10 + i, unit: 'count', type: 'step_count', source: 'com.fitbit.webapi' },
  }));
  await seedChunk(db, {
    participantId,
    stream: 'steps',
    day,
    status: status === 'parked' ? 'parked' : 'delivered',
    batchId: batch.id,
    events,
  });
  return { batchId: batch.id, recordIds: events.map((e) => e.key) };
}

/** An event to seed into a chunk; `sensor` defaults to `lamp.steps`, `hash` to one of the data. */
export interface SeedEvent {
  key: string;
  timestamp: number;
  data: Record<string, unknown>;
  sensor?: string;
  duration?: number | null;
  hash?: string;
}

/**
 * One outbox chunk of a participant's day, as the fetcher (pending) or the lamp-writer (sending,
 * delivered, parked, with `batchId`) leaves it. Events are stored in time order.
 */
export async function seedChunk(
  db: Kysely<Database>,
  chunk: { participantId: string; stream: string; day: string; status: RecordStatus; batchId?: string | null; events: readonly SeedEvent[] },
): Promise<void> {
  await insertChunk(db, {
    ...chunk,
    events: chunk.events.map((e) => ({ k: e.key, t: e.timestamp, s: e.sensor ?? 'lamp.steps', d: e.duration ?? null, v: e.data, h: e.hash ?? JSON.stringify(e.data) })),
    deliveredAt: chunk.status === 'delivered' ? new Date() : null,
  });
}

/** Every event in the outbox, optionally of one participant, with its chunk's status and batch, by key. */
export async function outboxEvents(db: Kysely<Database>, participantId?: string) {
  const chunks = await db
    .selectFrom('event_chunks')
    .select(['participant_id', 'stream', 'day', 'status', 'batch_id', 'events'])
    .$if(participantId !== undefined, (qb) => qb.where('participant_id', '=', participantId!))
    .execute();
  return chunks
    .flatMap((c) =>
      c.events.map((e) => ({
        key: e.k,
        participantId: c.participant_id,
        stream: c.stream,
        day: c.day,
        sensor: e.s,
        timestamp: Number(e.t),
        duration: e.d,
        data: e.v,
        hash: e.h,
        status: c.status,
        batchId: c.batch_id,
      })),
    )
    .sort((a, b) => a.timestamp - b.timestamp || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** A participant-day's totals as the fetcher leaves them in `day_summaries`; an absent total is left as it is. */
export interface SeedDayTotals {
  day: string;
  wearMinutes?: number;
  steps?: number;
  sleepMinutes?: number;
}

/** Participant-days' totals (what the overview, the alerts and the exports read), in one statement. */
export async function seedDayTotals(db: Kysely<Database>, participantId: string, days: readonly SeedDayTotals[]): Promise<void> {
  await seedDayTotalRows(db, days.map((d) => ({ ...d, participantId })));
}

/** Day totals of any number of participants in one statement (columns as unnested arrays). */
export async function seedDayTotalRows(db: Kysely<Database>, rows: ReadonlyArray<SeedDayTotals & { participantId: string }>): Promise<void> {
  if (rows.length === 0) return;
  await sql`
    insert into day_summaries (participant_id, day, wear_minutes, steps, sleep_minutes)
    select * from unnest(${rows.map((d) => d.participantId)}::text[], ${rows.map((d) => d.day)}::date[],
      ${rows.map((d) => d.wearMinutes ?? null)}::int[], ${rows.map((d) => d.steps ?? null)}::int[], ${rows.map((d) => d.sleepMinutes ?? null)}::int[])
    on conflict (participant_id, day) do update set
      wear_minutes = coalesce(excluded.wear_minutes, day_summaries.wear_minutes),
      steps = coalesce(excluded.steps, day_summaries.steps),
      sleep_minutes = coalesce(excluded.sleep_minutes, day_summaries.sleep_minutes)`.execute(db);
}

/**
 * A participant-day's wear time, as the fetcher leaves it after storing the day: `minutes`
 * minutes with heart rate in its summary (what the overview and the day totals read).
 */
export async function seedWear(db: Kysely<Database>, participantId: string, day: string, minutes: number): Promise<void> {
  await seedDayTotals(db, participantId, [{ day, wearMinutes: minutes }]);
}

/** The outbox state of events by key, in the order asked: status and batch. */
export async function recordsOf(db: Kysely<Database>, ids: readonly string[]) {
  const byKey = new Map((await outboxEvents(db)).map((e) => [e.key, { id: e.key, status: e.status, batch_id: e.batchId }]));
  return ids.map((id) => byKey.get(id)).filter((r) => r !== undefined);
}

export async function batchStatus(db: Kysely<Database>, batchId: string): Promise<BatchStatus | undefined> {
  const row = await db.selectFrom('delivery_batches').select('status').where('id', '=', batchId).executeTakeFirst();
  return row?.status;
}
