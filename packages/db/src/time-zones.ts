import type { Kysely, Transaction } from 'kysely';
import type { Database } from './schema.ts';

/**
 * `participant_time_zones`: each participant's zone history. A row says that from `valid_from`
 * on, the participant's device used `zone`, until the next row. The first zone seen stands for
 * all earlier data (its `valid_from` is the epoch); a change seen later starts a new span.
 * `source` says who saw it (`fitbit-profile` at connect, the provider name at a profile check).
 * Rows are only added, by {@link recordTimeZone} (gateway at connect, fetcher at profile checks).
 */

/** The participant's zone now (the newest entry of the zone history), if any. */
export async function findCurrentTimeZone(
  db: Kysely<Database> | Transaction<Database>,
  participantId: string,
): Promise<string | undefined> {
  const row = await db
    .selectFrom('participant_time_zones')
    .select('zone')
    .where('participant_id', '=', participantId)
    .orderBy('valid_from', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row?.zone;
}

/** The participant's zone history, oldest first: `validFrom` in UTC epoch ms. */
export async function findZoneHistory(
  db: Kysely<Database>,
  participantId: string,
): Promise<Array<{ zone: string; validFrom: number }>> {
  const rows = await db
    .selectFrom('participant_time_zones')
    .select(['zone', 'valid_from'])
    .where('participant_id', '=', participantId)
    .orderBy('valid_from')
    .execute();
  return rows.map((r) => ({ zone: r.zone, validFrom: r.valid_from.getTime() }));
}

/**
 * Appends `zone` to the participant's zone history from `validFrom` on, unless it is already
 * the current zone. Answers whether a row was added.
 */
export async function recordTimeZone(
  db: Kysely<Database> | Transaction<Database>,
  participantId: string,
  zone: string,
  source: string,
  validFrom: Date = new Date(),
): Promise<boolean> {
  const current = await findCurrentTimeZone(db, participantId);
  if (current === zone) return false;
  await db
    .insertInto('participant_time_zones')
    // The first zone seen stands for all earlier data too (nothing better is known of it).
    .values({ participant_id: participantId, zone, valid_from: current === undefined ? new Date(0) : validFrom, source })
    .onConflict((oc) => oc.columns(['participant_id', 'valid_from']).doNothing())
    .execute();
  return true;
}

/** Each participant's current zone (participants without a zone history are absent). */
export async function findCurrentTimeZones(db: Kysely<Database>, participantIds: readonly string[]): Promise<Map<string, string>> {
  if (participantIds.length === 0) return new Map();
  const rows = await db
    .selectFrom('participant_time_zones')
    .select(['participant_id', 'zone'])
    .distinctOn('participant_id')
    .where('participant_id', 'in', [...participantIds])
    .orderBy('participant_id')
    .orderBy('valid_from', 'desc')
    .execute();
  return new Map(rows.map((r) => [r.participant_id, r.zone]));
}
