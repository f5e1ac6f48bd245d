import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MockAgent } from 'undici';
import { addDays, daysBetween, ProviderError, STREAMS, type ProviderContext, type RateInfo } from '@fitlamp/provider';
import { createFitbitProvider } from './fitbit-provider.ts';

const API = 'https://api.fitbit.test';
let agent: MockAgent;
beforeEach(() => {
  agent = new MockAgent();
  agent.disableNetConnect();
});
afterEach(async () => {
  await agent.close();
});

const provider = () => createFitbitProvider({ clientId: 'c', clientSecret: 's', apiUrl: API, dispatcher: agent });
const rateHeaders = { 'fitbit-rate-limit-limit': '150', 'fitbit-rate-limit-remaining': '97', 'fitbit-rate-limit-reset': '600' };

function context(over: Partial<ProviderContext> = {}) {
  const requests: string[] = [];
  const rates: RateInfo[] = [];
  const ctx: ProviderContext = {
    accessToken: 'tok',
    zones: [{ zone: 'America/New_York', validFrom: 0 }],
    scopes: [],
    intraday: true,
    onRequest: (e) => requests.push(e),
    onRate: (r) => rates.push(r),
    ...over,
  };
  return { ctx, requests, rates };
}

async function caught(p: Promise<unknown>): Promise<ProviderError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ProviderError);
    return err as ProviderError;
  }
  throw new Error('expected a ProviderError');
}

describe('planRequests', () => {
  const p = createFitbitProvider({ clientId: 'c', clientSecret: 's' });
  const year = daysBetween('2026-01-01', '2026-12-31');

  it('asks intraday streams one day per request, and falls back to ranges without intraday', () => {
    expect(p.planRequests('steps', ['2026-10-02', '2026-10-01'], { intraday: true })).toEqual([
      { stream: 'steps', days: ['2026-10-01'], cost: 1, intraday: true },
      { stream: 'steps', days: ['2026-10-02'], cost: 1, intraday: true },
    ]);
    expect(p.planRequests('steps', year, { intraday: false })).toEqual([{ stream: 'steps', days: year, cost: 1, intraday: false }]);
    expect(p.planRequests('heart_rate', year.slice(0, 3), { intraday: true })).toHaveLength(3);
    expect(p.planRequests('heart_rate', year, { intraday: false })).toEqual([{ stream: 'heart_rate', days: year, cost: 0, intraday: false }]);
  });

  it('uses each endpoint’s maximum range', () => {
    const count = (stream: (typeof STREAMS)[number]) => p.planRequests(stream, year, { intraday: true }).length;
    expect(count('resting_heart_rate')).toBe(1); // 1 year
    expect(count('active_zone_minutes')).toBe(1); // 1095 days
    expect(count('sleep')).toBe(4); // 100 days
    for (const s of ['hrv', 'breathing_rate', 'skin_temperature', 'spo2', 'exercise'] as const) expect(count(s)).toBe(13); // 30 days
    expect(count('device')).toBe(1);
    const sleep = p.planRequests('sleep', year, { intraday: true });
    expect(sleep[0]!.days).toHaveLength(100);
    expect(sleep.flatMap((r) => r.days)).toEqual(year);
  });

  it('spans gaps between sparse days within one range and lists only the days asked', () => {
    expect(p.planRequests('hrv', ['2026-01-01', '2026-01-20', '2026-01-30', '2026-01-31'], { intraday: true })).toEqual([
      { stream: 'hrv', days: ['2026-01-01', '2026-01-20', '2026-01-30'], cost: 1, intraday: false },
      { stream: 'hrv', days: ['2026-01-31'], cost: 1, intraday: false },
    ]);
    expect(p.planRequests('sleep', [], { intraday: true })).toEqual([]);
  });
});

