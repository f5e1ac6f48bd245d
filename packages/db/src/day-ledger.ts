import { sql, type Kysely, type Transaction } from 'kysely';
import { countParkedRecordsByDay } from './outbox.ts';
import type { Database, DayStatus, ProviderName } from './schema.ts';

/**
 * `day_ledger`: one row per participant × stream × local day, saying what fitlamp knows of that
 * day (the coordinator's grid, and what the fetcher plans from). Every write to the table is in
 * this file.
 *
 * `status`, and who sets it:
 * - `settled`: fetched after the device synced past the end of the day, and it has data.
 * - `empty`: settled, and the provider had nothing (not worn, or not recorded).
 * - `partial`: fetched while the device had synced only part of the day; more will come.
 *   These three are decided by {@link dayStatusFor} and written with the day's records, in one
 *   transaction, by {@link recordFetchedDay} (fetcher, through `storeFetchedDays`).
 * - `not_synced`: nothing to fetch yet: the device has not synced the day, or the participant's
 *   budget is spent (the reason says which, and when it resets). Set by {@link markDaysNotSynced}
 *   (fetcher), only on days without a status yet.
 * - `failed`: the provider failed for the day (5xx, a bad answer, a scope not granted); retried at
 *   the next poll. Set by {@link markDaysFailed} (fetcher).
 *
 * The other columns:
 * - `reason`: why, for the coordinator; {@link invalidateLedgerDays} notes a provider notification.
 * - `synced_through`: the device's last sync time when the day was fetched; the fetcher fetches a
 *   day again only after a newer sync. Cleared by {@link invalidateLedgerDays} (gateway, when a
 *   webhook names the day as changed), so the next sync fetches it whatever the device says.
 * - `records_fetched`, `content_hash`, `fetch_count`, `fetched_at`, `settled_at`: what the last
 *   fetch stored, how often the day was fetched, when, and when it first settled.
 * - `records_delivered`: how many of the day's records reached mindLAMP, added to by
 *   {@link addDeliveredCounts} (lamp-writer, with the batch that delivered them).
 * - `day_total`: the stream's total for the day (wear minutes, steps, sleep minutes; day-totals.ts),
 *   and `revised_events`: how many of the day's events that left the outbox differ, at the last
 *   fetch that diffed the day, from the value mindLAMP first received (an additive event gone
 *   from the day counts as revised to 0).
 * - `corrected_events`, `correction_delta` (additive streams: steps, active zone minutes): how
 *   many of the day's events have a correction event (outbox.ts), and the net difference the
 *   corrections carry (steps; active zone minutes), queued or delivered, as of the last diff.
 *   The ledger, like `day_summaries`, outlives the day's events (retention, outbox.ts), so the
 *   coordinator's grid reads the same for days whose events have left Postgres.
 * - `events_compacted_at`: when retention deleted the day's delivered events
 *   ({@link markEventsCompacted}); a later fetch of the day updates the ledger and totals but
 *   stores no events, since nothing is left to tell new events from delivered ones.
 */

/** Rows per INSERT: 7 parameters each stays far below Postgres' 65,535-parameter limit. */
const CHUNK = 2_000;

/**
 * The status a fetched day earns: complete (`settled`, or `empty` without records) once the
 * device's last sync is past the day's end (`dayEnd`, the instant the participant's local day
 * ends, epoch ms), else `partial`.
 */
export function dayStatusFor(recordCount: number, lastDeviceSync: number, dayEnd: number): Extract<DayStatus, 'settled' | 'empty' | 'partial'> {
  if (lastDeviceSync >= dayEnd) return recordCount > 0 ? 'settled' : 'empty';
  return 'partial';
}

function reasonFor(status: DayStatus, lastDeviceSync: number): string | null {
  if (status === 'empty') return 'no data: the device was not worn, or recorded nothing this day';
  if (status === 'partial') return `device last synced ${new Date(lastDeviceSync).toISOString()}: more may come`;
  return null;
}

