import type { Kysely } from 'kysely';
import { createPkcePair, type TokenCipher } from '@fitlamp/crypto';
import { connectionTokenPlace, saveConnectedTokens, upsertParticipant, type Database, type ProviderConnection } from '@fitlamp/db';
import { STREAMS, type Provider, type TokenGrant } from '@fitlamp/provider';
import type { FitbitSimulator, GoogleHealthSimulator } from '@fitlamp/simulators';

/**
 * Connects a participant to a simulated Fitbit or Google Health account without the gateway: the simulator consents
 * for `userId` on its own, the provider client exchanges the code (PKCE, every stream's scopes), and
 * the tokens are stored encrypted as the gateway's callback stores them. For tests and benchmarks
 * of what runs after a connection (token refresh, the fetcher). Answers the provider's grant and the
 * stored connection.
 */
export async function connectSimulatedParticipant(
  db: Kysely<Database>,
  options: { sim: FitbitSimulator | GoogleHealthSimulator; provider: Provider; cipher: TokenCipher; redirectUri: string; participantId: string; userId: string },
): Promise<{ grant: TokenGrant; connection: ProviderConnection }> {
  const { sim, provider, cipher, redirectUri, participantId } = options;
  // A caller connecting several at once keeps auto-consent on for all of them
  // (`{ decision: 'allow', userId: undefined }`); the account is then the one login_hint names.
  const own = sim.state.autoConsent === undefined;
  if (own) sim.state.autoConsent = { decision: 'allow', userId: options.userId, scopes: undefined };
  let grant: TokenGrant;
  try {
    const { verifier, challenge } = createPkcePair();
    const authUrl = new URL(provider.authorizationUrl({ redirectUri, state: 's', codeChallenge: challenge, scopes: provider.scopesFor(STREAMS) }));
    authUrl.searchParams.set('login_hint', options.userId);
    const res = await fetch(authUrl, { redirect: 'manual' });
    const code = new URL(res.headers.get('location')!).searchParams.get('code')!;
    grant = await provider.exchangeCode({ code, codeVerifier: verifier, redirectUri });
  } finally {
    if (own) sim.state.autoConsent = undefined;
  }
  // Google's token answer names no account: the gateway reads it from the identity (healthUserId,
  // what webhook notifications carry), and so does this.
  const providerUserId = grant.providerUserId ?? (await provider.fetchAccount({ accessToken: grant.accessToken, zones: [], scopes: grant.scopes, intraday: false })).providerUserId;
  await upsertParticipant(db, participantId);
  const connection = await saveConnectedTokens(db, {
    participantId,
    provider: provider.name,
    providerUserId,
    accessTokenEnc: cipher.encrypt(grant.accessToken, connectionTokenPlace(participantId, 'access_token_enc')),
    refreshTokenEnc: cipher.encrypt(grant.refreshToken!, connectionTokenPlace(participantId, 'refresh_token_enc')),
    keyId: cipher.activeKeyId,
    accessTokenExpiresAt: new Date(grant.accessTokenExpiresAt),
    refreshTokenExpiresAt: null,
    scopes: grant.scopes,
  });
  return { grant, connection };
}
