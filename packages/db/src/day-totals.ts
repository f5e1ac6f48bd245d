import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.ts';

/**
 * Per participant and local day, the totals a coordinator judges compliance by: wear time
 * (minutes with at least one heart-rate reading), steps, and minutes asleep.
 *
 * Interim implementation: computed from the records outbox (`records`), whose `day` is already
 * the participant's local day. The storage redesign (issue 13) replaces the outbox with per-day
 * chunks and a `day_summaries` table and swaps this function's body; callers depend only on its
 * signature. Until then, days whose records left the outbox after the retention window have no
 * totals.
 */

/** One participant-day's totals; days with nothing recorded have no row. */
export interface DayTotals {
  participantId: string;
  /** The participant's local day, YYYY-MM-DD. */
  day: string;
  /** Minutes of the day with at least one heart-rate reading: the device was worn. */
  wearMinutes: number;
  steps: number;
  /** Minutes in a sleep stage (light, deep, REM, asleep), awake and in-bed time excluded. */
  sleepMinutes: number;
}

/** Totals for every participant-day in `from`…`to` (inclusive) with data, of `participantIds` or everyone. */
export async function findDayTotals(
  db: Kysely<Database>,
  range: { participantIds?: string[]; from: string; to: string },
): Promise<DayTotals[]> {
  if (range.participantIds && range.participantIds.length === 0) return [];
  let query = db
    .selectFrom('records')
    .select([
      'participant_id as participantId',
      'day',
      sql<string>`count(distinct floor(timestamp / 60000)) filter (where stream = 'heart_rate')`.as('wear'),
      sql<string>`coalesce(sum((data->>'value')::numeric) filter (where stream = 'steps'), 0)`.as('steps'),
      sql<string>`coalesce(sum(duration) filter (where stream = 'sleep' and data->>'representation' = 'in_sleep'), 0)`.as('sleepMs'),
    ])
    .where('stream', 'in', ['heart_rate', 'steps', 'sleep'])
    .where('day', '>=', range.from)
    .where('day', '<=', range.to)
    .groupBy(['participant_id', 'day'])
    .orderBy('participant_id')
    .orderBy('day');
  if (range.participantIds) query = query.where('participant_id', 'in', range.participantIds);
  const rows = await query.execute();
  return rows.map((r) => ({
    participantId: r.participantId,
    day: r.day,
    wearMinutes: Number(r.wear),
    steps: Math.round(Number(r.steps)),
    sleepMinutes: Math.round(Number(r.sleepMs) / 60_000),
  }));
}
