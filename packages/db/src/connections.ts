import { sql, type Kysely, type Transaction } from 'kysely';
import type { ConnectionStatus, Database, ProviderConnection, ProviderName } from './schema.ts';

/**
 * `provider_connections`: one row per participant and provider, holding the encrypted tokens
 * and what the fetcher learned about the account. Every write to the table is in this file.
 *
 * `status`, and who sets it:
 * - `connected`: tokens are usable and the fetcher syncs the participant. Set by
 *   {@link saveConnectedTokens} when the participant consents (gateway), and kept by
 *   {@link saveRefreshedTokens} on every refresh (fetcher).
 * - `reconnect_needed`: the provider refused the refresh token (`invalid_grant`: revoked, reused,
 *   or a Testing-mode token past its 7 days), or rejected a freshly refreshed access token. The
 *   participant must consent again through a new link. Set by {@link markReconnectNeeded} (fetcher).
 * - `needs_reconsent`: the legacy Fitbit API answered 410 Gone; the participant must consent
 *   through its successor, the Google Health API. Set by {@link markNeedsReconsent} (fetcher).
 * - `revoked`: the participant withdrew access at the provider; tokens deleted. Set by
 *   {@link endConnection} with `revoked` (no provider tells fitlamp of a withdrawal today: a
 *   withdrawn grant shows as `reconnect_needed` at the next refresh).
 * - `disconnected`: an administrator disconnected the participant, or a Google Health connection
 *   retired this legacy one (`status_reason` starts with "migrated to Google Health"); tokens
 *   deleted. Set by {@link endConnection} (gateway admin API and re-consent).
 *
 * `status_reason` says why, for the coordinator. The other columns:
 * - `token_version`: bumped by every grant, refresh and end; the compare-and-set guard that makes
 *   a single-use refresh token be spent once ({@link lockConnectionForRefresh}).
 * - `intraday_access`: `null` unknown, `false` the provider refused minute detail (403), so the
 *   fetcher asks for daily series ({@link setIntradayRefused}); a new grant makes it unknown again.
 * - `rate_limit_remaining`, `rate_limit_reset_at`: the participant's provider budget as last
 *   counted by the fetcher ({@link saveRateBudget}).
 * - `device_last_sync_at`, `device_battery_level`: the newest device sync the provider reported, and
 *   that device's battery percent ({@link recordDeviceSync}).
 * - `profile_checked_at`: when the fetcher last read the account's profile for its time zone
 *   ({@link recordProfileCheck}), on the fetcher's clock.
 * - `last_sync_at`: when a sync of this connection last completed without failures ({@link markSynced}).
 */

/** A connection's encrypted token columns. */
export type TokenColumn = 'access_token_enc' | 'refresh_token_enc';

/** Where a connection's token lives, bound into its ciphertext (`@fitlamp/crypto`'s `SecretPlace`). */
export function connectionTokenPlace(participantId: string, column: TokenColumn): { table: string; column: string; participantId: string } {
  return { table: 'provider_connections', column, participantId };
}

/** Statuses in which a connection still holds (or should hold) tokens and owns its provider account. */
export const ACTIVE_CONNECTION_STATUSES = ['connected', 'reconnect_needed', 'needs_reconsent'] as const satisfies readonly ConnectionStatus[];

/** A participant's connection to one provider, if any. */
export async function findConnection(
  db: Kysely<Database> | Transaction<Database>,
  participantId: string,
  provider: ProviderName,
): Promise<ProviderConnection | undefined> {
  return db
    .selectFrom('provider_connections')
    .selectAll()
    .where('participant_id', '=', participantId)
    .where('provider', '=', provider)
    .executeTakeFirst();
}

/** Every connection of a participant (one per provider). */
export async function findConnectionsOfParticipant(db: Kysely<Database>, participantId: string): Promise<ProviderConnection[]> {
  return db.selectFrom('provider_connections').selectAll().where('participant_id', '=', participantId).orderBy('provider').execute();
}

/** The participant's connection the fetcher syncs: the newest `connected` one, if any. */
export async function findSyncableConnection(db: Kysely<Database>, participantId: string): Promise<ProviderConnection | undefined> {
  return db
    .selectFrom('provider_connections')
    .selectAll()
    .where('participant_id', '=', participantId)
    .where('status', '=', 'connected')
    .orderBy('connected_at', 'desc')
    .limit(1)
    .executeTakeFirst();
}

/**
 * The active connection that owns a provider account, if any: one provider account may feed only
 * one participant (the `provider_connections_account_key` index enforces it).
 */
