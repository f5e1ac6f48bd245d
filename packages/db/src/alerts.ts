import type { Kysely } from 'kysely';
import type { AlertRule, Database } from './schema.ts';

/**
 * `alerts`: what a coordinator must act on, one row per occurrence of a rule's condition for a
 * participant. The gateway's evaluator ({@link reconcileAlerts}) opens a row when the condition
 * starts to hold and closes it (`closed_at`) when it no longer does; the partial unique index
 * `alerts_open_key` keeps one open row per (participant, rule). Columns:
 * - `opened_at`: since when the condition holds, as the evaluator first saw it.
 * - `acknowledged_at`, `acknowledged_by`: a coordinator has seen it ({@link acknowledgeAlert});
 *   it leaves the overview's open list but stays open, so it does not fire again until it clears.
 * - `idempotency_key`: a random uuid per alert, sent with every webhook attempt so a receiver
 *   can drop repeats.
 * - `notify_due_at`, `notify_attempts`, `notify_last_error`, `notified_at`: the outgoing webhook's
 *   durable outbox. `notify_due_at` null: nothing to send (no webhook configured when it opened).
 *
 * The rule conditions below read other tables (connections, delivery batches) as the alert
 * rules define them; they write nothing there.
 */

/** Participants whose connected device has not synced since `before` (never synced: connected before it). */
export async function findParticipantsNotSyncedSince(db: Kysely<Database>, before: Date): Promise<string[]> {
  const rows = await db
    .selectFrom('provider_connections')
    .select('participant_id')
    .distinct()
    .where('status', '=', 'connected')
    .where((eb) =>
      eb.or([
        eb('device_last_sync_at', '<', before),
        eb.and([eb('device_last_sync_at', 'is', null), eb('connected_at', '<', before)]),
      ]),
    )
    .execute();
  return rows.map((r) => r.participant_id);
}

/** Participants whose connected device last reported a battery below `percent`. */
export async function findParticipantsWithBatteryBelow(db: Kysely<Database>, percent: number): Promise<string[]> {
  const rows = await db
    .selectFrom('provider_connections')
    .select('participant_id')
    .distinct()
    .where('status', '=', 'connected')
    .where('device_battery_level', '<', percent)
    .execute();
  return rows.map((r) => r.participant_id);
}

/**
 * Participants who must consent again (`reconnect_needed` or `needs_reconsent`) and have no
 * connection in use meanwhile.
 */
export async function findParticipantsNeedingConsent(db: Kysely<Database>): Promise<string[]> {
  const rows = await db
    .selectFrom('provider_connections as c')
    .select('c.participant_id')
    .distinct()
    .where('c.status', 'in', ['reconnect_needed', 'needs_reconsent'])
    .where((eb) =>
      eb.not(
        eb.exists(
          eb
            .selectFrom('provider_connections as k')
            .select('k.id')
            .whereRef('k.participant_id', '=', 'c.participant_id')
            .where('k.status', '=', 'connected'),
        ),
      ),
    )
    .execute();
  return rows.map((r) => r.participant_id);
}

/** Participants with a delivery batch mindLAMP refused (parked). */
export async function findParticipantsWithParkedDeliveries(db: Kysely<Database>): Promise<string[]> {
  const rows = await db.selectFrom('delivery_batches').select('participant_id').distinct().where('status', '=', 'parked').execute();
  return rows.map((r) => r.participant_id);
}

/** Participants with a connection in use. */
export async function findConnectedParticipants(db: Kysely<Database>): Promise<Array<{ participantId: string }>> {
  return db
    .selectFrom('provider_connections')
    .select(['participant_id as participantId'])
    .where('status', '=', 'connected')
    .orderBy('participant_id')
    .execute();
}

/**
 * Makes the open alerts of `rule` match `participantIds` (everyone for whom the condition holds
 * now): opens an alert for each without one, closes the others. With `notify`, a new alert's
 * webhook is due at once. Answers the ids of the alerts opened.
 */
export async function reconcileAlerts(
  db: Kysely<Database>,
  rule: AlertRule,
  participantIds: readonly string[],
  options: { now: Date; notify: boolean },
): Promise<string[]> {
  return db.transaction().execute(async (trx) => {
    await trx
      .updateTable('alerts')
      .set({ closed_at: options.now })
      .where('rule', '=', rule)
      .where('closed_at', 'is', null)
      .$if(participantIds.length > 0, (qb) => qb.where('participant_id', 'not in', [...participantIds]))
      .execute();
    // Only the new ones are inserted: an insert the conflict clause drops still spends an id.
    const held = new Set(
      (await trx.selectFrom('alerts').select('participant_id').where('rule', '=', rule).where('closed_at', 'is', null).execute()).map((r) => r.participant_id),
    );
    const fresh = participantIds.filter((id) => !held.has(id));
    if (fresh.length === 0) return [];
    const opened = await trx
      .insertInto('alerts')
      .values(
        fresh.map((participantId) => ({
          participant_id: participantId,
          rule,
          opened_at: options.now,
          notify_due_at: options.notify ? options.now : null,
        })),
      )
      .onConflict((oc) => oc.columns(['participant_id', 'rule']).where('closed_at', 'is', null).doNothing())
      .returning('id')
      .execute();
    return opened.map((r) => r.id);
  });
}