describe('fetch', () => {
  it('steps intraday: one request per day at 1-minute detail, a result for every day, rate reported', async () => {
    const pool = agent.get(API);
    pool
      .intercept({ path: '/1/user/-/activities/steps/date/2026-10-20/1d/1min.json' })
      .reply(200, { 'activities-steps': [{ dateTime: '2026-10-20', value: '12' }], 'activities-steps-intraday': { dataset: [{ time: '08:00:00', value: 0 }, { time: '08:01:00', value: 12 }], datasetInterval: 1, datasetType: 'minute' } }, { headers: rateHeaders });
    const { ctx, requests, rates } = context();
    const results = await provider().fetch({ stream: 'steps', days: ['2026-10-20'], cost: 1, intraday: true }, ctx);
    expect(results).toHaveLength(1);
    expect(results[0]!.records.map((r) => [new Date(r.event.timestamp).toISOString(), r.event.data.value])).toEqual([['2026-10-20T12:01:00.000Z', 12]]);
    expect(requests).toEqual(['steps-intraday']);
    expect(rates).toHaveLength(1);
    expect(rates[0]).toMatchObject({ limit: 150, remaining: 97 });
  });

  it('maps 403 insufficient_permissions on intraday to intraday_forbidden, then the daily fallback works', async () => {
    const pool = agent.get(API);
    pool
      .intercept({ path: '/1/user/-/activities/heart/date/2026-10-20/1d/1min.json' })
      .reply(403, { errors: [{ errorType: 'insufficient_permissions', message: 'API client is not authorized by Fitbit to access the resource requested.' }], success: false });
    const { ctx } = context();
    const err = await caught(provider().fetch({ stream: 'heart_rate', days: ['2026-10-20'], cost: 1, intraday: true }, ctx));
    expect(err.code).toBe('intraday_forbidden');

    const p = provider();
    const days = ['2026-10-19', '2026-10-20'];
    pool.intercept({ path: '/1/user/-/activities/steps/date/2026-10-19/2026-10-20.json' }).reply(200, {
      'activities-steps': [{ dateTime: '2026-10-19', value: '2504' }, { dateTime: '2026-10-20', value: '0' }],
    });
    const fallback = context({ intraday: false });
    const [plan] = p.planRequests('steps', days, { intraday: false });
    const steps = await p.fetch(plan!, fallback.ctx);
    expect(steps.map((r) => [r.day, r.records.map((x) => x.event.data.value)])).toEqual([
      ['2026-10-19', [2504]],
      ['2026-10-20', []],
    ]);
    // Heart rate has no daily series: every day answered empty, no request spent.
    const [hrPlan] = p.planRequests('heart_rate', days, { intraday: false });
    expect(await p.fetch(hrPlan!, fallback.ctx)).toEqual(days.map((day) => ({ day, records: [] })));
    expect(fallback.requests).toEqual(['steps-daily']);
  });

  it('sleep: one range request, records on the wake date, empty days kept, pending means retry', async () => {
    const pool = agent.get(API);
    pool.intercept({ path: '/1.2/user/-/sleep/date/2026-10-15/2026-10-17.json' }).reply(200, {
      sleep: [
        {
          dateOfSleep: '2026-10-16',
          logId: 1,
          isMainSleep: true,
          startTime: '2026-10-15T23:58:30.000',
          levels: { data: [{ dateTime: '2026-10-15T23:58:30.000', level: 'wake', seconds: 1080 }, { dateTime: '2026-10-16T00:16:30.000', level: 'light', seconds: 2400 }], shortData: [] },
        },
      ],
      summary: {},
    });
    const { ctx, requests } = context();
    const results = await provider().fetch({ stream: 'sleep', days: ['2026-10-15', '2026-10-16', '2026-10-17'], cost: 1, intraday: false }, ctx);
    expect(results.map((r) => [r.day, r.records.length])).toEqual([
      ['2026-10-15', 0],
      ['2026-10-16', 2],
      ['2026-10-17', 0],
    ]);
    expect(requests).toEqual(['sleep-range']);

    pool.intercept({ path: '/1.2/user/-/sleep/date/2026-10-18/2026-10-18.json' }).reply(200, { meta: { retryDuration: 3000, state: 'pending' } });
    const pending = await caught(provider().fetch({ stream: 'sleep', days: ['2026-10-18'], cost: 1, intraday: false }, ctx));
    expect(pending.code).toBe('unavailable');
  });

  it('exercise: follows pagination.next, counting each page, and stops past the last day', async () => {
    const pool = agent.get(API);
    const walk = (day: string, logId: number) => ({ activityName: 'Walk', duration: 600000, logId, startTime: `${day}T12:00:00.000-04:00` });
    pool.intercept({ path: '/1/user/-/activities/list.json?afterDate=2026-10-09&sort=asc&limit=100&offset=0' }).reply(200, {
      activities: [walk('2026-10-09', 1), walk('2026-10-10', 2)],
      pagination: { afterDate: '2026-10-09', limit: 2, next: `${API}/1/user/-/activities/list.json?offset=2&limit=2&sort=asc&afterDate=2026-10-09`, offset: 0, previous: '', sort: 'asc' },
    });
    pool.intercept({ path: '/1/user/-/activities/list.json?offset=2&limit=2&sort=asc&afterDate=2026-10-09' }).reply(200, {
      activities: [walk('2026-10-11', 3), walk('2026-10-13', 4)],
      pagination: { next: `${API}/1/user/-/activities/list.json?offset=4&limit=2&sort=asc&afterDate=2026-10-09`, previous: '', sort: 'asc' },
    });
    const { ctx, requests } = context();
    const results = await provider().fetch({ stream: 'exercise', days: ['2026-10-10', '2026-10-11', '2026-10-12'], cost: 1, intraday: false }, ctx);
    expect(results.map((r) => [r.day, r.records.map((x) => x.event.data.log_id)])).toEqual([
      ['2026-10-10', [2]],
      ['2026-10-11', [3]],
      ['2026-10-12', []],
    ]);
    expect(requests).toEqual(['activities-list', 'activities-list']);
  });

  it('refuses a pagination.next that would send the token to another host', async () => {
    agent.get(API).intercept({ path: /activities\/list\.json/ }).reply(200, {
      activities: [{ activityName: 'Run', duration: 1000, logId: 1, startTime: '2026-10-10T08:00:00.000-04:00' }],
      pagination: { next: 'https://evil.example/1/user/-/activities/list.json?offset=1' },
    });
    const err = await caught(provider().fetch({ stream: 'exercise', days: ['2026-10-10', '2026-10-11'], cost: 1, intraday: false }, context().ctx));
    expect(err.code).toBe('bad_response');
  });

  it('calls each nightly endpoint once for its range', async () => {
    const pool = agent.get(API);
    pool.intercept({ path: '/1/user/-/hrv/date/2026-10-01/2026-10-02.json' }).reply(200, { hrv: [{ dateTime: '2026-10-02', value: { dailyRmssd: 30, deepRmssd: 28 } }] });
    pool.intercept({ path: '/1/user/-/br/date/2026-10-01/2026-10-02.json' }).reply(200, { br: [] });
    pool.intercept({ path: '/1/user/-/spo2/date/2026-10-01/2026-10-02.json' }).reply(200, [{ dateTime: '2026-10-01', value: { avg: 96, min: 92, max: 99 } }]);
    pool.intercept({ path: '/1/user/-/temp/skin/date/2026-10-01/2026-10-02.json' }).reply(200, { tempSkin: [{ dateTime: '2026-10-01', value: { nightlyRelative: 0.4 }, logType: 'other_sensors' }] });
    pool.intercept({ path: '/1/user/-/activities/heart/date/2026-10-01/2026-10-02.json' }).reply(200, { 'activities-heart': [{ dateTime: '2026-10-01', value: { restingHeartRate: 58 } }] });
    pool.intercept({ path: '/1/user/-/activities/active-zone-minutes/date/2026-10-01/2026-10-02.json' }).reply(200, { 'activities-active-zone-minutes': [] });
    const { ctx, requests } = context();
    const days = ['2026-10-01', '2026-10-02'];
    const count = async (stream: (typeof STREAMS)[number]) =>
      (await provider().fetch({ stream, days, cost: 1, intraday: false }, ctx)).map((r) => r.records.length);
    expect(await count('hrv')).toEqual([0, 1]);
    expect(await count('breathing_rate')).toEqual([0, 0]);
    expect(await count('spo2')).toEqual([1, 0]);
    expect(await count('skin_temperature')).toEqual([1, 0]);
    expect(await count('resting_heart_rate')).toEqual([1, 0]);
    expect(await count('active_zone_minutes')).toEqual([0, 0]);
    expect(requests).toEqual(['hrv-range', 'breathing-rate-range', 'spo2-range', 'skin-temperature-range', 'resting-heart-rate-range', 'active-zone-minutes-range']);
  });

  it('devices: fetches, converts, and keeps the events of the requested days', async () => {
    agent.get(API).intercept({ path: '/1/user/-/devices.json' }).reply(200, [
      { battery: 'Low', batteryLevel: 20, deviceVersion: 'Inspire 3', id: '1', lastSyncTime: '2026-10-20T07:15:00.000', type: 'TRACKER' },
    ]);
    const results = await provider().fetch({ stream: 'device', days: [addDays('2026-10-20', -1), '2026-10-20'], cost: 1, intraday: false }, context().ctx);
    expect(results[0]!.records).toEqual([]);
    expect(results[1]!.records[0]!.event.data).toMatchObject({ value: 20, last_sync: '2026-10-20T11:15:00.000Z', device_type: 'Inspire 3' });
  });

  it('does not spend a request on a stream whose scope was not granted', async () => {
    const { ctx, requests } = context({ scopes: ['activity', 'profile'] });
    const err = await caught(provider().fetch({ stream: 'sleep', days: ['2026-10-01'], cost: 1, intraday: false }, ctx));
    expect(err.code).toBe('scope_missing');
    expect(requests).toEqual([]);
  });

  it('reports 429 with the reset time and 5xx as unavailable on data calls', async () => {
    const pool = agent.get(API);
    pool.intercept({ path: '/1/user/-/hrv/date/2026-10-01/2026-10-01.json' }).reply(429, { errors: [{ errorType: 'system', message: 'Too Many Requests' }] }, {
      headers: { ...rateHeaders, 'fitbit-rate-limit-remaining': '0', 'fitbit-rate-limit-reset': '90' },
    });
    const { ctx, rates } = context();
    const before = Date.now();
    const limited = await caught(provider().fetch({ stream: 'hrv', days: ['2026-10-01'], cost: 1, intraday: false }, ctx));
    expect(limited.code).toBe('rate_limited');
    expect(limited.details.resetAt! - before).toBeGreaterThanOrEqual(90_000);
    expect(limited.details.resetAt! - Date.now()).toBeLessThanOrEqual(90_000);
    expect(rates[0]!.remaining).toBe(0);

    pool.intercept({ path: '/1/user/-/hrv/date/2026-10-01/2026-10-01.json' }).reply(502, 'bad gateway');
    expect((await caught(provider().fetch({ stream: 'hrv', days: ['2026-10-01'], cost: 1, intraday: false }, ctx))).code).toBe('unavailable');
  });

  it('maps a timeout to unavailable', async () => {
    agent.get(API).intercept({ path: '/1/user/-/br/date/2026-10-01/2026-10-01.json' }).reply(200, { br: [] }).delay(500);
    const p = createFitbitProvider({ clientId: 'c', clientSecret: 's', apiUrl: API, dispatcher: agent, timeoutMs: 50 });
    const err = await caught(p.fetch({ stream: 'breathing_rate', days: ['2026-10-01'], cost: 1, intraday: false }, context().ctx));
    expect(err.code).toBe('unavailable');
  });
});
