import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createClock } from '../world/clock.ts';
import { api, authorizeUrl, basicAuth, connectUser, control, startSimulator, tokenRequest, type Running } from '../../test/fitbit.ts';

let run: Running;
let token: { access_token: string; refresh_token: string; user_id: string };
beforeEach(async () => {
  run = await startSimulator({ startAt: '2026-11-03T15:20:00Z' });
  token = await connectUser(run.url);
});
afterEach(async () => {
  await run.sim.app.close();
});

const profile = () => api(run.url, token.access_token, '/1/user/-/profile.json');

describe('rate limit', () => {
  it('150 per user per hour with headers on every response, 429 after, reset at the top of the hour', async () => {
    const first = await profile();
    expect(first.headers.get('fitbit-rate-limit-limit')).toBe('150');
    expect(first.headers.get('fitbit-rate-limit-remaining')).toBe('149');
    expect(first.headers.get('fitbit-rate-limit-reset')).toBe(String(40 * 60));
    for (let i = 0; i < 149; i += 1) await profile();
    const limited = await profile();
    expect(limited.status).toBe(429);
    expect(limited.body).toEqual({ errors: [{ errorType: 'system', fieldName: 'n/a', message: 'Too Many Requests' }], success: false });
    expect(limited.headers.get('fitbit-rate-limit-remaining')).toBe('0');
    expect(limited.headers.get('retry-after')).toBe(String(40 * 60));
    // Another user has their own budget.
    const other = await connectUser(run.url);
    expect((await api(run.url, other.access_token, '/1/user/-/profile.json')).status).toBe(200);
    // Not rolling: one second before the hour it is still spent, at the hour it is back.
    run.sim.clock.set(Date.parse('2026-11-03T15:59:59Z'));
    expect((await profile()).status).toBe(429);
    run.sim.clock.set(Date.parse('2026-11-03T16:00:00Z'));
    const reset = await profile();
    expect(reset.status).toBe(200);
    expect(reset.headers.get('fitbit-rate-limit-remaining')).toBe('149');
    expect(reset.headers.get('fitbit-rate-limit-reset')).toBe('3600');
    const counters = (await control(run.url, 'GET', '/counters')).body;
    expect(counters.requests[token.user_id].profile).toBe(153);
    expect(counters.rateLimited).toBe(2);
  });

  it('errors after authentication carry the headers too', async () => {
    const res = await api(run.url, token.access_token, '/1/user/-/activities/steps/date/2026-13-01/1d.json');
    expect(res.status).toBe(400);
    expect(res.headers.get('fitbit-rate-limit-remaining')).toBe('149');
  });
});

describe('faults', () => {
  it('injects 5xx a given number of times, then recovers', async () => {
    const created = await control(run.url, 'POST', '/faults', { path: '/1/user/-/profile.json', kind: 'error', status: 503, count: 2 });
    expect(created.status).toBe(201);
    expect((await profile()).status).toBe(503);
    expect((await profile()).status).toBe(503);
    expect((await profile()).status).toBe(200);
    expect((await control(run.url, 'GET', '/counters')).body.faultsApplied).toBe(2);
  });

  it('an injected 429 can name its own wait in Retry-After; without it there is none', async () => {
    await control(run.url, 'POST', '/faults', { path: '/1/user/-/profile.json', kind: 'error', status: 429, retryAfterSeconds: 20, count: 1 });
    await control(run.url, 'POST', '/faults', { path: '/1/user/-/profile.json', kind: 'error', status: 429, count: 1 });
    const named = await profile();
    expect([named.status, named.headers.get('retry-after')]).toEqual([429, '20']);
    const bare = await profile();
    expect([bare.status, bare.headers.get('retry-after')]).toEqual([429, null]);
    expect((await control(run.url, 'POST', '/faults', { kind: 'error', status: 429, retryAfterSeconds: -1 })).status).toBe(400);
  });

  it('faults can target the token endpoint and last until cleared', async () => {
    await control(run.url, 'POST', '/faults', { path: '/oauth2/token', kind: 'error', status: 500 });
    for (let i = 0; i < 3; i += 1) expect((await tokenRequest(run.url, { grant_type: 'refresh_token', refresh_token: token.refresh_token })).status).toBe(500);
    await control(run.url, 'DELETE', '/faults');
    expect((await tokenRequest(run.url, { grant_type: 'refresh_token', refresh_token: token.refresh_token })).status).toBe(200);
  });

  it('adds latency', async () => {
    run.sim.addFault({ path: '/1/user', kind: 'latency', latencyMs: 3000, count: 1 });
    const slow = fetch(`${run.url}/1/user/-/profile.json`, { headers: { authorization: `Bearer ${token.access_token}` }, signal: AbortSignal.timeout(200) });
    await expect(slow).rejects.toThrow();
    expect((await profile()).status).toBe(200);
  });

  it('drops the connection', async () => {
    run.sim.addFault({ path: '/1/user/-/devices.json', kind: 'drop', count: 1 });
    await expect(fetch(`${run.url}/1/user/-/devices.json`, { headers: { authorization: `Bearer ${token.access_token}` } })).rejects.toThrow(/fetch failed/);
    expect((await api(run.url, token.access_token, '/1/user/-/devices.json')).status).toBe(200);
  });

  it('410 Gone as a per-route fault', async () => {
    run.sim.addFault({ path: '/1.2/user', kind: 'gone' });
    expect((await api(run.url, token.access_token, '/1.2/user/-/sleep/date/2026-11-02.json')).status).toBe(410);
    expect((await profile()).status).toBe(200);
  });
});