export async function findActiveConnectionByAccount(
  db: Kysely<Database> | Transaction<Database>,
  provider: ProviderName,
  providerUserId: string,
): Promise<ProviderConnection | undefined> {
  return db
    .selectFrom('provider_connections')
    .selectAll()
    .where('provider', '=', provider)
    .where('provider_user_id', '=', providerUserId)
    .where('status', 'in', ACTIVE_CONNECTION_STATUSES)
    .executeTakeFirst();
}

/**
 * Which participant each of these provider accounts feeds, for the active connections among
 * them (a webhook names accounts, not participants). Accounts no one holds are absent.
 */
export async function findParticipantsByAccounts(
  db: Kysely<Database>,
  provider: ProviderName,
  providerUserIds: readonly string[],
): Promise<Map<string, string>> {
  if (providerUserIds.length === 0) return new Map();
  const rows = await db
    .selectFrom('provider_connections')
    .select(['participant_id', 'provider_user_id'])
    .where('provider', '=', provider)
    .where('provider_user_id', 'in', [...providerUserIds])
    .where('status', 'in', ACTIVE_CONNECTION_STATUSES)
    .execute();
  return new Map(rows.map((r) => [r.provider_user_id!, r.participant_id]));
}

/**
 * Connections of `provider` that a new connection of the participant supersedes: the
 * participant's own, and the one of the provider account `providerUserId` (the legacy Fitbit
 * user id a Google identity maps to), as long as they are active or still hold tokens.
 */
export async function findSupersededConnections(
  db: Kysely<Database>,
  provider: ProviderName,
  match: { participantId: string; providerUserId?: string | null | undefined },
): Promise<ProviderConnection[]> {
  const { participantId, providerUserId } = match;
  return db
    .selectFrom('provider_connections')
    .selectAll()
    .where('provider', '=', provider)
    .where((eb) =>
      eb.or([eb('participant_id', '=', participantId), ...(providerUserId ? [eb('provider_user_id', '=', providerUserId)] : [])]),
    )
    .where((eb) =>
      eb.or([
        eb('status', 'in', ACTIVE_CONNECTION_STATUSES),
        eb('refresh_token_enc', 'is not', null),
        eb('access_token_enc', 'is not', null),
      ]),
    )
    .orderBy('id')
    .execute();
}

/** Participants with a connection in `needs_reconsent` (the legacy API answered 410), by id. */
export async function findParticipantsNeedingReconsent(db: Kysely<Database>): Promise<string[]> {
  const rows = await db
    .selectFrom('provider_connections')
    .select('participant_id')
    .distinct()
    .where('status', '=', 'needs_reconsent')
    .orderBy('participant_id')
    .execute();
  return rows.map((r) => r.participant_id);
}

/** Tokens from a completed consent, already encrypted. */
export interface ConnectedTokens {
  participantId: string;
  provider: ProviderName;
  providerUserId: string;
  legacyUserId?: string | null;
  accessTokenEnc: string;
  refreshTokenEnc: string | null;
  keyId: string;
  accessTokenExpiresAt: Date;
  refreshTokenExpiresAt: Date | null;
  scopes: readonly string[];
}

/**
 * Stores a fresh grant as the participant's connection (creating or replacing it): status
 * `connected`, `token_version` bumped so any refresh in flight for the old tokens loses its
 * compare-and-set, intraday access unknown again. Answers the row as stored.
 */
export async function saveConnectedTokens(
  db: Kysely<Database> | Transaction<Database>,
  tokens: ConnectedTokens,
): Promise<ProviderConnection> {
  const values = {
    status: 'connected' as const,
    status_reason: null,
    provider_user_id: tokens.providerUserId,
    legacy_user_id: tokens.legacyUserId ?? null,
    access_token_enc: tokens.accessTokenEnc,
    refresh_token_enc: tokens.refreshTokenEnc,
    key_id: tokens.keyId,
    access_token_expires_at: tokens.accessTokenExpiresAt,
    refresh_token_expires_at: tokens.refreshTokenExpiresAt,
    scopes: [...tokens.scopes],
    intraday_access: null,
    connected_at: sql<Date>`now()`,
    disconnected_at: null,
    updated_at: sql<Date>`now()`,
  };
  return db
    .insertInto('provider_connections')
    .values({ ...values, participant_id: tokens.participantId, provider: tokens.provider, token_version: 1 })
    .onConflict((oc) =>
      oc.columns(['participant_id', 'provider']).doUpdateSet({
        ...values,
        token_version: sql<number>`provider_connections.token_version + 1`,
      }),
    )
    .returningAll()
    .executeTakeFirstOrThrow();
}

