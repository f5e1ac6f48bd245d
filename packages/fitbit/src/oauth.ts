import { ProviderError, type AccountInfo, type AuthorizationRequest, type ProviderContext, type StreamName, type TokenGrant } from '@fitlamp/provider';
import { badResponse, callFitbit, getData, type FitbitHttp } from './http.ts';

/** Client credentials: Server apps send them as HTTP Basic even with PKCE (fitbit-web-api §1.2). */
export interface FitbitClient {
  clientId: string;
  clientSecret: string;
}

/**
 * The Fitbit scope each stream needs (fitbit-web-api §1.7, §3.1). HRV rides on `heartrate`;
 * devices on `settings`.
 */
export const STREAM_SCOPES: Record<StreamName, string> = {
  steps: 'activity',
  heart_rate: 'heartrate',
  resting_heart_rate: 'heartrate',
  sleep: 'sleep',
  spo2: 'oxygen_saturation',
  hrv: 'heartrate',
  breathing_rate: 'respiratory_rate',
  skin_temperature: 'temperature',
  active_zone_minutes: 'activity',
  exercise: 'activity',
  device: 'settings',
};

/** Scopes to request for `streams`, plus `profile` (the account's id and time zone). */
export function scopesFor(streams: readonly StreamName[]): string[] {
  return [...new Set(['profile', ...streams.map((s) => STREAM_SCOPES[s])])];
}

/** Streams whose scope the participant did not grant (the consent page lets them untick any). */
export function streamsMissingScope(granted: readonly string[], streams: readonly StreamName[]): StreamName[] {
  const have = new Set(granted);
  return streams.filter((s) => !have.has(STREAM_SCOPES[s]));
}

/**
 * The consent page URL. `code_challenge_method` defaults to `plain` when omitted, so S256 is
 * sent explicitly (fitbit-web-api §1.2).
 */
export function authorizationUrl(authorizeUrl: string, clientId: string, req: AuthorizationRequest): string {
  const url = new URL(authorizeUrl);
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('client_id', clientId);
  url.searchParams.set('redirect_uri', req.redirectUri);
  url.searchParams.set('scope', req.scopes.join(' '));
  url.searchParams.set('state', req.state);
  url.searchParams.set('code_challenge', req.codeChallenge);
  url.searchParams.set('code_challenge_method', 'S256');
  // Always ask: an account that already authorised the app would otherwise be connected silently,
  // without the person at the keyboard seeing whose account it is (fitbit-web-api §1.2).
  url.searchParams.set('prompt', 'consent');
  return url.toString();
}

function basicAuth(client: FitbitClient): string {
  return `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString('base64')}`;
}

/** Parses the token response (fitbit-web-api §1.3); `scope` lists only what was granted. */
function parseGrant(body: unknown, endpoint: string, now: number): TokenGrant {
  const b = (body ?? {}) as Record<string, unknown>;
  const expiresIn = Number(b.expires_in);
  if (typeof b.access_token !== 'string' || b.access_token === '' || !Number.isFinite(expiresIn)) {
    throw badResponse(endpoint, 'token response without access_token or expires_in');
  }
  return {
    accessToken: b.access_token,
    ...(typeof b.refresh_token === 'string' && b.refresh_token !== '' ? { refreshToken: b.refresh_token } : {}),
    accessTokenExpiresAt: now + expiresIn * 1000,
    scopes: typeof b.scope === 'string' ? b.scope.split(/\s+/).filter(Boolean) : [],
    ...(typeof b.user_id === 'string' && b.user_id !== '' ? { providerUserId: b.user_id } : {}),
  };
}

async function tokenCall(http: FitbitHttp, client: FitbitClient, endpoint: string, form: Record<string, string>): Promise<TokenGrant> {
  const started = Date.now();
  const res = await callFitbit(http, {
    method: 'POST',
    url: '/oauth2/token',
    endpoint,
    kind: 'token',
    headers: { authorization: basicAuth(client) },
    form,
  });
  return parseGrant(res.body, endpoint, started);
}

/** Exchanges an authorization code (valid 10 minutes) with its PKCE verifier for tokens. */
export function exchangeCode(
  http: FitbitHttp,
  client: FitbitClient,
  input: { code: string; codeVerifier: string; redirectUri: string },
): Promise<TokenGrant> {
  return tokenCall(http, client, 'oauth2-token', {
    grant_type: 'authorization_code',
    code: input.code,
    redirect_uri: input.redirectUri,
    code_verifier: input.codeVerifier,
    client_id: client.clientId,
  });
}

/**
 * Spends a refresh token (single use: the answer carries its successor, fitbit-web-api §1.4).
 * A used or revoked one fails with `invalid_grant`.
 */
export function refreshToken(http: FitbitHttp, client: FitbitClient, token: string): Promise<TokenGrant> {
  return tokenCall(http, client, 'oauth2-refresh', { grant_type: 'refresh_token', refresh_token: token });
}

/**
 * Revokes every token of the user and app (fitbit-web-api §1.8). A token Fitbit already
 * considers invalid (400/401 with `invalid_token`/`invalid_grant`/`expired_token`), or an API that
 * is switched off (410), leaves nothing to revoke: that counts as revoked.
 */
export async function revokeToken(http: FitbitHttp, client: FitbitClient, token: string): Promise<void> {
  try {
    await callFitbit(http, {
      method: 'POST',
      url: '/oauth2/revoke',
      endpoint: 'oauth2-revoke',
      kind: 'token',
      headers: { authorization: basicAuth(client) },
      form: { token },
    });
  } catch (err) {
    if (!(err instanceof ProviderError)) throw err;
    if (err.code === 'invalid_grant' || err.code === 'gone') return;
    const reason = err.details.reason;
    if (
      (err.details.status === 400 || err.details.status === 401) &&
      (reason === undefined || reason === 'invalid_token' || reason === 'expired_token')
    ) {
      return;
    }
    throw err;
  }
}

/** The account's encoded id and current IANA zone (`GET /1/user/-/profile.json`, fitbit-web-api §3.3). */
export async function fetchAccount(http: FitbitHttp, ctx: ProviderContext): Promise<AccountInfo> {
  const endpoint = 'profile';
  const body = await getData(http, ctx, '/1/user/-/profile.json', endpoint);
  const user = (body as { user?: { encodedId?: unknown; timezone?: unknown } } | undefined)?.user;
  if (!user || typeof user.encodedId !== 'string' || user.encodedId === '') throw badResponse(endpoint, 'profile without user.encodedId');
  return {
    providerUserId: user.encodedId,
    ...(typeof user.timezone === 'string' && user.timezone !== '' ? { timeZone: user.timezone } : {}),
  };
}
