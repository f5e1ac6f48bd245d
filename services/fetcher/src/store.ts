import { sql, type Kysely } from 'kysely';
import type { Database, DayStatus, ProviderName } from '@fitlamp/db';
import {
  eventHash,
  localDayBounds,
  recordKey,
  type DayResult,
  type StreamName,
  type ZoneHistory,
} from '@fitlamp/provider';
import type { LedgerEntry } from './plan.ts';

/** Rows per INSERT: 11 parameters each stays far below Postgres' 65,535-parameter limit. */
const CHUNK = 2_000;

export interface StoreOutcome {
  inserted: number;
  changed: number;
  /** Of the changed, how many mindLAMP already had (kept as delivered; see docs/mapping.md). */
  changedAfterDelivery: number;
}

/** The status a fetched day earns from the device's last sync. */
export function dayStatusFor(day: string, recordCount: number, lastDeviceSync: number, zones: ZoneHistory): DayStatus {
  const { end } = localDayBounds(day, zones);
  if (lastDeviceSync >= end) return recordCount > 0 ? 'settled' : 'empty';
  return 'partial';
}

function reasonFor(status: DayStatus, lastDeviceSync: number): string | null {
  if (status === 'empty') return 'no data: the device was not worn, or recorded nothing this day';
  if (status === 'partial') return `device last synced ${new Date(lastDeviceSync).toISOString()}: more may come`;
  return null;
}

/**
 * Stores one request's worth of days durably, with the ledger, in one transaction (DESIGN.md
 * principle 1). Unchanged re-fetches change nothing; changed records take the new value, and stay
 * delivered if mindLAMP already has them (it can neither update nor delete); records that vanished
 * from the provider before delivery are dropped.
 */
export async function storeDayResults(
  db: Kysely<Database>,
  input: {
    participantId: string;
    provider: ProviderName;
    stream: StreamName;
    results: readonly DayResult[];
    lastDeviceSync: number;
    zones: ZoneHistory;
    /** Keep a day's pending records that this answer did not repeat (accumulating streams). */
    keepVanished?: boolean;
  },
): Promise<StoreOutcome> {
  const outcome: StoreOutcome = { inserted: 0, changed: 0, changedAfterDelivery: 0 };
  await db.transaction().execute(async (trx) => {
    for (const result of input.results) {
      const rows = result.records.map((r) => ({
        record_key: recordKey(input.participantId, r),
        participant_id: input.participantId,
        stream: r.stream,
        day: r.day,
        sensor: r.event.sensor,
        timestamp: r.event.timestamp,
        duration: r.event.duration ?? null,
        data: JSON.stringify(r.event.data),
        data_hash: eventHash(r.event),
        status: 'pending' as const,
      }));
      // A provider may return the same datum twice in one answer (paging overlaps): keep one.
      const unique = [...new Map(rows.map((r) => [r.record_key, r])).values()];
      for (let i = 0; i < unique.length; i += CHUNK) {
        const written = await trx
          .insertInto('records')
          .values(unique.slice(i, i + CHUNK))
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
      const keys = unique.map((r) => r.record_key);
      if (!input.keepVanished) await trx
        .deleteFrom('records')
        .where('participant_id', '=', input.participantId)
        .where('stream', '=', input.stream)
        .where('day', '=', result.day)
        .where('status', '=', 'pending')
        .$if(keys.length > 0, (qb) => qb.where('record_key', '<>', sql<string>`all(${sql.val(keys)}::text[])`))
        .execute();

      const status = dayStatusFor(result.day, unique.length, input.lastDeviceSync, input.zones);
      const now = new Date();
      const contentHash = eventHashOfDay(unique.map((r) => `${r.record_key}:${r.data_hash}`));
      await trx
        .insertInto('day_ledger')
        .values({
          participant_id: input.participantId,
          stream: input.stream,
          day: result.day,
          status,
          reason: reasonFor(status, input.lastDeviceSync),
          provider: input.provider,
          records_fetched: unique.length,
          content_hash: contentHash,
          fetch_count: 1,
          fetched_at: now,
          synced_through: new Date(input.lastDeviceSync),
          settled_at: status === 'settled' || status === 'empty' ? now : null,
          updated_at: now,
        })
        .onConflict((oc) =>
          oc.columns(['participant_id', 'stream', 'day']).doUpdateSet({
            status,
            reason: reasonFor(status, input.lastDeviceSync),
            provider: input.provider,
            records_fetched: unique.length,
            content_hash: contentHash,
            fetch_count: sql`day_ledger.fetch_count + 1`,
            fetched_at: now,
            synced_through: new Date(input.lastDeviceSync),
            settled_at: sql`coalesce(day_ledger.settled_at, ${status === 'settled' || status === 'empty' ? now : null}::timestamptz)`,
            updated_at: now,
          }),
        )
        .execute();
    }
  });
  return outcome;
}

function eventHashOfDay(parts: string[]): string {
  return eventHash({ timestamp: 0, sensor: '', data: { p: parts.sort() } });
}

/** Records a problem for days that could not be fetched, without touching what was stored. */
export async function markDays(
  db: Kysely<Database>,
  input: {
    participantId: string;
    provider: ProviderName;
    days: ReadonlyArray<{ stream: string; day: string }>;
    status: Extract<DayStatus, 'failed' | 'not_synced'>;
    reason: string;
    /** Only add rows; keep days that already have a status (e.g. rate-limited re-fetches). */
    onlyNew?: boolean;
  },
): Promise<void> {
  if (input.days.length === 0) return;
  const now = new Date();
  const rows = input.days.map((d) => ({
    participant_id: input.participantId,
    stream: d.stream,
    day: d.day,
    status: input.status,
    reason: input.reason,
    provider: input.provider,
    updated_at: now,
  }));
  for (let i = 0; i < rows.length; i += CHUNK) {
    await db
      .insertInto('day_ledger')
      .values(rows.slice(i, i + CHUNK))
      .onConflict((oc) =>
        input.onlyNew
          ? oc.columns(['participant_id', 'stream', 'day']).doNothing()
          : oc.columns(['participant_id', 'stream', 'day']).doUpdateSet({
              status: input.status,
              reason: input.reason,
              updated_at: now,
            }),
      )
      .execute();
  }
}

/** `stream -> day -> entry` for the participant's days from `fromDay` on. */
export async function loadLedger(
  db: Kysely<Database>,
  participantId: string,
  fromDay: string,
): Promise<Map<string, Map<string, LedgerEntry>>> {
  const rows = await db
    .selectFrom('day_ledger')
    .select(['stream', 'day', 'status', 'synced_through', 'records_fetched'])
    .where('participant_id', '=', participantId)
    .where('day', '>=', fromDay)
    .execute();
  const out = new Map<string, Map<string, LedgerEntry>>();
  for (const r of rows) {
    let m = out.get(r.stream);
    if (!m) out.set(r.stream, (m = new Map()));
    m.set(r.day, { status: r.status, syncedThrough: r.synced_through?.getTime() ?? null, records: r.records_fetched });
  }
  return out;
}
