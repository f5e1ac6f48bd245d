import { request, type Dispatcher } from 'undici';
import { ProviderError, type ProviderContext, type RateInfo } from './provider.ts';

/** Response headers as undici gives them (names lower-case). */
export type ResponseHeaders = Record<string, string | string[] | undefined>;

/** How a provider reaches its API; each provider builds one when it is created. */
export interface ProviderHttp {
  /** Relative call URLs hang off it (no trailing slash). */
  apiUrl: string;
  /** For tests: an undici `MockAgent` or a dispatcher pointed at a simulator. */
  dispatcher?: Dispatcher;
  /** One deadline for the whole exchange, headers and body. */
  timeoutMs: number;
}

/** An answer that arrived, whatever its status. */
export interface JsonAnswer {
  status: number;
  headers: ResponseHeaders;
  /** The parsed body; `undefined` when empty or (non-2xx only) not JSON. */
  body: unknown;
  /** When it arrived, on the caller's clock: reset instants count from here. */
  receivedAt: number;
}

/** One request, with the provider's own reading of what comes back. */
export interface JsonCall {
  /** Who is called, at the start of every error message: "Fitbit", "Google Health". */
  service: string;
  method: 'GET' | 'POST';
  /** Absolute URL, or a path appended to `apiUrl`. */
  url: string;
  /** A label for accounting and errors, e.g. `steps-intraday`; never contains a token. */
  endpoint: string;
  headers?: Record<string, string>;
  /** Form fields, sent `application/x-www-form-urlencoded` (OAuth token and revoke endpoints). */
  form?: Record<string, string>;
  /** A JSON body (ignored when `form` is given). */
  json?: unknown;
  signal?: AbortSignal;
  /** Called once, before the request is sent. */
  onRequest?: (endpoint: string) => void;
  /** The caller's clock (`ProviderContext.now`); default `Date.now`. */
  now?: () => number;
  /** The budget an answer reports, read from every answer (error or not), given to `onRate`. */
  rateOf?: (answer: JsonAnswer) => RateInfo | undefined;
  onRate?: (rate: RateInfo) => void;
  /** The provider's error for a non-2xx answer (its own error body and codes). */
  errorOf: (answer: JsonAnswer) => ProviderError;
}

/**
 * The one request skeleton of every provider: sends the call under one deadline (and the
 * caller's abort signal), reads and parses the JSON answer, stamps it with the caller's clock,
 * reports the rate budget, and turns every failure into a `ProviderError`. A 2xx answer is
 * returned; anything else goes through the provider's `errorOf`. Messages carry the service and
 * endpoint label, never the request's content (tokens, codes) or the provider's message text.
 * The caller's own abort is rethrown as it is: it is not a provider failure.
 */
export async function requestJson(http: ProviderHttp, call: JsonCall): Promise<JsonAnswer> {
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
  try {
    response = await request(url, {
      method: call.method,
      headers,
      ...(body !== undefined ? { body } : {}),
      ...(http.dispatcher ? { dispatcher: http.dispatcher } : {}),
      signal,
    });
  } catch (err) {
    if (call.signal?.aborted) throw call.signal.reason ?? err;
    const code = deadline.aborted ? 'timeout' : (err as { code?: unknown }).code;
    const reason = typeof code === 'string' ? code : 'network';
    throw new ProviderError('unavailable', `${call.service} ${call.endpoint}: no response (${typeof code === 'string' ? code : 'network error'})`, {
      endpoint: call.endpoint,
      reason,
    });
  }

  const receivedAt = call.now?.() ?? Date.now();
  const { statusCode: status } = response;
  let text: string;
  try {
    text = await response.body.text();
  } catch (err) {
    if (call.signal?.aborted) throw call.signal.reason ?? err;
    throw new ProviderError('unavailable', `${call.service} ${call.endpoint}: response body interrupted`, { status, endpoint: call.endpoint, reason: 'body' });
  }
  let parsed: unknown;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const answer: JsonAnswer = { status, headers: response.headers, body: parsed, receivedAt };

  const rate = call.rateOf?.(answer);
  if (rate) call.onRate?.(rate);

  if (status < 200 || status >= 300) throw call.errorOf(answer);
  if (parsed === undefined && text !== '') {
    throw new ProviderError('bad_response', `${call.service} ${call.endpoint}: answered ${status} with a body that is not JSON`, { status, endpoint: call.endpoint });
  }
  return answer;
}

/** A header's (first) value. */
export function headerValue(headers: ResponseHeaders, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * The instant `Retry-After` names (RFC 9110 §10.2.3: delta-seconds or an HTTP date), counted
 * from `now`; `undefined` when absent, malformed, or a date not after `now`.
 */
export function retryAfterAt(headers: ResponseHeaders, now: number): number | undefined {
  const value = headerValue(headers, 'retry-after')?.trim();
  if (!value) return undefined;
  if (/^\d+$/.test(value)) return now + Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isFinite(at) && at > now ? at : undefined;
}

/**
 * What a data call takes from the fetcher's context: the participant's bearer token, the abort
 * signal, the accounting callbacks and the clock reset instants count on.
 */
export function contextCall(ctx: ProviderContext): Pick<JsonCall, 'headers' | 'signal' | 'onRate' | 'onRequest' | 'now'> {
  return { headers: { authorization: `Bearer ${ctx.accessToken}` }, signal: ctx.signal, onRate: ctx.onRate, onRequest: ctx.onRequest, now: ctx.now };
}
