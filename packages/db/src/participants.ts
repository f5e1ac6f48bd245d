import { sql, type Kysely, type Transaction } from 'kysely';
import type { ConnectionStatus, Database, ProviderName } from './schema.ts';

/**
 * `participants`: one row per person, keyed by their mindLAMP participant id. A participant is
 * recorded when an enrollment link is issued or consent starts ({@link upsertParticipant}); their
 * connections, cursors, ledger and outbox rows hang off it (deleted with it).
 */

/** Records a participant (its id is the mindLAMP participant id); a known one is left as is. */
export async function upsertParticipant(
  db: Kysely<Database> | Transaction<Database>,
  participantId: string,
  studyId: string | null = null,
): Promise<void> {
  await db
    .insertInto('participants')
    .values({ id: participantId, study_id: studyId })
    .onConflict((oc) =>
      studyId === null
        ? oc.column('id').doNothing()
        : oc.column('id').doUpdateSet({ study_id: studyId, updated_at: sql<Date>`now()` }),
    )
    .execute();
}

/** Whether fitlamp knows the participant (and, given `studyIds`, whether it belongs to one of them). */
export async function participantExists(db: Kysely<Database>, participantId: string, studyIds?: readonly string[]): Promise<boolean> {
  if (studyIds && studyIds.length === 0) return false;
  let query = db.selectFrom('participants').select('id').where('id', '=', participantId);
  if (studyIds) query = query.where('study_id', 'in', [...studyIds]);
  return (await query.executeTakeFirst()) !== undefined;
}

/** One row of the coordinator's participant list: a participant and one provider connection (if any). */
export interface ParticipantStatusRow {
  participantId: string;
  studyId: string | null;
  provider: ProviderName | null;
  /** `null`: enrolled (a link was issued or consent started) but never connected. */
  status: ConnectionStatus | null;
  statusReason: string | null;
  scopes: string[];
  connectedAt: Date | null;
  disconnectedAt: Date | null;
  /** When data last synced successfully: the connection's own mark, else its newest stream cursor's. */
  lastSyncAt: Date | null;
  /** When the device last synced with the provider, and its battery percent then. */
  deviceLastSyncAt: Date | null;
  batteryLevel: number | null;
  createdAt: Date;
}

/**
 * Every participant with each of its connections (a participant without one appears once with
 * `provider: null`), ordered by participant id. Optional filters by status and provider.
 */
export async function listParticipantStatuses(
  db: Kysely<Database>,
  filter: {
    status?: ConnectionStatus;
    provider?: ProviderName;
    /** Only participants of these studies (an empty list matches nobody). */
    studyIds?: readonly string[];
    /** Only these participants. */
    participantIds?: readonly string[];
    limit?: number;
    offset?: number;
  } = {},
): Promise<ParticipantStatusRow[]> {
  let query = db
    .selectFrom('participants as p')
    .leftJoin('provider_connections as c', 'c.participant_id', 'p.id')
    .select((eb) => [
      'p.id as participantId',
      'p.study_id as studyId',
      'p.created_at as createdAt',
      'c.provider as provider',
      'c.status as status',
      'c.status_reason as statusReason',
      'c.scopes as scopes',
      'c.connected_at as connectedAt',
      'c.disconnected_at as disconnectedAt',
      'c.device_last_sync_at as deviceLastSyncAt',
      'c.device_battery_level as batteryLevel',
      eb.fn
        .coalesce(
          'c.last_sync_at',
          eb
            .selectFrom('sync_cursors as s')
            .select((s) => s.fn.max('s.last_success_at').as('m'))
            .whereRef('s.participant_id', '=', 'p.id'),
        )
        .as('lastSyncAt'),
    ])
    .orderBy('p.id')
    .orderBy('c.provider');
  if (filter.status) query = query.where('c.status', '=', filter.status);
  if (filter.provider) query = query.where('c.provider', '=', filter.provider);
  if (filter.studyIds) {
    if (filter.studyIds.length === 0) return [];
    query = query.where('p.study_id', 'in', [...filter.studyIds]);
  }
  if (filter.participantIds) {
    if (filter.participantIds.length === 0) return [];
    query = query.where('p.id', 'in', [...filter.participantIds]);
  }
  if (filter.limit !== undefined) query = query.limit(filter.limit);
  if (filter.offset !== undefined) query = query.offset(filter.offset);
  const rows = await query.execute();
  return rows.map((r) => ({
    participantId: r.participantId,
    studyId: r.studyId,
    provider: r.provider,
    status: r.status,
    statusReason: r.statusReason,
    scopes: r.scopes ?? [],
    connectedAt: r.connectedAt,
    disconnectedAt: r.disconnectedAt,
    lastSyncAt: (r.lastSyncAt as Date | null) ?? null,
    deviceLastSyncAt: r.deviceLastSyncAt ?? null,
    batteryLevel: r.batteryLevel ?? null,
    createdAt: r.createdAt,
  }));
}

/** The studies participants belong to, by id. */
export async function listStudyIds(db: Kysely<Database>): Promise<string[]> {
  const rows = await db.selectFrom('participants').select('study_id').distinct().where('study_id', 'is not', null).orderBy('study_id').execute();
  return rows.map((r) => r.study_id!);
}

/** A page of participant ids after `afterId` in id order, of `studyIds` or everyone (keyset paging for exports). */
export async function listParticipantIds(
  db: Kysely<Database>,
  page: { afterId?: string; limit: number; studyIds?: readonly string[] },
): Promise<Array<{ id: string; studyId: string | null }>> {
  if (page.studyIds && page.studyIds.length === 0) return [];
  let query = db.selectFrom('participants').select(['id', 'study_id as studyId']).orderBy('id').limit(page.limit);
  if (page.afterId !== undefined) query = query.where('id', '>', page.afterId);
  if (page.studyIds) query = query.where('study_id', 'in', [...page.studyIds]);
  return query.execute();
}
