import { ProviderError, type AccountInfo, type AuthorizationRequest, type ProviderContext, type StreamName, type TokenGrant } from '@fitlamp/provider';
import { badResponse, callData, callGoogle, type GoogleHttp } from './http.ts';
import { isObject } from './proto-json.ts';

export interface GoogleClient {
  clientId: string;
  clientSecret: string;
}

const SCOPE_PREFIX = 'https://www.googleapis.com/auth/googlehealth.';

/** Google Health read scopes (google-health-api §1.2, the `.readonly` names since 2026-05-26). */
export const SCOPES = {
  activity: `${SCOPE_PREFIX}activity_and_fitness.readonly`,
  healthMetrics: `${SCOPE_PREFIX}health_metrics_and_measurements.readonly`,
  sleep: `${SCOPE_PREFIX}sleep.readonly`,
  settings: `${SCOPE_PREFIX}settings.readonly`,
} as const;

/**
 * The scope each stream's data types need (google-health-api §3.6). Devices and the account's
 * time zone ride on `settings.readonly`.
 */
export const STREAM_SCOPES: Record<StreamName, string> = {
  steps: SCOPES.activity,
  heart_rate: SCOPES.healthMetrics,
  resting_heart_rate: SCOPES.healthMetrics,
  sleep: SCOPES.sleep,
  spo2: SCOPES.healthMetrics,
  hrv: SCOPES.healthMetrics,
  breathing_rate: SCOPES.healthMetrics,
  skin_temperature: SCOPES.healthMetrics,
  active_zone_minutes: SCOPES.activity,
  exercise: SCOPES.activity,
  device: SCOPES.settings,
};

/** Never in a participant's grant: mixed with googlehealth.* it makes every call 403 (§1.2). */
export const CLOUD_PLATFORM = 'https://www.googleapis.com/auth/cloud-platform';

/** Scopes to request for `streams`, plus `settings.readonly` (the account's time zone). */
export function scopesFor(streams: readonly StreamName[]): string[] {
  return [...new Set([SCOPES.settings, ...streams.map((s) => STREAM_SCOPES[s])])];
}

/**
 * Whether `granted` covers `scope`. Grants made before Google renamed the scopes on 2026-05-26
 * carry the unsuffixed read/write name, which reads too.
 */
function grants(granted: ReadonlySet<string>, scope: string): boolean {
  return granted.has(scope) || granted.has(scope.replace(/\.readonly$/, ''));
}

/** Streams whose scope the participant unticked on the consent screen (§1.2 "partial consent"). */
export function streamsMissingScope(granted: readonly string[], streams: readonly StreamName[]): StreamName[] {
  const have = new Set(granted);
  return streams.filter((s) => !grants(have, STREAM_SCOPES[s]));
}

export function hasScope(granted: readonly string[], scope: string): boolean {
  return grants(new Set(granted), scope);
}

/**
 * The consent page URL (google-health-api §1.1): `access_type=offline` and `prompt=consent` so
 * every consent yields a refresh token, `include_granted_scopes=true` for incremental
 * authorization, and PKCE S256 (web clients still authenticate with the secret at the token
 * endpoint).
 */
export function authorizationUrl(authorizeUrl: string, clientId: string, req: AuthorizationRequest): string {
  const url = new URL(authorizeUrl);
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('client_id', clientId);
  url.searchParams.set('redirect_uri', req.redirectUri);
  url.searchParams.set('scope', req.scopes.join(' '));
  url.searchParams.set('state', req.state);
  url.searchParams.set('access_type', 'offline');
  url.searchParams.set('prompt', 'consent');
  url.searchParams.set('include_granted_scopes', 'true');
  url.searchParams.set('code_challenge', req.codeChallenge);
  url.searchParams.set('code_challenge_method', 'S256');
  return url.toString();
}

/**
 * The token response (§1.3). Google's refresh answer usually omits `refresh_token`: then the
 * grant has none and the caller keeps the one it holds. `refresh_token_expires_in` (604799 for
 * apps in Testing) becomes `refreshTokenExpiresAt`. There is no user id in it: `fetchAccount`.
 */
function parseGrant(body: unknown, endpoint: string, now: number): TokenGrant {
  const b = isObject(body) ? body : {};
  const expiresIn = Number(b.expires_in);
  if (typeof b.access_token !== 'string' || b.access_token === '' || !Number.isFinite(expiresIn)) {
    throw badResponse(endpoint, 'token response without access_token or expires_in');
  }
  const refreshExpiresIn = Number(b.refresh_token_expires_in);
  return {
    accessToken: b.access_token,
    ...(typeof b.refresh_token === 'string' && b.refresh_token !== '' ? { refreshToken: b.refresh_token } : {}),
    accessTokenExpiresAt: now + expiresIn * 1000,
    ...(b.refresh_token_expires_in !== undefined && Number.isFinite(refreshExpiresIn) ? { refreshTokenExpiresAt: now + refreshExpiresIn * 1000 } : {}),
    scopes: typeof b.scope === 'string' ? b.scope.split(/\s+/).filter(Boolean) : [],
  };
}