/** A day just fetched and stored, for its ledger row. */
export interface FetchedDayEntry {
  participantId: string;
  provider: ProviderName;
  stream: string;
  day: string;
  /** The instant the participant's local day ends (epoch ms). */
  dayEnd: number;
  recordCount: number;
  contentHash: string;
  /** The device's last sync time (epoch ms) the fetch saw. */
  lastDeviceSync: number;
  /** The stream's total for the day, for streams that have one (day-totals.ts). */
  dayTotal: number | null;
  /** Events of the day mindLAMP received whose value has changed since. */
  revisedEvents: number;
  /** Additive streams, when the day was diffed: events with a correction, and the corrections' net difference. */
  correctedEvents?: number;
  correctionDelta?: number;
}

/**
 * Writes a fetched day's ledger row: its status ({@link dayStatusFor}), counts and fetch
 * watermark. Runs in the transaction that stores the day's records. Answers the status.
 */
export async function recordFetchedDay(trx: Transaction<Database>, entry: FetchedDayEntry): Promise<DayStatus> {
  const status = dayStatusFor(entry.recordCount, entry.lastDeviceSync, entry.dayEnd);
  const reason = reasonFor(status, entry.lastDeviceSync);
  const now = new Date();
  const syncedThrough = new Date(entry.lastDeviceSync);
  const complete = status === 'settled' || status === 'empty';
  await trx
    .insertInto('day_ledger')
    .values({
      participant_id: entry.participantId,
      stream: entry.stream,
      day: entry.day,
      status,
      reason,
      provider: entry.provider,
      records_fetched: entry.recordCount,
      content_hash: entry.contentHash,
      day_total: entry.dayTotal,
      revised_events: entry.revisedEvents,
      corrected_events: entry.correctedEvents ?? 0,
      correction_delta: entry.correctionDelta ?? 0,
      fetch_count: 1,
      fetched_at: now,
      synced_through: syncedThrough,
      settled_at: complete ? now : null,
      updated_at: now,
    })
    .onConflict((oc) =>
      oc.columns(['participant_id', 'stream', 'day']).doUpdateSet({
        status,
        reason,
        provider: entry.provider,
        records_fetched: entry.recordCount,
        content_hash: entry.contentHash,
        day_total: entry.dayTotal,
        revised_events: entry.revisedEvents,
        ...(entry.correctedEvents === undefined ? {} : { corrected_events: entry.correctedEvents }),
        ...(entry.correctionDelta === undefined ? {} : { correction_delta: entry.correctionDelta }),
        fetch_count: sql`day_ledger.fetch_count + 1`,
        fetched_at: now,
        synced_through: syncedThrough,
        settled_at: sql`coalesce(day_ledger.settled_at, ${complete ? now : null}::timestamptz)`,
        updated_at: now,
      }),
    )
    .execute();
  return status;
}

/** Days that could not be fetched, and why. */
export interface UnfetchedDays {
  participantId: string;
  provider: ProviderName;
  days: ReadonlyArray<{ stream: string; day: string }>;
  reason: string;
}

async function markDays(db: Kysely<Database>, input: UnfetchedDays, status: 'failed' | 'not_synced', onlyNew: boolean): Promise<void> {
  if (input.days.length === 0) return;
  const now = new Date();
  const rows = input.days.map((d) => ({
    participant_id: input.participantId,
    stream: d.stream,
    day: d.day,
    status,
    reason: input.reason,
    provider: input.provider,
    updated_at: now,
  }));
  for (let i = 0; i < rows.length; i += CHUNK) {
    await db
      .insertInto('day_ledger')
      .values(rows.slice(i, i + CHUNK))
      .onConflict((oc) =>
        onlyNew
          ? oc.columns(['participant_id', 'stream', 'day']).doNothing()
          : oc.columns(['participant_id', 'stream', 'day']).doUpdateSet({ status, reason: input.reason, updated_at: now }),
      )
      .execute();
  }
}

