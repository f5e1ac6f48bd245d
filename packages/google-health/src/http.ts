import { contextCall, ProviderError, requestJson, retryAfterAt } from '@fitlamp/provider';
import type { JsonAnswer, JsonCall, ProviderContext, ProviderHttp, RateInfo, ResponseHeaders } from '@fitlamp/provider';
import { arrayAt, isObject, objectAt } from './proto-json.ts';

/**
 * How the client reaches Google; built once by `createGoogleHealthProvider`. `apiUrl` is
 * `https://health.googleapis.com` or a stand-in; `/v4/…` paths hang off it.
 */
export interface GoogleHttp extends ProviderHttp {
  tokenUrl: string;
  revokeUrl: string;
}

/** A call to Google: the shared request, plus which error body its answers carry. */
export interface GoogleCall extends Omit<JsonCall, 'service' | 'rateOf' | 'errorOf'> {
  /** `token` calls map RFC 6749 errors (`invalid_grant`); `data` calls map `google.rpc.Status`. */
  kind: 'token' | 'data';
}

/** What a `google.rpc.Status` error body says (google-health-api §5.2). */
interface GoogleStatus {
  status?: string;
  reason?: string;
  mentionsScope?: boolean;
}

function statusOf(body: unknown): GoogleStatus {
  const error = objectAt(body, 'error');
  if (!error) return {};
  const info = arrayAt(error, 'details').find((d) => isObject(d) && typeof d.reason === 'string') as { reason: string } | undefined;
  return {
    ...(typeof error.status === 'string' ? { status: error.status } : {}),
    ...(info ? { reason: info.reason } : {}),
    // Generic Google 403 text for a token without the method's scope, when no ErrorInfo came.
    mentionsScope: typeof error.message === 'string' && /insufficient authentication scopes/i.test(error.message),
  };
}

/** The RFC 6749 §5.2 token-endpoint error body (google-health-api §1.4). */
function oauthErrorOf(body: unknown): { error?: string; description?: string; subtype?: string } {
  if (!isObject(body) || typeof body.error !== 'string') return {};
  return {
    error: body.error,
    ...(typeof body.error_description === 'string' ? { description: body.error_description } : {}),
    ...(typeof body.error_subtype === 'string' ? { subtype: body.error_subtype } : {}),
  };
}

/**
 * When a 429'd participant may call again. The Health API's quota is per user per minute
 * (google-health-api §5.1) and documents no `Retry-After`; one is honoured when sent (seconds or
 * an HTTP date), otherwise the next minute boundary, at least one second away.
 */
function rateLimitResetAt(headers: ResponseHeaders, now: number): number {
  return retryAfterAt(headers, now) ?? Math.max(Math.floor(now / 60_000) * 60_000 + 60_000, now + 1000);
}