describe('shutdown', () => {
  it('the post-shutdown world answers 410 on API and OAuth endpoints until toggled back', async () => {
    expect((await control(run.url, 'POST', '/shutdown', { gone: true })).body).toEqual({ gone: true });
    const data = await profile();
    expect(data.status).toBe(410);
    expect(data.body.errors[0].errorType).toBe('gone');
    expect((await tokenRequest(run.url, { grant_type: 'refresh_token', refresh_token: token.refresh_token })).status).toBe(410);
    expect((await fetch(authorizeUrl(run.url))).status).toBe(410);
    const revoke = await fetch(`${run.url}/oauth2/revoke`, { method: 'POST', headers: { authorization: basicAuth() }, body: new URLSearchParams({ token: token.access_token }) });
    expect(revoke.status).toBe(410);
    await control(run.url, 'POST', '/shutdown', { gone: false });
    expect((await profile()).status).toBe(200);
  });
});

describe('control API', () => {
  it('creates and lists users, validates input', async () => {
    const created = await control(run.url, 'POST', '/users', { id: 'ZONE42', zone: 'Europe/Berlin', autoSyncMinutes: 0, since: '2026-10-01' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ id: 'ZONE42', zoneHistory: [{ from: null, zone: 'Europe/Berlin' }], lastSyncAt: null, connected: false });
    const listed = (await control(run.url, 'GET', '/users')).body.users;
    expect(listed.map((u: { preset: string }) => u.preset).slice(0, 4)).toEqual(['new-york', 'traveler', 'sydney', 'kolkata']);
    expect(listed.at(-1).id).toBe('ZONE42');
    expect((await control(run.url, 'POST', '/users', { id: 'ZONE42' })).status).toBe(400);
    expect((await control(run.url, 'POST', '/users', { zone: 'Mars/Olympus' })).status).toBe(400);
    expect((await control(run.url, 'POST', '/users', { preset: 'nope' })).status).toBe(400);
  });

  it('sets, advances and freezes the clock; syncs one user or all', async () => {
    expect((await control(run.url, 'GET', '/clock')).body).toMatchObject({ now: '2026-11-03T15:20:00.000Z', frozen: true });
    expect((await control(run.url, 'POST', '/clock', { advanceMs: 60_000 })).body.now).toBe('2026-11-03T15:21:00.000Z');
    expect((await control(run.url, 'POST', '/clock', { set: '2026-11-04T00:00:00Z' })).body.now).toBe('2026-11-04T00:00:00.000Z');
    expect((await control(run.url, 'POST', '/clock', { set: 'yesterday' })).status).toBe(400);
    const kolkata = run.sim.world.users.find((u) => u.preset === 'kolkata');
    const one = await control(run.url, 'POST', '/sync', { userId: kolkata?.id });
    expect(one.body.users).toEqual([kolkata?.id]);
    const all = await control(run.url, 'POST', '/sync', {});
    expect(all.body.users).toHaveLength(4);
    const listed = (await control(run.url, 'GET', '/users')).body.users;
    expect(listed.find((u: { id: string }) => u.id === kolkata?.id).lastSyncAt).toBe('2026-11-04T00:00:00.000Z');
    expect((await control(run.url, 'POST', '/sync', { userId: 'NOBODY' })).status).toBe(404);
  });

  it('counts tokens issued', async () => {
    await tokenRequest(run.url, { grant_type: 'refresh_token', refresh_token: token.refresh_token });
    const counters = (await control(run.url, 'GET', '/counters')).body;
    expect(counters).toMatchObject({ accessTokensIssued: 2, refreshTokensIssued: 2, refreshTokenReuse: 0 });
  });
});

describe("a caller's clock", () => {
  it('drives the simulator instead of its own (startAt ignored): the hourly window follows it', async () => {
    const clock = createClock({ startAt: Date.parse('2026-11-03T15:50:00Z') });
    const own = await startSimulator({ clock, startAt: '2026-11-03T15:20:00Z' });
    try {
      expect(own.sim.clock).toBe(clock);
      const t = await connectUser(own.url);
      const first = await api(own.url, t.access_token, '/1/user/-/profile.json');
      expect(first.headers.get('fitbit-rate-limit-reset')).toBe(String(10 * 60));
      clock.advance(5 * 60_000);
      const later = await api(own.url, t.access_token, '/1/user/-/profile.json');
      expect(later.headers.get('fitbit-rate-limit-reset')).toBe(String(5 * 60));
    } finally {
      await own.sim.app.close();
    }
  });
});