/**
 * Locks the connection row (`FOR UPDATE`) for a token refresh and answers it: racing fetchers
 * queue on the lock, and whoever gets it second sees the newer `token_version`. Run inside the
 * transaction that stores the refreshed tokens ({@link saveRefreshedTokens}).
 */
export async function lockConnectionForRefresh(
  trx: Transaction<Database>,
  connectionId: string,
): Promise<ProviderConnection | undefined> {
  return trx.selectFrom('provider_connections').selectAll().where('id', '=', connectionId).forUpdate().executeTakeFirst();
}

/** A refreshed grant, encrypted. Absent fields keep what is stored (Google omits the refresh token on refresh). */
export interface RefreshedTokens {
  accessTokenEnc: string;
  refreshTokenEnc?: string | undefined;
  keyId: string;
  tokenVersion: number;
  accessTokenExpiresAt: Date;
  refreshTokenExpiresAt?: Date | undefined;
  scopes?: readonly string[] | undefined;
}

/** Stores a refreshed grant under the lock taken by {@link lockConnectionForRefresh}. */
export async function saveRefreshedTokens(trx: Transaction<Database>, connectionId: string, tokens: RefreshedTokens): Promise<void> {
  await trx
    .updateTable('provider_connections')
    .set({
      access_token_enc: tokens.accessTokenEnc,
      ...(tokens.refreshTokenEnc ? { refresh_token_enc: tokens.refreshTokenEnc } : {}),
      key_id: tokens.keyId,
      token_version: tokens.tokenVersion,
      access_token_expires_at: tokens.accessTokenExpiresAt,
      ...(tokens.refreshTokenExpiresAt ? { refresh_token_expires_at: tokens.refreshTokenExpiresAt } : {}),
      ...(tokens.scopes?.length ? { scopes: [...tokens.scopes] } : {}),
      updated_at: new Date(),
    })
    .where('id', '=', connectionId)
    .execute();
}

/**
 * Only if the row still holds this token generation and is `connected`: a reconnect (which bumps
 * the version) made after the failure was judged wins over it.
 */
export interface LostConnectionGuard {
  tokenVersion: number;
}

