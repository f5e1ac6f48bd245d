import { sql, type Kysely, type Transaction } from 'kysely';
import type { ChunkEvent, Database } from './schema.ts';

/**
 * `day_summaries`: one row per participant × local day with the day's totals the coordinator
 * draws from, kept forever, long after the day's events have left Postgres (retention, see
 * outbox.ts). Every read and write of the table is in this file.
 *
 * Columns, each written from the last fetch of its stream's day ({@link saveDayTotal}, fetcher,
 * in the transaction that stores the day), null until that stream's day was fetched:
 * - `wear_minutes`: minutes with a heart-rate reading (`heart_rate` events, one per minute);
 * - `steps`: the day's steps (`steps` events' values);
 * - `sleep_minutes`: minutes asleep (`sleep` segments whose representation is `in_sleep`).
 */

/** The streams that have a day total, and the summary column each fills. */
const TOTAL_COLUMNS = { heart_rate: 'wear_minutes', steps: 'steps', sleep: 'sleep_minutes' } as const;
type TotalStream = keyof typeof TOTAL_COLUMNS;

const hasTotal = (stream: string): stream is TotalStream => Object.hasOwn(TOTAL_COLUMNS, stream);

/** A stream's total for one day of its events; null for streams without one. */
export function dayTotalOf(stream: string, events: ReadonlyArray<Pick<ChunkEvent, 'd' | 'v'>>): number | null {
  if (!hasTotal(stream)) return null;
  if (stream === 'heart_rate') return events.length;
  if (stream === 'steps') return events.reduce((sum, e) => sum + (typeof e.v.value === 'number' ? e.v.value : 0), 0);
  return events.reduce((sum, e) => sum + (e.v.representation === 'in_sleep' ? (e.d ?? 0) : 0), 0) / 60_000;
}

/**
 * Writes a stream's total for a participant's day into its summary (nothing for streams without
 * one). `onlyIfMissing` leaves an existing value alone (retention filling a gap).
 */
export async function saveDayTotal(
  trx: Transaction<Database>,
  entry: { participantId: string; stream: string; day: string; total: number | null },
  onlyIfMissing = false,
): Promise<void> {
  if (!hasTotal(entry.stream) || entry.total === null) return;
  const column = TOTAL_COLUMNS[entry.stream];
  const value = Math.round(entry.total);
  await trx
    .insertInto('day_summaries')
    .values({ participant_id: entry.participantId, day: entry.day, [column]: value })
    .onConflict((oc) => {
      const update = oc.columns(['participant_id', 'day']).doUpdateSet({ [column]: value, updated_at: sql`now()` });
      return onlyIfMissing ? update.where(`day_summaries.${column}`, 'is', null) : update;
    })
    .execute();
}

/** Days among `days` whose summary lacks the stream's total (or has no row). */
export async function findDaysWithoutTotal(
  trx: Transaction<Database>,
  participantId: string,
  stream: string,
  days: readonly string[],
): Promise<string[]> {
  if (!hasTotal(stream) || days.length === 0) return [];
  const column = TOTAL_COLUMNS[stream];
  const present = await trx
    .selectFrom('day_summaries')
    .select('day')
    .where('participant_id', '=', participantId)
    .where('day', 'in', [...days])
    .where(column, 'is not', null)
    .execute();
  const have = new Set(present.map((r) => r.day));
  return days.filter((d) => !have.has(d));
}

/** One participant-day's totals; null where that stream's day was never fetched. */
export interface DayTotals {
  participantId: string;
  /** The participant's local calendar day, YYYY-MM-DD. */
  day: string;
  wearMinutes: number | null;
  steps: number | null;
  sleepMinutes: number | null;
}

/**
 * Per participant-day totals for the days `from`..`to` (inclusive), of some participants or all,
 * whether the days' events are still in Postgres or compacted. Ordered by participant, then day.
 */
export async function findDayTotals(
  db: Kysely<Database>,
  filter: { participantIds?: readonly string[]; from: string; to: string },
): Promise<DayTotals[]> {
  if (filter.participantIds !== undefined && filter.participantIds.length === 0) return [];
  const rows = await db
    .selectFrom('day_summaries')
    .select(['participant_id', 'day', 'wear_minutes', 'steps', 'sleep_minutes'])
    .where('day', '>=', filter.from)
    .where('day', '<=', filter.to)
    .$if(filter.participantIds !== undefined, (qb) => qb.where('participant_id', 'in', [...filter.participantIds!]))
    .orderBy('participant_id')
    .orderBy('day')
    .execute();
  return rows.map((r) => ({
    participantId: r.participant_id,
    day: r.day,
    wearMinutes: r.wear_minutes,
    steps: r.steps,
    sleepMinutes: r.sleep_minutes,
  }));
}
