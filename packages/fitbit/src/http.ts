import { contextCall, headerValue, ProviderError, requestJson, retryAfterAt } from '@fitlamp/provider';
import type { JsonAnswer, JsonCall, ProviderContext, ProviderHttp, RateInfo, ResponseHeaders } from '@fitlamp/provider';

/** How the Fitbit client reaches the API; built once by `createFitbitProvider`. */
export type FitbitHttp = ProviderHttp;

/** A call to Fitbit: the shared request, plus what Fitbit's answers are read by. */
export interface FitbitCall extends Omit<JsonCall, 'service' | 'rateOf' | 'errorOf'> {
  /** `token` calls (token, revoke) map `invalid_grant`; `data` calls report rate headers. */
  kind: 'token' | 'data';
  /** Whether the request asks for intraday detail (a 403 then means no intraday access). */
  intraday?: boolean;
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

function numberHeader(headers: ResponseHeaders, name: string): number | undefined {
  const raw = headerValue(headers, name);
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
function resetAtFrom(headers: ResponseHeaders, now: number): number {
  const reset = numberHeader(headers, 'fitbit-rate-limit-reset');
  if (reset !== undefined) return now + reset * 1000;
  return retryAfterAt(headers, now) ?? nextTopOfHour(now);
}

function rateFrom({ headers, receivedAt: now }: JsonAnswer): RateInfo | undefined {
  const remaining = numberHeader(headers, 'fitbit-rate-limit-remaining');
  const reset = numberHeader(headers, 'fitbit-rate-limit-reset');
  if (remaining === undefined || reset === undefined) return undefined;
  const limit = numberHeader(headers, 'fitbit-rate-limit-limit');
  return { ...(limit !== undefined ? { limit } : {}), remaining, resetAt: now + reset * 1000 };
}

/** Fitbit's answer to a failed call, as a `ProviderError` (fitbit-web-api §1.5, §2). */
function errorOf(call: FitbitCall, { status, headers, body, receivedAt }: JsonAnswer): ProviderError {
  const errorType = errorTypeOf(body);
  const details = { status, endpoint: call.endpoint, ...(errorType ? { reason: errorType } : {}) };
  const what = `Fitbit ${call.endpoint} answered ${status}${errorType ? ` ${errorType}` : ''}`;
  if (errorType === 'invalid_grant') {
    return new ProviderError('invalid_grant', `${what}: the refresh token or code is no longer valid; the participant must reconnect`, details);
  }
  if (status === 429) {
    return new ProviderError('rate_limited', `${what}: rate limit spent`, { ...details, resetAt: resetAtFrom(headers, receivedAt) });
  }
  if (status === 410) {
    return new ProviderError('gone', `${what}: the legacy Fitbit Web API is switched off; the participant must reconnect through Google Health`, details);
  }
  if (status === 401 && call.kind === 'data') {
    return new ProviderError('token_expired', `${what}: access token expired or revoked`, details);
  }
  if (status === 403 && errorType === 'insufficient_scope') {
    return new ProviderError('scope_missing', `${what}: the participant did not grant the scope this data needs`, details);
  }
  if (status === 403 && call.intraday) {
    return new ProviderError('intraday_forbidden', `${what}: the app has no intraday access; use daily resolution`, details);
  }
  if (status >= 500) return new ProviderError('unavailable', `${what}: Fitbit is unavailable`, details);
  return new ProviderError('rejected', `${what}`, details);
}

/**
 * The one way fitlamp talks to Fitbit: the shared request skeleton with Fitbit's rate headers
 * and error body. Error messages carry the endpoint label and Fitbit's `errorType`, never
 * Fitbit's message text: it quotes the token ("Access token expired: <token>", fitbit-web-api §1.5).
 */
export async function callFitbit(http: FitbitHttp, call: FitbitCall): Promise<FitbitResponse> {
  const { kind, intraday, ...request } = call;
  const { status, body } = await requestJson(http, {
    ...request,
    service: 'Fitbit',
    ...(kind === 'data' ? { rateOf: rateFrom } : {}),
    errorOf: (answer) => errorOf(call, answer),
  });
  return { status, body };
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
  const res = await callFitbit(http, { method: 'GET', url, endpoint, kind: 'data', ...contextCall(ctx), ...(options.intraday ? { intraday: true } : {}) });
  return res.body;
}