/**
 * Marks days `not_synced` (the device has not synced them, or the budget is spent), with the
 * reason. Only days without a status get one: what was stored for the others stays as it is.
 */
export async function markDaysNotSynced(db: Kysely<Database>, input: UnfetchedDays): Promise<void> {
  await markDays(db, input, 'not_synced', true);
}

/** Marks days `failed` with the reason, without touching what was stored for them. */
export async function markDaysFailed(db: Kysely<Database>, input: UnfetchedDays): Promise<void> {
  await markDays(db, input, 'failed', false);
}

/**
 * A provider notified a change of these days: their fetch watermark is cleared, durably, so the
 * participant's next sync fetches them whatever the device's last sync says. Only days already
 * fetched (`settled`, `empty`, `partial`) change; the others are fetched anyway.
 */
export async function invalidateLedgerDays(
  db: Kysely<Database>,
  participantId: string,
  change: { streams: readonly string[]; days: readonly string[]; reason: string },
): Promise<void> {
  if (change.streams.length === 0 || change.days.length === 0) return;
  await db
    .updateTable('day_ledger')
    .set({ synced_through: null, reason: change.reason, updated_at: new Date() })
    .where('participant_id', '=', participantId)
    .where('stream', 'in', [...change.streams])
    .where('day', 'in', [...change.days])
    .where('status', 'in', ['settled', 'empty', 'partial'])
    .execute();
}

/**
 * Adds records that reached mindLAMP to their days' `records_delivered`, in the transaction that
 * marks them delivered.
 */
export async function addDeliveredCounts(
  trx: Transaction<Database>,
  participantId: string,
  counts: ReadonlyArray<{ stream: string; day: string; records: number }>,
): Promise<void> {
  if (counts.length === 0) return;
  await sql`
    update day_ledger l set records_delivered = l.records_delivered + c.n, updated_at = now()
    from unnest(${sql.val(counts.map((c) => c.stream))}::text[], ${sql.val(counts.map((c) => c.day))}::date[],
                ${sql.val(counts.map((c) => c.records))}::int[]) as c(stream, day, n)
    where l.participant_id = ${participantId} and l.stream = c.stream and l.day = c.day`.execute(trx);
}

/** What the fetcher's planner needs of one day. */
export interface LedgerFetchState {
  status: DayStatus;
  /** The device's last sync (epoch ms) when the day was fetched; null if never, or a notification cleared it. */
  syncedThrough: number | null;
  /** Records the last fetch stored. */
  records: number;
}

/** `stream -> day -> state` for the participant's days from `fromDay` on. */
export async function findLedgerSince(
  db: Kysely<Database>,
  participantId: string,
  fromDay: string,
): Promise<Map<string, Map<string, LedgerFetchState>>> {
  const rows = await db
    .selectFrom('day_ledger')
    .select(['stream', 'day', 'status', 'synced_through', 'records_fetched'])
    .where('participant_id', '=', participantId)
    .where('day', '>=', fromDay)
    .execute();
  const out = new Map<string, Map<string, LedgerFetchState>>();
  for (const r of rows) {
    let m = out.get(r.stream);
    if (!m) out.set(r.stream, (m = new Map()));
    m.set(r.day, { status: r.status, syncedThrough: r.synced_through?.getTime() ?? null, records: r.records_fetched });
  }
  return out;
}

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
  /** Events whose value changed after they left for mindLAMP (see `revised_events`). */
  revisedEvents: number;
  /** Additive streams: events with a correction event, and the corrections' net difference. */
  correctedEvents: number;
  correctionDelta: number;
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
      .select(['stream', 'day', 'status', 'reason', 'provider', 'records_fetched', 'records_delivered', 'revised_events', 'corrected_events', 'correction_delta', 'fetched_at'])
      .where('participant_id', '=', participantId)
      .where('day', '>=', range.from)
      .where('day', '<=', range.to)
      .$if(only !== undefined, (qb) => qb.where('stream', 'in', only!))
      .orderBy('day')
      .orderBy('stream')
      .execute(),
    countParkedRecordsByDay(db, participantId, range),
  ]);
  return rows.map((r) => ({
    stream: r.stream,
    day: r.day,
    status: r.status,
    reason: r.reason,
    provider: r.provider,
    recordsFetched: r.records_fetched,
    recordsDelivered: r.records_delivered,
    recordsParked: parked.get(`${r.stream}/${r.day}`) ?? 0,
    revisedEvents: r.revised_events,
    correctedEvents: r.corrected_events,
    correctionDelta: r.correction_delta,
    fetchedAt: r.fetched_at,
  }));
}

