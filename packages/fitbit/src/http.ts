import { request, type Dispatcher } from 'undici';
import { ProviderError, type ProviderContext, type RateInfo } from '@fitlamp/provider';

/** How the Fitbit client reaches the API; built once by `createFitbitProvider`. */
export interface FitbitHttp {
  apiUrl: string;
  dispatcher?: Dispatcher;
  timeoutMs: number;
}

export interface FitbitCall {
  method: 'GET' | 'POST';
  /** Absolute URL, or a path appended to `apiUrl`. */
  url: string;
  /** A label for accounting and errors, e.g. `steps-intraday`; never contains a token. */
  endpoint: string;
  /** `token` calls (token, revoke) map `invalid_grant`; `data` calls report rate headers. */
  kind: 'token' | 'data';
  headers: Record<string, string>;
  /** Form fields, sent `application/x-www-form-urlencoded` (fitbit-web-api §7.7). */
  form?: Record<string, string>;
  /** Whether the request asks for intraday detail (a 403 then means no intraday access). */
  intraday?: boolean;
  signal?: AbortSignal;
  onRate?: (rate: RateInfo) => void;
  /** Clock for reset instants (Fitbit-Rate-Limit-Reset is relative). */
  now?: () => number;
  onRequest?: (endpoint: string) => void;
}

export interface FitbitResponse {
  status: number;
  body: unknown;
}

