import { sql, type Kysely } from 'kysely';
import type { ConnectionStatus, Database, ProviderConnection, ProviderName } from './schema.ts';

/** Statuses in which a connection still holds (or should hold) tokens and owns its provider account. */
export const ACTIVE_CONNECTION_STATUSES = ['connected', 'reconnect_needed', 'needs_reconsent'] as const satisfies readonly ConnectionStatus[];

/** A participant's connection to one provider, if any. */
export async function findConnection(
  db: Kysely<Database>,
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

/**
 * The active connection that owns a provider account, if any: one provider account may feed only
 * one participant (the `provider_connections_account_key` index enforces it).
 */
export async function findActiveConnectionByAccount(
  db: Kysely<Database>,
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
export async function saveConnectedTokens(db: Kysely<Database>, tokens: ConnectedTokens): Promise<ProviderConnection> {
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
export async function scheduleStreams(db: Kysely<Database>, participantId: string, streams: readonly string[]): Promise<void> {
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