/** Retention deleted these days' delivered events: noted on their ledger rows, in its transaction. */
export async function markEventsCompacted(
  trx: Transaction<Database>,
  participantId: string,
  days: ReadonlyArray<{ stream: string; day: string }>,
): Promise<void> {
  if (days.length === 0) return;
  await sql`
    update day_ledger l set events_compacted_at = now(), updated_at = now()
    from unnest(${sql.val(days.map((d) => d.stream))}::text[], ${sql.val(days.map((d) => d.day))}::date[]) as c(stream, day)
    where l.participant_id = ${participantId} and l.stream = c.stream and l.day = c.day`.execute(trx);
}

/** How many of a participant-day's streams are in each status (the study overview's cells). */
export interface LedgerDayCounts {
  participantId: string;
  day: string;
  counts: Record<DayStatus, number>;
}

/**
 * Per participant and day in `from`…`to`, how many streams are in each status; `device` is left
 * out (it has no days of its own to fetch). Days without any row have no entry.
 */
export async function countLedgerStatuses(
  db: Kysely<Database>,
  range: { participantIds: readonly string[]; from: string; to: string },
): Promise<LedgerDayCounts[]> {
  if (range.participantIds.length === 0) return [];
  const count = (status: DayStatus) => sql<string>`count(*) filter (where status = ${status})`;
  const rows = await db
    .selectFrom('day_ledger')
    .select([
      'participant_id as participantId',
      'day',
      count('settled').as('settled'),
      count('partial').as('partial'),
      count('empty').as('empty'),
      count('not_synced').as('not_synced'),
      count('failed').as('failed'),
    ])
    .where('participant_id', 'in', [...range.participantIds])
    .where('day', '>=', range.from)
    .where('day', '<=', range.to)
    .where('stream', '<>', 'device')
    .groupBy(['participant_id', 'day'])
    .execute();
  return rows.map((r) => ({
    participantId: r.participantId,
    day: r.day,
    counts: {
      settled: Number(r.settled),
      partial: Number(r.partial),
      empty: Number(r.empty),
      not_synced: Number(r.not_synced),
      failed: Number(r.failed),
    },
  }));
}

/**
 * Each stream's status per participant and day in `from`…`to` (exports): one entry per
 * participant-day that has a ledger row, its statuses by stream, ordered by participant, then day.
 * Grouped in Postgres, so a page of participants costs one row per day, not one per stream-day.
 */
export async function findLedgerStatuses(
  db: Kysely<Database>,
  range: { participantIds: readonly string[]; from: string; to: string },
): Promise<Array<{ participantId: string; day: string; statuses: Partial<Record<string, DayStatus>> }>> {
  if (range.participantIds.length === 0) return [];
  return db
    .selectFrom('day_ledger')
    .select(['participant_id as participantId', 'day', sql<Partial<Record<string, DayStatus>>>`jsonb_object_agg(stream, status)`.as('statuses')])
    .where('participant_id', 'in', [...range.participantIds])
    .where('day', '>=', range.from)
    .where('day', '<=', range.to)
    .groupBy(['participant_id', 'day'])
    .orderBy('participant_id')
    .orderBy('day')
    .execute();
}