/** An open alert as the overview lists it. */
export interface OpenAlert {
  id: string;
  participantId: string;
  studyId: string | null;
  rule: AlertRule;
  openedAt: Date;
}

/** Open alerts nobody acknowledged yet, oldest first, of `studyIds` or everyone. */
export async function listOpenAlerts(db: Kysely<Database>, filter: { studyIds?: readonly string[]; limit: number }): Promise<OpenAlert[]> {
  if (filter.studyIds && filter.studyIds.length === 0) return [];
  let query = db
    .selectFrom('alerts as a')
    .innerJoin('participants as p', 'p.id', 'a.participant_id')
    .select(['a.id', 'a.participant_id as participantId', 'p.study_id as studyId', 'a.rule', 'a.opened_at as openedAt'])
    .where('a.closed_at', 'is', null)
    .where('a.acknowledged_at', 'is', null)
    .orderBy('a.opened_at')
    .orderBy('a.id')
    .limit(filter.limit);
  if (filter.studyIds) query = query.where('p.study_id', 'in', [...filter.studyIds]);
  return query.execute();
}

/** What {@link acknowledgeAlert} did. */
export type AcknowledgeOutcome = 'acknowledged' | 'already_acknowledged' | 'not_found';

/**
 * Marks an alert seen by `by`. An alert of a participant outside `studyIds` (when given) does not
 * exist for the caller.
 */
export async function acknowledgeAlert(
  db: Kysely<Database>,
  alertId: string,
  by: string,
  studyIds?: readonly string[],
): Promise<AcknowledgeOutcome> {
  if (studyIds && studyIds.length === 0) return 'not_found';
  const updated = await db
    .updateTable('alerts')
    .set({ acknowledged_at: new Date(), acknowledged_by: by })
    .where('id', '=', alertId)
    .where('acknowledged_at', 'is', null)
    .$if(studyIds !== undefined, (qb) =>
      qb.where('participant_id', 'in', (eb) => eb.selectFrom('participants').select('id').where('study_id', 'in', [...studyIds!])),
    )
    .executeTakeFirst();
  if (Number(updated.numUpdatedRows) > 0) return 'acknowledged';
  let query = db.selectFrom('alerts as a').innerJoin('participants as p', 'p.id', 'a.participant_id').select('a.id').where('a.id', '=', alertId);
  if (studyIds) query = query.where('p.study_id', 'in', [...studyIds]);
  return (await query.executeTakeFirst()) ? 'already_acknowledged' : 'not_found';
}

/** A webhook notification to send: only what the receiver may see, no health values. */
export interface DueAlertNotification {
  id: string;
  participantId: string;
  rule: AlertRule;
  openedAt: Date;
  idempotencyKey: string;
  attempts: number;
}

/** Alerts whose webhook is due at `now`, oldest first. */
export async function findDueAlertNotifications(db: Kysely<Database>, now: Date, limit: number): Promise<DueAlertNotification[]> {
  return db
    .selectFrom('alerts')
    .select(['id', 'participant_id as participantId', 'rule', 'opened_at as openedAt', 'idempotency_key as idempotencyKey', 'notify_attempts as attempts'])
    .where('notified_at', 'is', null)
    .where('notify_due_at', '<=', now)
    .orderBy('notify_due_at')
    .orderBy('id')
    .limit(limit)
    .execute();
}

/** The receiver accepted the alert's webhook. */
export async function markAlertNotified(db: Kysely<Database>, alertId: string, at: Date): Promise<void> {
  await db
    .updateTable('alerts')
    .set((eb) => ({ notified_at: at, notify_due_at: null, notify_attempts: eb('notify_attempts', '+', 1), notify_last_error: null }))
    .where('id', '=', alertId)
    .execute();
}

/** The webhook attempt failed: try again at `dueAt`. */
export async function postponeAlertNotification(db: Kysely<Database>, alertId: string, dueAt: Date, error: string): Promise<void> {
  await db
    .updateTable('alerts')
    .set((eb) => ({ notify_due_at: dueAt, notify_attempts: eb('notify_attempts', '+', 1), notify_last_error: error.slice(0, 500) }))
    .where('id', '=', alertId)
    .execute();
}
