import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb } from '@fitlamp/db';
import { seedParticipant, testRedisUrl } from '@fitlamp/testing';
import { INTERNAL_ERROR_MESSAGE } from './errors.ts';
import { buildTestGateway, type GatewayUnderTest } from '../test/gateway.ts';

// How every kind of route answers input it refuses, and a failure on the server, through
// app.inject on real Postgres and Redis.

interface ErrorBody {
  error: string;
  message: string;
  issues?: Array<{ path: string; message: string }>;
}

const form = { 'content-type': 'application/x-www-form-urlencoded' };
const json = { 'content-type': 'application/json' };

describe('refused input', () => {
  let gw: GatewayUnderTest;
  beforeAll(async () => {
    gw = await buildTestGateway({ env: { GOOGLE_HEALTH_WEBHOOK_SECRET: 'Bearer a-webhook-secret-for-tests' } });
    await seedParticipant(gw.db, 'E1', { status: 'connected' });
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('answers every JSON route with one 400 body: error, message, and the issues field by field', async () => {
    const cases: Array<[string, { method?: string; headers?: Record<string, string>; body?: string }, string[]]> = [
      // A body the schema refuses.
      ['/admin/enrollments', { method: 'POST', headers: { ...gw.admin, ...json }, body: JSON.stringify({ participantId: 'U 1', provider: 'garmin' }) }, ['participantId', 'provider']],
      // A query.
      ['/admin/participants?limit=0', { headers: gw.admin }, ['limit']],
      ['/admin/deliveries?status=lost', { headers: gw.admin }, ['status']],
      // Params.
      ['/admin/participants/not%20an%20id/days?from=2026-03-01&to=2026-03-02', { headers: gw.admin }, ['id']],
      ['/admin/participants/not%20an%20id/connection', { method: 'DELETE', headers: gw.admin }, ['id']],
      ['/admin/deliveries/abc/retry', { method: 'POST', headers: gw.admin }, ['batchId']],
      // Refused before any schema: no issue names a field.
      ['/admin/enrollments', { method: 'POST', headers: { ...gw.admin, ...json }, body: '{' }, []],
      // The webhook's own refusal of a body that is not JSON.
      ['/webhooks/google-health', { method: 'POST', headers: json, body: '{"data":' }, []],
    ];
    for (const [path, init, fields] of cases) {
      const res = await gw.inject(path, init);
      const label = `${init.method ?? 'GET'} ${path}`;
      expect(res.status, label).toBe(400);
      expect(res.headers.get('content-type'), label).toMatch(/^application\/json/);
      const body = (await res.json()) as ErrorBody;
      expect(Object.keys(body).sort(), label).toEqual(['error', 'issues', 'message']);
      expect(body.message, label).not.toBe('');
      expect(body.issues!.map((i) => i.path), label).toEqual(expect.arrayContaining(fields));
      for (const field of fields) expect(body.message, label).toContain(`${field}:`);
    }
    // The provider check (fitbit is configured; this one is not) names the field it is about.
    const noGoogle = await buildTestGateway({ env: { GOOGLE_CLIENT_ID: undefined, GOOGLE_CLIENT_SECRET: undefined } });
    try {
      const res = await noGoogle.inject('/admin/enrollments', {
        method: 'POST',
        headers: { ...noGoogle.admin, ...json },
        body: JSON.stringify({ participantId: 'U1', provider: 'google-health' }),
      });
      expect(res.status).toBe(400);
      const body = (await res.json()) as ErrorBody;
      expect(body).toMatchObject({ error: 'provider_not_enabled', issues: [{ path: 'provider' }] });
      expect(body.message).toContain('enabled: fitbit');
    } finally {
      await noGoogle.close();
    }
  });

  it('changes nothing when it refuses', async () => {
    const before = await gw.db.selectFrom('participants').select('id').orderBy('id').execute();
    const res = await gw.inject('/admin/enrollments', {
      method: 'POST',
      headers: { ...gw.admin, ...json },
      body: JSON.stringify({ participantId: 'NEW1', provider: 'fitbit', expiresInHours: 0 }),
    });
    expect(res.status).toBe(400);
    expect(await gw.db.selectFrom('participants').select('id').orderBy('id').execute()).toEqual(before);
  });

  it('answers the pages a participant opens with the page that says what to do', async () => {
    const cases: Array<[string, { method?: string; headers?: Record<string, string>; body?: string }, number, string]> = [
      // An enrollment link whose query, or whose form, the schema refuses.
      ['/connect/fitbit?t=', {}, 400, 'This link is not valid'],
      ['/connect/fitbit?user_id=not%20an%20id', {}, 400, 'This link is not valid'],
      ['/connect/fitbit', { method: 'POST', headers: form, body: 't=' }, 400, 'This link is not valid'],
      ['/connect/fitbit', { method: 'POST', headers: json, body: '{"t":1}' }, 400, 'This link is not valid'],
      // An OAuth answer with a malformed state: the sign-in, named after its provider.
      ['/oauth/fitbit/callback?state=short&code=abc', {}, 400, 'This sign-in has expired or was already used'],
      ['/oauth/google-health/callback?code=abc', {}, 400, 'from Google Health to a connection in progress'],
      // Refused before any schema: a form that is not one.
      ['/connect/fitbit', { method: 'POST', headers: json, body: '{' }, 400, 'We could not understand that request'],
      // A provider the study does not use is not recognised, whatever else the request says.
      ['/connect/garmin?t=', {}, 404, 'This link is not recognised'],
      ['/oauth/garmin/callback', {}, 404, 'This link is not recognised'],
    ];
    for (const [path, init, status, text] of cases) {
      const res = await gw.inject(path, init);
      const label = `${init.method ?? 'GET'} ${path}`;
      expect(res.status, label).toBe(status);
      expect(res.headers.get('content-type'), label).toMatch(/^text\/html/);
      expect(res.headers.get('content-security-policy'), label).toContain("default-src 'none'");
      expect(await res.text(), label).toContain(text);
    }
  });

  it("answers the dashboard's pages and its Retry form with dashboard pages", async () => {
    const basic = { authorization: `Basic ${Buffer.from(`coordinator:${gw.env.ADMIN_TOKEN}`).toString('base64')}` };
    const notAnId = await gw.inject('/admin/participants/%3Cb%3E', { headers: basic });
    expect(notAnId.status).toBe(400);
    expect(await notAnId.text()).toContain('That is not a participant id');
    const retry = await gw.inject('/admin/deliveries/0/retry', { method: 'POST', headers: { ...gw.admin, ...form }, body: 'returnTo=%2Fadmin' });
    expect(retry.status).toBe(400);
    expect(retry.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await retry.text()).toContain('That retry was not understood');
  });
});

describe('failures on the server', () => {
  // A database that does not exist: every query fails with Postgres's own text, which names it.
  const missing = `fitlamp_missing_${process.pid}`;
  let gw: GatewayUnderTest;
  beforeAll(async () => {
    gw = await buildTestGateway({ db: createDb(`postgres://postgres@127.0.0.1:5432/${missing}`, { max: 1 }) });
  });
  afterAll(async () => {
    await gw?.close();
    await gw?.db.destroy();
  });

  const failureLogged = () => gw.logs.filter((l) => l.includes('"request failed"') && l.includes(missing));

  it('answers a JSON route with a generic 500 and logs the cause', async () => {
    const before = failureLogged().length;
    const res = await gw.inject('/admin/participants', { headers: gw.admin });
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({ error: 'internal', message: INTERNAL_ERROR_MESSAGE });
    expect(text).not.toContain(missing);
    expect(failureLogged().length).toBe(before + 1);
  });

  it("answers a participant's page and the dashboard with a page that says what to do, never the cause", async () => {
    // With a consent cookie, so that the callback reaches the database.
    const callback = await gw.inject(`/oauth/fitbit/callback?state=${'s'.repeat(43)}&code=abc`, { headers: { cookie: `fitlamp-consent-fitbit=${'n'.repeat(43)}` } });
    expect(callback.status).toBe(500);
    const page = await callback.text();
    expect(page).toContain('Something went wrong on our side');
    expect(page).not.toContain(missing);
    expect(page).not.toContain('does not exist');

    const basic = { authorization: `Basic ${Buffer.from(`coordinator:${gw.env.ADMIN_TOKEN}`).toString('base64')}` };
    const dashboard = await gw.inject('/admin', { headers: basic });
    expect(dashboard.status).toBe(500);
    const text = await dashboard.text();
    expect(text).toContain('The dashboard could not load');
    expect(text).not.toContain(missing);
    expect(failureLogged().length).toBeGreaterThanOrEqual(2);
  });
});

describe('Bull Board failures', () => {
  it("answer a generic 500, not Redis's error text", async () => {
    const gw = await buildTestGateway();
    const redis = new Redis(testRedisUrl);
    try {
      // A key of the wrong type where BullMQ keeps the waiting jobs: Redis answers WRONGTYPE.
      await redis.set(`${gw.env.QUEUE_PREFIX}:sync:wait`, 'not a list');
      const res = await gw.inject('/admin/queues/api/queues', { headers: gw.admin });
      expect(res.status).toBe(500);
      const text = await res.text();
      expect((JSON.parse(text) as { message: string }).message).toBe(INTERNAL_ERROR_MESSAGE);
      expect(text).not.toMatch(/WRONGTYPE|wrong kind/);
      // The details are in the log under the request id the answer carries.
      const requestId = res.headers.get('x-request-id')!;
      expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
      expect(gw.logs.some((l) => l.includes('queue dashboard request failed') && l.includes('WRONGTYPE') && l.includes(`"reqId":"${requestId}"`))).toBe(true);
    } finally {
      await redis.del(`${gw.env.QUEUE_PREFIX}:sync:wait`);
      redis.disconnect();
      await gw.close();
    }
  });
});
