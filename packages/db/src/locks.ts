import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from './schema.ts';

/**
 * Postgres advisory locks: mutual exclusion between replicas that share nothing but the
 * database. Every lock fitlamp takes is here, each keyed by a string in its own namespace
 * (`hashtextextended` of `<namespace>:<name>`), so two features never contend by accident.
 */

/**
 * Serializes connects of one provider account until the caller's transaction ends, so two
 * participants consenting with the same account at once cannot both claim it (gateway).
 */
export async function lockProviderAccount(trx: Transaction<Database>, provider: string, providerUserId: string): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtextextended(${`connect:${provider}:${providerUserId}`}, 0))`.execute(trx);
}

/** What {@link withSchedulerLock} did. */
export type LockedRun<T> = { acquired: true; value: T } | { acquired: false };

/**
 * Runs `fn` only if no other scheduler replica holds the scheduler lock, holding it until `fn`
 * settles; answers `{ acquired: false }` at once (without running `fn`) if another one does.
 * The lock is transaction-scoped: whatever happens to this process or its connection, Postgres
 * releases it when the transaction ends. The transaction holds no row locks and no snapshot
 * between statements, so keeping it open while `fn` waits costs one pooled connection.
 */
export async function withSchedulerLock<T>(db: Kysely<Database>, fn: () => Promise<T>): Promise<LockedRun<T>> {
  return withTryLock(db, 'scheduler:tick', fn);
}

/**
 * Like {@link withSchedulerLock}, for the gateway's alert evaluation and webhook sending: one
 * gateway replica at a time, so an alert is opened and notified once per round.
 */
export async function withAlertsLock<T>(db: Kysely<Database>, fn: () => Promise<T>): Promise<LockedRun<T>> {
  return withTryLock(db, 'alerts:evaluate', fn);
}

async function withTryLock<T>(db: Kysely<Database>, key: string, fn: () => Promise<T>): Promise<LockedRun<T>> {
  return db.transaction().execute(async (trx): Promise<LockedRun<T>> => {
    const { rows } = await sql<{ acquired: boolean }>`
      select pg_try_advisory_xact_lock(hashtextextended(${key}, 0)) as acquired`.execute(trx);
    if (!rows[0]?.acquired) return { acquired: false };
    return { acquired: true, value: await fn() };
  });
}

/**
 * Serializes every change to one participant's event chunks until the caller's transaction ends:
 * the fetcher storing a day, the lamp-writer cutting or splitting a chunk, retention compacting.
 * Chunk sequence numbers and a day's diff against its stored chunks rely on it.
 */
export async function lockParticipantEvents(trx: Transaction<Database>, participantId: string): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtextextended(${`events:${participantId}`}, 0))`.execute(trx);
}