async function markLost(
  db: Kysely<Database>,
  connectionId: string,
  status: Extract<ConnectionStatus, 'reconnect_needed' | 'needs_reconsent'>,
  reason: string,
  guard: LostConnectionGuard | undefined,
): Promise<boolean> {
  const result = await db
    .updateTable('provider_connections')
    .set({ status, status_reason: reason, updated_at: new Date() })
    .where('id', '=', connectionId)
    .$if(guard !== undefined, (qb) => qb.where('token_version', '=', guard!.tokenVersion).where('status', '=', 'connected'))
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

/**
 * Sets `reconnect_needed` with the reason shown to the coordinator: the participant must
 * consent again. Answers whether the row changed.
 */
export async function markReconnectNeeded(
  db: Kysely<Database>,
  connectionId: string,
  reason: string,
  guard?: LostConnectionGuard,
): Promise<boolean> {
  return markLost(db, connectionId, 'reconnect_needed', reason, guard);
}

/**
 * Sets `needs_reconsent` (the provider's API answered 410 Gone) with the reason shown to the
 * coordinator. Answers whether the row changed.
 */
export async function markNeedsReconsent(
  db: Kysely<Database>,
  connectionId: string,
  reason: string,
  guard?: LostConnectionGuard,
): Promise<boolean> {
  return markLost(db, connectionId, 'needs_reconsent', reason, guard);
}

/**
 * Ends a connection: tokens deleted, status set (`disconnected` by an admin, `revoked` when the
 * participant withdrew at the provider), `token_version` bumped so no refresh in flight can write
 * tokens back. Answers the row, or `undefined` if there was none.
 */
export async function endConnection(
  db: Kysely<Database>,
  participantId: string,
  provider: ProviderName,
  status: Extract<ConnectionStatus, 'disconnected' | 'revoked'>,
  reason: string | null = null,
): Promise<ProviderConnection | undefined> {
  return db
    .updateTable('provider_connections')
    .set({
      status,
      status_reason: reason,
      access_token_enc: null,
      refresh_token_enc: null,
      key_id: null,
      access_token_expires_at: null,
      refresh_token_expires_at: null,
      disconnected_at: sql<Date>`now()`,
      updated_at: sql<Date>`now()`,
      token_version: sql<number>`token_version + 1`,
    })
    .where('participant_id', '=', participantId)
    .where('provider', '=', provider)
    .returningAll()
    .executeTakeFirst();
}

/** Stores the participant's provider budget as the fetcher counted it (`resetAt` in epoch ms). */
export async function saveRateBudget(
  db: Kysely<Database>,
  connectionId: string,
  budget: { remaining: number | null; resetAt: number | null },
): Promise<void> {
  await db
    .updateTable('provider_connections')
    .set({
      rate_limit_remaining: budget.remaining,
      rate_limit_reset_at: budget.resetAt === null ? null : new Date(budget.resetAt),
    })
    .where('id', '=', connectionId)
    .execute();
}

/** Remembers that the provider refused intraday detail (403) for this connection: daily series from now on. */
export async function setIntradayRefused(db: Kysely<Database>, connectionId: string): Promise<void> {
  await db.updateTable('provider_connections').set({ intraday_access: false }).where('id', '=', connectionId).execute();
}

/** Device syncs kept per connection for learning its rhythm. */
export const DEVICE_SYNC_HISTORY = 12;

/**
 * Stores the newest device sync time the provider reported, and appends it to the connection's
 * recent syncs when it is newer than the last one kept (the oldest fall off past
 * {@link DEVICE_SYNC_HISTORY}), with the battery percent of that device when the provider
 * reported one. Answers the recent syncs, oldest first, as epoch ms.
 */
export async function recordDeviceSync(db: Kysely<Database>, connectionId: string, at: Date, batteryLevel: number | null = null): Promise<number[]> {
  const row = await db
    .updateTable('provider_connections')
    .set({
      device_last_sync_at: at,
      device_battery_level: batteryLevel,
      device_sync_times: sql<Date[]>`case
        when cardinality(device_sync_times) > 0 and device_sync_times[cardinality(device_sync_times)] >= ${at} then device_sync_times
        else (array_append(device_sync_times, ${at}::timestamptz))[greatest(1, cardinality(device_sync_times) + 2 - ${DEVICE_SYNC_HISTORY}::int):]
      end`,
    })
    .where('id', '=', connectionId)
    .returning('device_sync_times')
    .executeTakeFirst();
  return (row?.device_sync_times ?? []).map((d) => new Date(d).getTime());
}

/** Stores when the fetcher read the account's profile (its time zone), on the fetcher's clock. */
export async function recordProfileCheck(db: Kysely<Database>, connectionId: string, at: Date): Promise<void> {
  await db.updateTable('provider_connections').set({ profile_checked_at: at }).where('id', '=', connectionId).execute();
}

/** Marks a sync of the connection complete at `at` (the fetcher's clock). */
export async function markSynced(db: Kysely<Database>, connectionId: string, at: Date): Promise<void> {
  await db.updateTable('provider_connections').set({ last_sync_at: at, updated_at: at }).where('id', '=', connectionId).execute();
}

/** A page of connections holding tokens, by id, for re-encryption (`rotate-keys`). */
export async function listConnectionsWithTokens(db: Kysely<Database>, afterId: string | undefined, limit: number): Promise<ProviderConnection[]> {
  let query = db
    .selectFrom('provider_connections')
    .selectAll()
    .where((eb) => eb.or([eb('access_token_enc', 'is not', null), eb('refresh_token_enc', 'is not', null)]));
  if (afterId !== undefined) query = query.where('id', '>', afterId);
  return query.orderBy('id').limit(limit).execute();
}

/**
 * Replaces a connection's ciphertexts with the same tokens re-encrypted, only if the row still
 * holds the ones read (a refresh or reconnect meanwhile wins: its tokens are already under the
 * active key). Answers whether the row changed.
 */
export async function rewrapConnectionTokens(
  db: Kysely<Database>,
  read: Pick<ProviderConnection, 'id' | 'access_token_enc' | 'refresh_token_enc'>,
  rewrapped: { accessTokenEnc: string | null; refreshTokenEnc: string | null; keyId: string },
): Promise<boolean> {
  const result = await db
    .updateTable('provider_connections')
    .set({ access_token_enc: rewrapped.accessTokenEnc, refresh_token_enc: rewrapped.refreshTokenEnc, key_id: rewrapped.keyId })
    .where('id', '=', read.id)
    .where(sql<boolean>`access_token_enc is not distinct from ${read.access_token_enc}`)
    .where(sql<boolean>`refresh_token_enc is not distinct from ${read.refresh_token_enc}`)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}
