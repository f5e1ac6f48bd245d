import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.ts';

/**
 * `writer_leases`: at most one lamp-writer delivers a participant's records at a time. mindLAMP
 * cannot deduplicate, and a deliver job reconciles any batch still `sending` before it sends: two
 * live writers on one participant would read back each other's in-flight batch and send it again.
 *
 * A lease belongs to one run of a deliver job (`holder`, a fresh id per run, so a stalled job
 * re-run under the same job id is a different holder). It lasts `ttlMs` from its last renewal on
 * Postgres' clock, so replicas' clocks never matter. The holder renews it before every POST with
 * a TTL longer than the mindLAMP request timeout: a POST started under the lease has ended (or
 * timed out) before the lease can expire. A writer that dies keeps its lease until it expires;
 * then its successor takes over and reconciles what it left `sending`.
 */

/**
 * Takes the participant's lease for `holder` if it is free, expired, or already `holder`'s.
 * Answers whether `holder` now holds it.
 */
export async function acquireWriterLease(db: Kysely<Database>, participantId: string, holder: string, ttlMs: number): Promise<boolean> {
  const row = await db
    .insertInto('writer_leases')
    .values({ participant_id: participantId, holder, expires_at: sql`clock_timestamp() + ${ttlMs} * interval '1 millisecond'` })
    .onConflict((oc) =>
      oc.column('participant_id').doUpdateSet({
        holder,
        acquired_at: sql`clock_timestamp()`,
        expires_at: sql`clock_timestamp() + ${ttlMs} * interval '1 millisecond'`,
      }).where((eb) => eb.or([eb('writer_leases.expires_at', '<', sql<Date>`clock_timestamp()`), eb('writer_leases.holder', '=', holder)])),
    )
    .returning('holder')
    .executeTakeFirst();
  return row?.holder === holder;
}

/**
 * Extends `holder`'s lease to `ttlMs` from now. Answers false if `holder` no longer holds it
 * (it expired and another writer took it): the caller must stop sending at once.
 */
export async function renewWriterLease(db: Kysely<Database>, participantId: string, holder: string, ttlMs: number): Promise<boolean> {
  const result = await db
    .updateTable('writer_leases')
    .set({ expires_at: sql`clock_timestamp() + ${ttlMs} * interval '1 millisecond'` })
    .where('participant_id', '=', participantId)
    .where('holder', '=', holder)
    .where('expires_at', '>=', sql<Date>`clock_timestamp()`)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** Gives the lease up, if `holder` still holds it, so the next writer need not wait for expiry. */
export async function releaseWriterLease(db: Kysely<Database>, participantId: string, holder: string): Promise<void> {
  await db.deleteFrom('writer_leases').where('participant_id', '=', participantId).where('holder', '=', holder).execute();
}

/** When the participant's current lease expires, on Postgres' clock, as ms from now; null if none. */
export async function findWriterLeaseRemainingMs(db: Kysely<Database>, participantId: string): Promise<number | null> {
  const row = await db
    .selectFrom('writer_leases')
    .select(sql<number>`greatest(0, extract(epoch from (expires_at - clock_timestamp())) * 1000)::float8`.as('remaining'))
    .where('participant_id', '=', participantId)
    .executeTakeFirst();
  return row ? Number(row.remaining) : null;
}
