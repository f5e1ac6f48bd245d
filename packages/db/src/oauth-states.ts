import { sql, type Kysely } from 'kysely';
import type { Database, OauthState, ProviderName } from './schema.ts';

/**
 * `oauth_states`: consents in progress, one row per "Connect" press (gateway). Keyed by
 * `state_hash`, the SHA-256 of the OAuth `state` (the value itself lives only in the participant's
 * browser); `code_verifier_enc` is the PKCE verifier, encrypted; `scopes_requested` what the
 * consent asked for; `browser_nonce_hash` the SHA-256 of the consent cookie's nonce (the callback
 * must come back to the browser that started); `link_issued_at` when the link that started it was
 * issued (only a link newer than a connection may replace its account). A state works once, before `expires_at`: {@link consumeOauthState} sets
 * `used_at` as it answers it. Rows are written by {@link insertOauthState} and cleared a day after
 * they expire ({@link deleteExpiredOauthStates}).
 */

/** Where a consent's PKCE verifier lives, bound into its ciphertext (`@fitlamp/crypto`'s `SecretPlace`). */
export function codeVerifierPlace(participantId: string): { table: string; column: string; participantId: string } {
  return { table: 'oauth_states', column: 'code_verifier_enc', participantId };
}

/** What an OAuth consent in progress needs: stored under the SHA-256 of the state, never the state itself. */
export interface NewOauthState {
  stateHash: string;
  participantId: string;
  provider: ProviderName;
  /** The PKCE verifier, already encrypted with the token cipher. */
  codeVerifierEnc: string;
  scopesRequested: readonly string[];
  /** SHA-256 of the nonce in the consent cookie of the browser that started it. */
  browserNonceHash: string;
  /** When the enrollment link that started it was issued; `null` when unknown (unsigned or older links). */
  linkIssuedAt: Date | null;
  expiresAt: Date;
}

/** Records a consent in progress, and clears states that expired more than a day ago. */
export async function insertOauthState(db: Kysely<Database>, state: NewOauthState): Promise<void> {
  await db
    .insertInto('oauth_states')
    .values({
      state_hash: state.stateHash,
      participant_id: state.participantId,
      provider: state.provider,
      code_verifier_enc: state.codeVerifierEnc,
      scopes_requested: [...state.scopesRequested],
      browser_nonce_hash: state.browserNonceHash,
      link_issued_at: state.linkIssuedAt,
      expires_at: state.expiresAt,
    })
    .execute();
  await deleteExpiredOauthStates(db, new Date(Date.now() - 86_400_000));
}

/**
 * Marks a state used and answers it, in one statement, only if it exists for this provider, was
 * started by the browser holding `browserNonceHash`'s nonce, is unused and unexpired: two
 * callbacks racing with the same state cannot both win, and another browser's callback leaves the
 * state to its owner. `undefined` covers unknown, expired, replayed and another browser's alike
 * (the caller shows one page for all four).
 */
export async function consumeOauthState(
  db: Kysely<Database>,
  stateHash: string,
  provider: ProviderName,
  browserNonceHash: string,
): Promise<OauthState | undefined> {
  return db
    .updateTable('oauth_states')
    .set({ used_at: sql<Date>`now()` })
    .where('state_hash', '=', stateHash)
    .where('provider', '=', provider)
    .where('browser_nonce_hash', '=', browserNonceHash)
    .where('used_at', 'is', null)
    .where('expires_at', '>', sql<Date>`now()`)
    .returningAll()
    .executeTakeFirst();
}

/** Deletes states that expired before `before`; answers how many. */
export async function deleteExpiredOauthStates(db: Kysely<Database>, before: Date): Promise<number> {
  const result = await db.deleteFrom('oauth_states').where('expires_at', '<', before).executeTakeFirst();
  return Number(result.numDeletedRows);
}
