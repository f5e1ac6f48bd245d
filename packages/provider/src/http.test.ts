import { MockAgent } from 'undici';
import { describe, expect, it, onTestFinished } from 'vitest';
import { requestJson, retryAfterAt, type JsonAnswer, type JsonCall, type ProviderHttp } from './http.ts';
import { ProviderError } from './provider.ts';

const API = 'https://api.provider.test';
/** A stand-in for the API that refuses anything not intercepted, closed when the test ends. */
function mockApi(timeoutMs = 5_000): { agent: MockAgent; http: ProviderHttp } {
  const agent = new MockAgent();
  agent.disableNetConnect();
  onTestFinished(() => agent.close());
  return { agent, http: { apiUrl: API, timeoutMs, dispatcher: agent } };
}
const call = (over: Partial<JsonCall> = {}): JsonCall => ({
  service: 'Test API',
  method: 'GET',
  url: '/v1/thing',
  endpoint: 'thing',
  errorOf: ({ status }) => new ProviderError(status === 429 ? 'rate_limited' : 'rejected', `Test API thing answered ${status}`, { status, endpoint: 'thing' }),
  ...over,
});

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('requestJson', () => {
  it('sends form or JSON bodies, counts the request, and stamps the answer with the caller’s clock', async () => {
    const { agent, http } = mockApi();
    const seen: Array<{ headers: unknown; body: unknown }> = [];
    agent
      .get(API)
      .intercept({ path: '/v1/thing', method: 'POST' })
      .reply((opts) => {
        seen.push({ headers: opts.headers, body: opts.body });
        return { statusCode: 200, data: { ok: true } };
      })
      .times(2);
    const requests: string[] = [];
    const clock = Date.parse('2031-01-02T03:04:05Z');
    const answer = await requestJson(http, call({ method: 'POST', form: { a: '1 2' }, now: () => clock, onRequest: (e) => requests.push(e) }));
    expect(answer).toMatchObject({ status: 200, body: { ok: true }, receivedAt: clock });
    await requestJson(http, call({ method: 'POST', json: { b: [1] } }));
    expect(seen.map((s) => s.body)).toEqual(['a=1+2', '{"b":[1]}']);
    expect(seen.map((s) => (s.headers as Record<string, string>)['content-type'])).toEqual(['application/x-www-form-urlencoded', 'application/json']);
    expect(requests).toEqual(['thing']);
  });

  it('reads the rate budget from every answer, errors included, before the provider maps the error', async () => {
    const { agent, http } = mockApi();
    agent.get(API).intercept({ path: '/v1/thing' }).reply(429, { error: 'slow down' }, { headers: { 'x-left': '0' } });
    const rates: unknown[] = [];
    const seen: JsonAnswer[] = [];
    const err = await caught(
      requestJson(
        http,
        call({
          now: () => 1_000,
          rateOf: (a) => {
            seen.push(a);
            return { remaining: Number(a.headers['x-left']), resetAt: a.receivedAt + 60_000 };
          },
          onRate: (r) => rates.push(r),
        }),
      ),
    );
    expect(err).toMatchObject({ code: 'rate_limited', details: { status: 429 } });
    expect(rates).toEqual([{ remaining: 0, resetAt: 61_000 }]);
    expect(seen[0]!.body).toEqual({ error: 'slow down' });
  });

  it('maps a timeout and a refused connection to unavailable, naming the service and endpoint only', async () => {
    const slow = mockApi(50);
    slow.agent.get(API).intercept({ path: '/v1/thing' }).reply(200, {}).delay(500);
    const timeout = await caught(requestJson(slow.http, call({ headers: { authorization: 'Bearer secret-token' } })));
    expect(timeout).toMatchObject({ code: 'unavailable', details: { endpoint: 'thing', reason: 'timeout' } });
    expect((timeout as Error).message).toBe('Test API thing: no response (timeout)');

    const { agent, http } = mockApi();
    agent.get(API).intercept({ path: '/v1/thing' }).replyWithError(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }));
    expect(await caught(requestJson(http, call()))).toMatchObject({ code: 'unavailable', details: { reason: 'ECONNREFUSED' } });
  });

  it('lets the caller’s own abort through as it is', async () => {
    const { agent, http } = mockApi();
    agent.get(API).intercept({ path: '/v1/thing' }).reply(200, {}).delay(500);
    const controller = new AbortController();
    const reason = new Error('shutting down');
    setTimeout(() => controller.abort(reason), 20);
    expect(await caught(requestJson(http, call({ signal: controller.signal })))).toBe(reason);
  });

  it('refuses a 2xx that is not JSON; an empty 2xx is fine', async () => {
    const { agent, http } = mockApi();
    agent.get(API).intercept({ path: '/v1/thing' }).reply(200, '<html>');
    expect(await caught(requestJson(http, call()))).toMatchObject({ code: 'bad_response', details: { status: 200, endpoint: 'thing' } });
    agent.get(API).intercept({ path: '/v1/thing' }).reply(204, '');
    expect(await requestJson(http, call())).toMatchObject({ status: 204, body: undefined });
  });
});

describe('retryAfterAt', () => {
  const now = Date.parse('2026-11-20T17:00:00Z');
  it('reads delta-seconds and HTTP dates from the given instant', () => {
    expect(retryAfterAt({ 'retry-after': '17' }, now)).toBe(now + 17_000);
    expect(retryAfterAt({ 'retry-after': ['5', '9'] }, now)).toBe(now + 5_000);
    expect(retryAfterAt({ 'retry-after': 'Fri, 20 Nov 2026 17:02:00 GMT' }, now)).toBe(now + 120_000);
  });
  it('ignores an absent, malformed or past value', () => {
    expect(retryAfterAt({}, now)).toBeUndefined();
    expect(retryAfterAt({ 'retry-after': 'soon' }, now)).toBeUndefined();
    expect(retryAfterAt({ 'retry-after': '-5' }, now)).toBeUndefined();
    expect(retryAfterAt({ 'retry-after': 'Fri, 20 Nov 2026 16:00:00 GMT' }, now)).toBeUndefined();
  });
});
