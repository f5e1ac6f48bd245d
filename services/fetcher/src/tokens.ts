import type { Kysely } from 'kysely';
import {
  connectionTokenPlace,
  lockConnectionForRefresh,
  markNeedsReconsent,
  markReconnectNeeded,
  saveRefreshedTokens,
  type Database,
  type ProviderConnection,
  type TokenColumn,
} from '@fitlamp/db';
import type { TokenCipher } from '@fitlamp/crypto';
import { ProviderError, type Provider } from '@fitlamp/provider';

/** Refresh this long before the access token expires (RADAR-base uses the same margin). */
export const REFRESH_MARGIN_MS = 5 * 60_000;

export interface AccessToken {
  accessToken: string;
  /** The token generation it belongs to: the compare-and-set guard for the next refresh. */
  version: number;
}

/** The connection can no longer be used without the participant: the sync stops. */
export class ConnectionLostError extends Error {
  constructor(
    readonly status: 'reconnect_needed' | 'needs_reconsent' | 'revoked' | 'disconnected',
    readonly reason: string,
  ) {
    super(`connection ${status}: ${reason}`);
    this.name = 'ConnectionLostError';
  }
}

export interface TokenDeps {
  db: Kysely<Database>;
  cipher: TokenCipher;
  provider: Provider;
  now?: () => number;
}

/**
 * A usable access token: the stored one while it has more than {@link REFRESH_MARGIN_MS} left,
 * else a refreshed one. `force` refreshes after a 401 even if the expiry says otherwise.
 */
export async function getAccessToken(
  deps: TokenDeps,
  connection: ProviderConnection,
  options: { force?: boolean; seenVersion?: number } = {},
): Promise<AccessToken> {
  const now = deps.now?.() ?? Date.now();
  const expiresAt = connection.access_token_expires_at?.getTime() ?? 0;
  if (!options.force && connection.access_token_enc && expiresAt - now > REFRESH_MARGIN_MS) {
    return { accessToken: deps.cipher.decrypt(connection.access_token_enc, connectionTokenPlace(connection.participant_id, 'access_token_enc')), version: connection.token_version };
  }
  return refreshUnderLock(deps, connection.id, options.seenVersion ?? connection.token_version);
}

/**
 * One refresh per token generation (DESIGN.md principle 3). The connection row is locked
 * (`FOR UPDATE`) for the refresh, so racing fetchers queue on it; whoever gets the lock second
 * sees a newer `token_version` and uses the tokens the first one stored instead of spending the
 * single-use refresh token again. Should this process die after the provider answered but before
 * the commit, Fitbit answers an identical refresh request within two minutes with the same tokens
 * (reference §1.4), and the lock is released with the connection, so the next attempt recovers.
 */
const place = (row: ProviderConnection, column: TokenColumn) => connectionTokenPlace(row.participant_id, column);

async function refreshUnderLock(deps: TokenDeps, connectionId: string, seenVersion: number): Promise<AccessToken> {
  const { db, cipher, provider } = deps;
  // The generation the lock holder judged: the row's, which may be newer than the caller's.
  let judgedVersion = seenVersion;
  const outcome = await db.transaction().execute(async (trx): Promise<AccessToken | ConnectionLostError> => {
    const row = await lockConnectionForRefresh(trx, connectionId);
    if (row) judgedVersion = row.token_version;
    if (!row || row.status !== 'connected' || !row.refresh_token_enc) {
      return new ConnectionLostError(
        (row?.status as ConnectionLostError['status'] | undefined) ?? 'disconnected',
        row?.status_reason ?? 'no usable tokens',
      );
    }
    const now = deps.now?.() ?? Date.now();
    if (row.token_version !== seenVersion && row.access_token_enc) {
      // Someone else refreshed while we waited for the lock: their tokens are ours now.
      const expiresAt = row.access_token_expires_at?.getTime() ?? 0;
      if (expiresAt - now > 0) return { accessToken: cipher.decrypt(row.access_token_enc, place(row, 'access_token_enc')), version: row.token_version };
    }
    let grant;
    let refreshToken: string;
    try {
      refreshToken = cipher.decrypt(row.refresh_token_enc, place(row, 'refresh_token_enc'));
      grant = await provider.refreshToken(refreshToken);
    } catch (error) {
      if (error instanceof ProviderError && error.code === 'invalid_grant') {
        // We hold the lock and the version we read is the newest: no one else refreshed, so the
        // refresh token itself is dead (revoked, reused, or a Testing-mode token that expired).
        const refreshExpiresAt = row.refresh_token_expires_at?.getTime();
        if (refreshExpiresAt !== undefined && refreshExpiresAt <= now) {
          // The provider cannot tell an expired token from a revoked one ("Token has been expired
          // or revoked."); the stored expiry can: Google apps in Testing get 7-day refresh tokens
          // (google-health-api §1.3, §1.5).
          return new ConnectionLostError(
            'reconnect_needed',
            `the ${provider.displayName} refresh token expired on ${new Date(refreshExpiresAt).toISOString()} (an app in Testing mode gets 7-day refresh tokens); the participant must reconnect`,
          );
        }
        return new ConnectionLostError(
          'reconnect_needed',
          `${provider.displayName} rejected the refresh token (${error.details.reason ?? error.message}); the participant must reconnect`,
        );
      }
      if (error instanceof ProviderError && error.code === 'gone') {
        return new ConnectionLostError(
          'needs_reconsent',
          `${provider.displayName} API answered 410 Gone: the participant must consent again through the successor API`,
        );
      }
      throw error;
    }
    const version = row.token_version + 1;
    await saveRefreshedTokens(trx, connectionId, {
      accessTokenEnc: cipher.encrypt(grant.accessToken, place(row, 'access_token_enc')),
      // Google omits refresh_token on refresh: the stored one stays, re-encrypted under the active
      // key in the same update, so `key_id` is true of both columns.
      refreshTokenEnc: cipher.encrypt(grant.refreshToken ?? refreshToken, place(row, 'refresh_token_enc')),
      keyId: cipher.activeKeyId,
      tokenVersion: version,
      accessTokenExpiresAt: new Date(grant.accessTokenExpiresAt),
      refreshTokenExpiresAt: grant.refreshTokenExpiresAt ? new Date(grant.refreshTokenExpiresAt) : undefined,
      scopes: grant.scopes,
    });
    return { accessToken: grant.accessToken, version };
  });
  if (outcome instanceof ConnectionLostError) {
    // Recorded after the lock's transaction ends (a throw inside it would roll this back), and
    // only if the row still holds the generation we judged (the row's under the lock, not the
    // caller's older one, or a dead token of a newer generation would never be recorded and be
    // spent again on every sync): a reconnect meanwhile wins.
    const guard = { tokenVersion: judgedVersion };
    if (outcome.status === 'reconnect_needed') await markReconnectNeeded(db, connectionId, outcome.reason, guard);
    if (outcome.status === 'needs_reconsent') await markNeedsReconsent(db, connectionId, outcome.reason, guard);
    throw outcome;
  }
  return outcome;
}