async function tokenCall(http: GoogleHttp, endpoint: string, form: Record<string, string>): Promise<TokenGrant> {
  const started = Date.now();
  const body = await callGoogle(http, { method: 'POST', url: http.tokenUrl, endpoint, kind: 'token', form });
  return parseGrant(body, endpoint, started);
}

/**
 * Exchanges an authorization code with its PKCE verifier. The client authenticates with
 * `client_id`/`client_secret` in the form body, as Google's codelab and web-server guide show.
 */
export function exchangeCode(
  http: GoogleHttp,
  client: GoogleClient,
  input: { code: string; codeVerifier: string; redirectUri: string },
): Promise<TokenGrant> {
  return tokenCall(http, 'oauth2-token', {
    grant_type: 'authorization_code',
    code: input.code,
    redirect_uri: input.redirectUri,
    code_verifier: input.codeVerifier,
    client_id: client.clientId,
    client_secret: client.clientSecret,
  });
}

/** Spends a refresh token; `invalid_grant` (expired, revoked, Testing 7-day limit) fails with that code. */
export function refreshToken(http: GoogleHttp, client: GoogleClient, token: string): Promise<TokenGrant> {
  return tokenCall(http, 'oauth2-refresh', {
    grant_type: 'refresh_token',
    refresh_token: token,
    client_id: client.clientId,
    client_secret: client.clientSecret,
  });
}

/**
 * Revokes the grant (`POST revoke`, form `token`; revoking either token kills both, §1.4). A
 * token Google already considers invalid (400 `invalid_token`/`invalid_grant`) counts as revoked.
 */
export async function revokeToken(http: GoogleHttp, token: string): Promise<void> {
  try {
    await callGoogle(http, { method: 'POST', url: http.revokeUrl, endpoint: 'oauth2-revoke', kind: 'token', form: { token } });
  } catch (err) {
    if (!(err instanceof ProviderError)) throw err;
    if (err.code === 'invalid_grant') return;
    if (err.details.status === 400 && (err.details.reason === undefined || err.details.reason === 'invalid_token')) return;
    throw err;
  }
}

/**
 * `users/me/identity` (any read scope; `healthUserId` is what webhooks carry, `legacyUserId` the
 * old Fitbit id for migration) and `users/me/settings` (IANA `timeZone`; needs
 * `settings.readonly`, which the participant may have unticked: then no zone).
 */
export async function fetchAccount(http: GoogleHttp, ctx: ProviderContext): Promise<AccountInfo> {
  const identity = await callData(http, ctx, { method: 'GET', url: '/v4/users/me/identity', endpoint: 'identity' });
  const healthUserId = isObject(identity) ? identity.healthUserId : undefined;
  if (typeof healthUserId !== 'string' || healthUserId === '') throw badResponse('identity', 'identity without healthUserId');
  const legacyUserId = isObject(identity) && typeof identity.legacyUserId === 'string' && identity.legacyUserId !== '' ? identity.legacyUserId : undefined;

  const timeZone = await fetchTimeZone(http, ctx);
  return { providerUserId: healthUserId, ...(timeZone ? { timeZone } : {}), ...(legacyUserId ? { legacyUserId } : {}) };
}

/**
 * The account's zone from `users/me/settings` alone: the fetcher's zone check after a device
 * sync. Through `fetchAccount` it also read the identity, which never changes (stored at
 * connect): half of the identity and settings calls, a request per new device sync (bench:
 * `pnpm bench --sections efficiency --steady-mode webhooks`). Undefined without the settings
 * scope, or when the settings name no zone.
 */
export async function fetchTimeZone(http: GoogleHttp, ctx: ProviderContext): Promise<string | undefined> {
  if (ctx.scopes.length > 0 && !hasScope(ctx.scopes, SCOPES.settings)) return undefined;
  try {
    const settings = await callData(http, ctx, { method: 'GET', url: '/v4/users/me/settings', endpoint: 'settings' });
    return isObject(settings) && typeof settings.timeZone === 'string' && settings.timeZone !== '' ? settings.timeZone : undefined;
  } catch (err) {
    if (!(err instanceof ProviderError && err.code === 'scope_missing')) throw err;
    return undefined;
  }
}
