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
  sim.state.autoConsent = { decision: 'allow', userId: options.userId, scopes: undefined };
  let grant: TokenGrant;
  try {
    const { verifier, challenge } = createPkcePair();
    const authUrl = provider.authorizationUrl({ redirectUri, state: 's', codeChallenge: challenge, scopes: provider.scopesFor(STREAMS) });
    const res = await fetch(authUrl, { redirect: 'manual' });
    const code = new URL(res.headers.get('location')!).searchParams.get('code')!;
    grant = await provider.exchangeCode({ code, codeVerifier: verifier, redirectUri });
  } finally {
    sim.state.autoConsent = undefined;
  }
  // Google's token response names no user: as the gateway's callback does, the account's id
  // (Google Health's healthUserId, what its webhooks carry) comes from the provider's account call.
  const providerUserId =
    grant.providerUserId ?? (await provider.fetchAccount({ accessToken: grant.accessToken, zones: [], scopes: grant.scopes, intraday: false })).providerUserId;
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