/** Google's answer to a failed call, as a `ProviderError` (google-health-api §1.4, §5.2). */
function errorOf(call: GoogleCall, { status, headers, body, receivedAt }: JsonAnswer): ProviderError {
  if (call.kind === 'token') {
    const oauth = oauthErrorOf(body);
    const details = { status, endpoint: call.endpoint, ...(oauth.error ? { reason: oauth.error } : {}) };
    const what = `Google OAuth ${call.endpoint} answered ${status}${oauth.error ? ` ${oauth.error}` : ''}`;
    if (oauth.error === 'invalid_grant') return invalidGrant(call.endpoint, status, oauth);
    if (status === 429) return new ProviderError('rate_limited', `${what}: too many token requests`, { ...details, resetAt: rateLimitResetAt(headers, receivedAt) });
    if (status >= 500) return new ProviderError('unavailable', `${what}: Google's token endpoint is unavailable`, details);
    return new ProviderError('rejected', what, details);
  }

  const { status: rpcStatus, reason, mentionsScope } = statusOf(body);
  const label = reason ?? rpcStatus;
  const details = { status, endpoint: call.endpoint, ...(label ? { reason: label } : {}) };
  const what = `Google Health ${call.endpoint} answered ${status}${rpcStatus ? ` ${rpcStatus}` : ''}${reason ? ` (${reason})` : ''}`;
  if (status === 401) return new ProviderError('token_expired', `${what}: access token expired or revoked`, details);
  if (status === 403 && (reason === 'MISSING_OAUTH_SCOPE' || reason === 'ACCESS_TOKEN_SCOPE_INSUFFICIENT' || (!reason && mentionsScope))) {
    return new ProviderError('scope_missing', `${what}: the participant did not grant the scope this data needs`, details);
  }
  if (status === 403 && reason === 'DISALLOWED_OAUTH_SCOPES') {
    // google-health-api §1.2: a grant mixing cloud-platform with googlehealth.* fails every call.
    return new ProviderError('rejected', `${what}: the grant holds a scope Google refuses for user data; the participant must reconnect`, details);
  }
  if (status === 429) return new ProviderError('rate_limited', `${what}: per-user quota spent`, { ...details, resetAt: rateLimitResetAt(headers, receivedAt) });
  if (status >= 500) return new ProviderError('unavailable', `${what}: Google Health is unavailable`, details);
  return new ProviderError('rejected', what, details);
}

/** A data call that hits the per-user quota has spent the budget until the reset (§5.1). */
function rateOf({ status, headers, receivedAt }: JsonAnswer): RateInfo | undefined {
  return status === 429 ? { remaining: 0, resetAt: rateLimitResetAt(headers, receivedAt) } : undefined;
}

/**
 * The one way fitlamp talks to Google: the shared request skeleton with Google's error bodies.
 * Messages name the endpoint, the HTTP status and Google's reason, never Google's message text
 * or anything from the request (tokens, codes).
 */
export async function callGoogle(http: GoogleHttp, call: GoogleCall): Promise<unknown> {
  const { kind, ...request } = call;
  const answer = await requestJson(http, {
    ...request,
    service: 'Google Health',
    ...(kind === 'data' ? { rateOf } : {}),
    errorOf: (a) => errorOf(call, a),
  });
  return answer.body;
}

/**
 * `invalid_grant` from the token endpoint: revoked, expired, or (apps whose consent screen is
 * External + Testing) the 7-day refresh-token lifetime ran out (google-health-api §1.3, §1.4).
 * Google's body does not say which: "Token has been expired or revoked." covers both, so the
 * reason is `expired_or_revoked` and the caller compares its stored `refreshTokenExpiresAt` to
 * tell the Testing expiry apart. `error_subtype: invalid_rapt` means the account must sign in again.
 */
function invalidGrant(endpoint: string, status: number, oauth: { description?: string; subtype?: string }): ProviderError {
  const reason =
    oauth.subtype === 'invalid_rapt' ? 'invalid_rapt' : /expired or revoked/i.test(oauth.description ?? '') ? 'expired_or_revoked' : 'invalid_grant';
  const why =
    reason === 'invalid_rapt'
      ? 'Google requires the participant to sign in again'
      : 'the refresh token or code is no longer valid (revoked, unused for 6 months, or past the 7-day lifetime Google gives apps in Testing)';
  return new ProviderError('invalid_grant', `Google OAuth ${endpoint} answered ${status} invalid_grant: ${why}; the participant must reconnect`, {
    status,
    endpoint,
    reason,
  });
}

/** The error for a 2xx answer not shaped as the discovery document says. */
export function badResponse(endpoint: string, what: string): ProviderError {
  return new ProviderError('bad_response', `Google Health ${endpoint}: ${what}`, { endpoint });
}

/** A data call with the participant's access token and the context's signal, callbacks and clock. */
export function callData(
  http: GoogleHttp,
  ctx: ProviderContext,
  call: { method: 'GET' | 'POST'; url: string; endpoint: string; json?: unknown },
): Promise<unknown> {
  return callGoogle(http, { ...call, kind: 'data', ...contextCall(ctx) });
}