/** Fitbit's non-RFC error body `{"errors":[{"errorType": …}]}` (fitbit-web-api §1.5). */
function errorTypeOf(body: unknown): string | undefined {
  if (body && typeof body === 'object') {
    const errors = (body as { errors?: unknown }).errors;
    if (Array.isArray(errors)) {
      const first: unknown = errors[0];
      if (first && typeof first === 'object' && typeof (first as { errorType?: unknown }).errorType === 'string') {
        return (first as { errorType: string }).errorType;
      }
    }
    const rfc = (body as { error?: unknown }).error;
    if (typeof rfc === 'string') return rfc;
  }
  return undefined;
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

function numberHeader(headers: Record<string, string | string[] | undefined>, name: string): number | undefined {
  const raw = header(headers, name);
  if (raw === undefined || raw.trim() === '') return undefined;
  const n = Number(raw);
  return Number.isFinite(n) ? n : undefined;
}

function nextTopOfHour(now: number): number {
  return Math.floor(now / 3_600_000) * 3_600_000 + 3_600_000;
}

/**
 * `Fitbit-Rate-Limit-Reset` is seconds until the budget refills at the top of the hour
 * (fitbit-web-api §2). Without it, `Retry-After`, then the next top of the hour.
 */
function resetAtFrom(headers: Record<string, string | string[] | undefined>, now: number): number {
  const reset = numberHeader(headers, 'fitbit-rate-limit-reset');
  if (reset !== undefined) return now + reset * 1000;
  const retryAfter = numberHeader(headers, 'retry-after');
  if (retryAfter !== undefined) return now + retryAfter * 1000;
  return nextTopOfHour(now);
}

function rateFrom(headers: Record<string, string | string[] | undefined>, now: number): RateInfo | undefined {
  const remaining = numberHeader(headers, 'fitbit-rate-limit-remaining');
  const reset = numberHeader(headers, 'fitbit-rate-limit-reset');
  if (remaining === undefined || reset === undefined) return undefined;
  const limit = numberHeader(headers, 'fitbit-rate-limit-limit');
  return { ...(limit !== undefined ? { limit } : {}), remaining, resetAt: now + reset * 1000 };
}

/**
 * The one way fitlamp talks to Fitbit: sends the request, reports the rate budget, and turns
 * every failure into a `ProviderError`. Error messages carry the endpoint label and Fitbit's
 * `errorType`, never Fitbit's message text: it quotes the token ("Access token expired: <token>",
 * fitbit-web-api §1.5).
 */
export async function callFitbit(http: FitbitHttp, call: FitbitCall): Promise<FitbitResponse> {
  const url = /^https?:\/\//.test(call.url) ? call.url : `${http.apiUrl}${call.url}`;
  const headers: Record<string, string> = { accept: 'application/json', ...call.headers };
  let body: string | undefined;
  if (call.form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(call.form).toString();
  }
  call.onRequest?.(call.endpoint);

  // One deadline for the whole exchange, headers and body, whatever the dispatcher.
  const deadline = AbortSignal.timeout(http.timeoutMs);
  const signal = call.signal ? AbortSignal.any([call.signal, deadline]) : deadline;
  let response: Dispatcher.ResponseData;
  try {
    response = await request(url, {
      method: call.method,
      headers,
      ...(body !== undefined ? { body } : {}),
      ...(http.dispatcher ? { dispatcher: http.dispatcher } : {}),
      signal,
    });
  } catch (err) {
    // The caller's own abort is not a provider failure: let it through as it is.
    if (call.signal?.aborted) throw call.signal.reason ?? err;
    const code = deadline.aborted ? 'timeout' : (err as { code?: unknown }).code;
    throw new ProviderError('unavailable', `Fitbit ${call.endpoint}: no response (${typeof code === 'string' ? code : 'network error'})`, {
      endpoint: call.endpoint,
      reason: typeof code === 'string' ? code : 'network',
    });
  }

  const now = call.now?.() ?? Date.now();
  const { statusCode: status } = response;
  let text: string;
  try {
    text = await response.body.text();
  } catch (err) {
    if (call.signal?.aborted) throw call.signal.reason ?? err;
    throw new ProviderError('unavailable', `Fitbit ${call.endpoint}: response body interrupted`, { status, endpoint: call.endpoint, reason: 'body' });
  }
  let parsed: unknown;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    parsed = undefined;
  }

  if (call.kind === 'data') {
    const rate = rateFrom(response.headers, now);
    if (rate) call.onRate?.(rate);
  }

  if (status >= 200 && status < 300) {
    if (parsed === undefined && text !== '') {
      throw new ProviderError('bad_response', `Fitbit ${call.endpoint}: answered ${status} with a body that is not JSON`, {
        status,
        endpoint: call.endpoint,
      });
    }
    return { status, body: parsed };
  }

  const errorType = errorTypeOf(parsed);
  const details = { status, endpoint: call.endpoint, ...(errorType ? { reason: errorType } : {}) };
  const what = `Fitbit ${call.endpoint} answered ${status}${errorType ? ` ${errorType}` : ''}`;
  if (errorType === 'invalid_grant') {
    throw new ProviderError('invalid_grant', `${what}: the refresh token or code is no longer valid; the participant must reconnect`, details);
  }
  if (status === 429) {
    throw new ProviderError('rate_limited', `${what}: rate limit spent`, { ...details, resetAt: resetAtFrom(response.headers, now) });
  }
  if (status === 410) {
    throw new ProviderError('gone', `${what}: the legacy Fitbit Web API is switched off; the participant must reconnect through Google Health`, details);
  }
  if (status === 401 && call.kind === 'data') {
    throw new ProviderError('token_expired', `${what}: access token expired or revoked`, details);
  }
  if (status === 403 && errorType === 'insufficient_scope') {
    throw new ProviderError('scope_missing', `${what}: the participant did not grant the scope this data needs`, details);
  }
  if (status === 403 && call.intraday) {
    throw new ProviderError('intraday_forbidden', `${what}: the app has no intraday access; use daily resolution`, details);
  }
  if (status >= 500) throw new ProviderError('unavailable', `${what}: Fitbit is unavailable`, details);
  throw new ProviderError('rejected', `${what}`, details);
}

/** The error for a 2xx answer whose body is not shaped as fitbit-web-api §3.3 documents. */
export function badResponse(endpoint: string, what: string): ProviderError {
  return new ProviderError('bad_response', `Fitbit ${endpoint}: ${what}`, { endpoint });
}

/** A data `GET` with the participant's access token and the context's signal and callbacks. */
export async function getData(
  http: FitbitHttp,
  ctx: ProviderContext,
  url: string,
  endpoint: string,
  options: { intraday?: boolean } = {},
): Promise<unknown> {
  const res = await callFitbit(http, {
    method: 'GET',
    url,
    endpoint,
    kind: 'data',
    headers: { authorization: `Bearer ${ctx.accessToken}` },
    ...(options.intraday ? { intraday: true } : {}),
    ...(ctx.signal ? { signal: ctx.signal } : {}),
    ...(ctx.onRate ? { onRate: ctx.onRate } : {}),
    ...(ctx.onRequest ? { onRequest: ctx.onRequest } : {}),
    ...(ctx.now ? { now: ctx.now } : {}),
  });
  return res.body;
}
