import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from './schema.ts';

/**
 * `sync_cursors`: the schedule. One row per participant and stream the participant granted; the
 * scheduler enqueues a participant's sync once any of their cursors is due. Every write to the
 * table is in this file.
 *
 * - `next_due_at`: when the stream is due, on the clock of whoever schedules by the provider's
 *   time (the fetcher, and the scheduler comparing with it; both follow `CLOCK_OFFSET_MS` in a
 *   simulation). "Due now" is {@link DUE_NOW}, the epoch, so that no writer's wall time leaks in.
 *   Set to due by {@link scheduleStreams} (gateway at connect), to one poll interval ahead by
 *   {@link scheduleNextSync} (fetcher after a sync), a few minutes ahead by {@link postponeSync}
 *   (fetcher after an error).
 * - `last_attempt_at`, `last_success_at`: when a sync of the stream last ended, and last ended
 *   without failures (fetcher's clock).
 * - `last_error`: the error of the last sync that threw; cleared by a successful one or a new grant.
 * - `state`: provider-specific progress (a page token or the newest log id seen); unused today.
 *
 * A connected participant without any cursor (connected by an older version, or cursors lost) is
 * due now: {@link findDueParticipants} finds them directly.
 */

/**
 * "Due now", whatever clock the scheduler keeps: the epoch. A writer that does not schedule by
 * the provider's clock (the gateway, the scheduler's own repair) must not stamp its wall time
 * here, or a scheduler whose clock runs elsewhere (a simulation) would wait for it.
 */
export const DUE_NOW = new Date(0);

/**
 * Makes exactly `streams` due now for the participant: existing cursors keep their progress and
 * become due, missing ones are created, cursors of other streams (no longer granted) are
 * deleted so the scheduler stops asking for them.
 */
export async function scheduleStreams(
  db: Kysely<Database> | Transaction<Database>,
  participantId: string,
  streams: readonly string[],
): Promise<void> {
  let del = db.deleteFrom('sync_cursors').where('participant_id', '=', participantId);
  if (streams.length > 0) del = del.where('stream', 'not in', [...streams]);
  await del.execute();
  if (streams.length === 0) return;
  await db
    .insertInto('sync_cursors')
    .values(streams.map((stream) => ({ participant_id: participantId, stream, next_due_at: DUE_NOW })))
    .onConflict((oc) =>
      oc.columns(['participant_id', 'stream']).doUpdateSet({
        next_due_at: DUE_NOW,
        last_error: null,
        updated_at: sql<Date>`now()`,
      }),
    )
    .execute();
}

/** Deletes the participant's sync cursors: nothing is due for them any more. */
export async function unscheduleStreams(db: Kysely<Database>, participantId: string): Promise<number> {
  const result = await db.deleteFrom('sync_cursors').where('participant_id', '=', participantId).executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** The streams the scheduler syncs for the participant (its sync cursors), sorted by name. */
export async function findScheduledStreams(db: Kysely<Database>, participantId: string): Promise<string[]> {
  const rows = await db.selectFrom('sync_cursors').select('stream').where('participant_id', '=', participantId).orderBy('stream').execute();
  return rows.map((r) => r.stream);
}

/**
 * Participants to sync now, by id: those with a `connected` connection and a cursor due by `now`
 * (the scheduler's clock), or with no cursor at all.
 */
export async function findDueParticipants(db: Kysely<Database>, now: Date): Promise<string[]> {
  // Two plain parts rather than one row-by-row test per connection: the first walks the due
  // index, the second is one anti-join (the cost the scheduler's placeholder insert used to pay).
  const due = db
    .selectFrom('sync_cursors as s')
    .innerJoin('provider_connections as c', 'c.participant_id', 's.participant_id')
    .select('s.participant_id')
    .where('c.status', '=', 'connected')
    .where('s.next_due_at', '<=', now);
  const withoutCursors = db
    .selectFrom('provider_connections as c')
    .select('c.participant_id')
    .where('c.status', '=', 'connected')
    .where(({ not, exists, selectFrom }) =>
      not(exists(selectFrom('sync_cursors as s').select('s.stream').whereRef('s.participant_id', '=', 'c.participant_id'))),
    );
  const rows = await due.union(withoutCursors).orderBy('participant_id').execute();
  return rows.map((r) => r.participant_id);
}

/**
 * Records a sync's end for each of `streams` (creating missing cursors): attempted at `at`,
 * successful or not, due again at `nextDueAt`. Both on the fetcher's clock.
 */
export async function scheduleNextSync(
  db: Kysely<Database>,
  participantId: string,
  sync: { streams: readonly string[]; at: Date; nextDueAt: Date; success: boolean },
): Promise<void> {
  const { at, nextDueAt, success } = sync;
  if (sync.streams.length === 0) return;
  await db
    .insertInto('sync_cursors')
    .values(
      sync.streams.map((stream) => ({
        participant_id: participantId,
        stream,
        next_due_at: nextDueAt,
        last_attempt_at: at,
        last_success_at: success ? at : null,
      })),
    )
    .onConflict((oc) =>
      oc.columns(['participant_id', 'stream']).doUpdateSet({
        next_due_at: nextDueAt,
        last_attempt_at: at,
        ...(success ? { last_success_at: at, last_error: null } : {}),
        updated_at: at,
      }),
    )
    .execute();
}

/**
 * After a sync that threw: the participant's cursors are due again at `until` (the fetcher's
 * clock) with the error recorded, so the scheduler does not retry on its next tick. A participant
 * without cursors gets them for `streams`, or the scheduler would find them due at every tick.
 */
export async function postponeSync(
  db: Kysely<Database>,
  participantId: string,
  postpone: { streams: readonly string[]; until: Date; error: string },
): Promise<void> {
  const { until, error } = postpone;
  const updated = await db
    .updateTable('sync_cursors')
    .set({ next_due_at: until, last_error: error })
    .where('participant_id', '=', participantId)
    .executeTakeFirst();
  if (Number(updated.numUpdatedRows) > 0 || postpone.streams.length === 0) return;
  await db
    .insertInto('sync_cursors')
    .values(postpone.streams.map((stream) => ({ participant_id: participantId, stream, next_due_at: until, last_error: error })))
    .onConflict((oc) => oc.columns(['participant_id', 'stream']).doUpdateSet({ next_due_at: until, last_error: error }))
    .execute();
}
