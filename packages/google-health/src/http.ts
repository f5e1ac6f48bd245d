import { request, type Dispatcher } from 'undici';
import { ProviderError, type ProviderContext, type RateInfo } from '@fitlamp/provider';
import { arrayAt, isObject, objectAt } from './proto-json.ts';

/** How the client reaches Google; built once by `createGoogleHealthProvider`. */
export interface GoogleHttp {
  /** `https://health.googleapis.com` or a stand-in; `/v4/…` paths hang off it. */
  apiUrl: string;
  tokenUrl: string;
  revokeUrl: string;
  dispatcher?: Dispatcher;
  timeoutMs: number;
}

export interface GoogleCall {
  method: 'GET' | 'POST';
  /** Absolute URL (token, revoke), or a path appended to `apiUrl`. */
  url: string;
  /** A label for accounting and errors, e.g. `steps-reconcile`; never contains a token. */
  endpoint: string;
  /** `token` calls map RFC 6749 errors (`invalid_grant`); `data` calls map `google.rpc.Status`. */
  kind: 'token' | 'data';
  headers?: Record<string, string>;
  /** Form fields, sent `application/x-www-form-urlencoded` (token and revoke endpoints). */
  form?: Record<string, string>;
  /** A JSON body (rollups). */
  json?: unknown;
  signal?: AbortSignal;
  onRate?: (rate: RateInfo) => void;
  onRequest?: (endpoint: string) => void;
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

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * When a 429'd participant may call again. The Health API's quota is per user per minute
 * (google-health-api §5.1) and documents no `Retry-After`; one is honoured when sent (seconds or
 * an HTTP date), otherwise the next minute boundary, at least one second away.
 */
export function rateLimitResetAt(headers: Record<string, string | string[] | undefined>, now: number): number {
  const retryAfter = header(headers, 'retry-after')?.trim();
  if (retryAfter) {
    if (/^\d+$/.test(retryAfter)) return now + Number(retryAfter) * 1000;
    const at = Date.parse(retryAfter);
    if (Number.isFinite(at) && at > now) return at;
  }
  return Math.max(Math.floor(now / 60_000) * 60_000 + 60_000, now + 1000);
}

/**
 * The one way fitlamp talks to Google: sends the request, counts it, and turns every failure into
 * a `ProviderError` whose message names the endpoint, the HTTP status and Google's reason, never
 * Google's message text or anything from the request (tokens, codes).
 */
export async function callGoogle(http: GoogleHttp, call: GoogleCall): Promise<unknown> {
  const url = /^https?:\/\//.test(call.url) ? call.url : `${http.apiUrl}${call.url}`;
  const headers: Record<string, string> = { accept: 'application/json', ...call.headers };
  let body: string | undefined;
  if (call.form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(call.form).toString();
  } else if (call.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(call.json);
  }
  call.onRequest?.(call.endpoint);

  const deadline = AbortSignal.timeout(http.timeoutMs);
  const signal = call.signal ? AbortSignal.any([call.signal, deadline]) : deadline;
  let response: Dispatcher.ResponseData;
  let text: string;
  try {
    response = await request(url, {
      method: call.method,
      headers,
      ...(body !== undefined ? { body } : {}),
      ...(http.dispatcher ? { dispatcher: http.dispatcher } : {}),
      signal,
    });
    text = await response.body.text();
  } catch (err) {
    // The caller's own abort is not a provider failure: let it through as it is.
    if (call.signal?.aborted) throw call.signal.reason ?? err;
    const code = deadline.aborted ? 'timeout' : (err as { code?: unknown }).code;
    const reason = typeof code === 'string' ? code : 'network';
    throw new ProviderError('unavailable', `Google Health ${call.endpoint}: no response (${reason})`, { endpoint: call.endpoint, reason });
  }

  const now = Date.now();
  const status = response.statusCode;
  let parsed: unknown;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    parsed = undefined;
  }

  if (status >= 200 && status < 300) {
    if (parsed === undefined && text !== '') {
      throw new ProviderError('bad_response', `Google Health ${call.endpoint}: answered ${status} with a body that is not JSON`, {
        status,
        endpoint: call.endpoint,
      });
    }
    return parsed;
  }

  if (call.kind === 'token') {
    const oauth = oauthErrorOf(parsed);
    const details = { status, endpoint: call.endpoint, ...(oauth.error ? { reason: oauth.error } : {}) };
    const what = `Google OAuth ${call.endpoint} answered ${status}${oauth.error ? ` ${oauth.error}` : ''}`;
    if (oauth.error === 'invalid_grant') throw invalidGrant(call.endpoint, status, oauth);
    if (status === 429) throw new ProviderError('rate_limited', `${what}: too many token requests`, { ...details, resetAt: rateLimitResetAt(response.headers, now) });
    if (status >= 500) throw new ProviderError('unavailable', `${what}: Google's token endpoint is unavailable`, details);
    throw new ProviderError('rejected', what, details);
  }

  const { status: rpcStatus, reason, mentionsScope } = statusOf(parsed);
  const label = reason ?? rpcStatus;
  const details = { status, endpoint: call.endpoint, ...(label ? { reason: label } : {}) };
  const what = `Google Health ${call.endpoint} answered ${status}${rpcStatus ? ` ${rpcStatus}` : ''}${reason ? ` (${reason})` : ''}`;
  if (status === 401) throw new ProviderError('token_expired', `${what}: access token expired or revoked`, details);
  if (status === 403 && (reason === 'MISSING_OAUTH_SCOPE' || reason === 'ACCESS_TOKEN_SCOPE_INSUFFICIENT' || (!reason && mentionsScope))) {
    throw new ProviderError('scope_missing', `${what}: the participant did not grant the scope this data needs`, details);
  }
  if (status === 403 && reason === 'DISALLOWED_OAUTH_SCOPES') {
    // google-health-api §1.2: a grant mixing cloud-platform with googlehealth.* fails every call.
    throw new ProviderError('rejected', `${what}: the grant holds a scope Google refuses for user data; the participant must reconnect`, details);
  }
  if (status === 429) {
    const resetAt = rateLimitResetAt(response.headers, now);
    call.onRate?.({ remaining: 0, resetAt });
    throw new ProviderError('rate_limited', `${what}: per-user quota spent`, { ...details, resetAt });
  }
  if (status >= 500) throw new ProviderError('unavailable', `${what}: Google Health is unavailable`, details);
  throw new ProviderError('rejected', what, details);
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

/** A data call with the participant's access token and the context's signal and callbacks. */
export function callData(
  http: GoogleHttp,
  ctx: ProviderContext,
  call: { method: 'GET' | 'POST'; url: string; endpoint: string; json?: unknown },
): Promise<unknown> {
  return callGoogle(http, {
    ...call,
    kind: 'data',
    headers: { authorization: `Bearer ${ctx.accessToken}` },
    ...(ctx.signal ? { signal: ctx.signal } : {}),
    ...(ctx.onRate ? { onRate: ctx.onRate } : {}),
    ...(ctx.onRequest ? { onRequest: ctx.onRequest } : {}),
  });
}
