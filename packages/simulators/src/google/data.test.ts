import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createFitbitSimulator, type FitbitSimulator } from '../fitbit/app.ts';
import { SCOPES } from './catalogue.ts';
import { api, connectUser, control, listPath, startSimulator, type Running } from '../../test/google.ts';

const USERS = [
  { preset: 'new-york', id: 'NYC001', since: '2026-09-01', autoSyncMinutes: 0 },
  { preset: 'kolkata', id: 'KOL001', since: '2026-10-20', autoSyncMinutes: 0 },
];
const DAY = '2026-11-02';
// NYC001's local day 2026-11-02 (EST, after the 2026-11-01 fall-back).
const DAY_START = '2026-11-02T05:00:00Z';
const DAY_END = '2026-11-03T05:00:00Z';

let run: Running;
let token: string;
beforeEach(async () => {
  run = await startSimulator({ users: USERS });
  token = (await connectUser(run.url, { user: 'NYC001' })).access_token;
});
afterEach(async () => {
  await run.sim.app.close();
});

const get = (path: string) => api(run.url, token, path);
const post = (path: string, body: unknown) => api(run.url, token, path, { method: 'POST', body });
/** Syncs NYC001 now and lets sleep and nightly processing finish (SpO2 takes an hour); refreshes the token. */
async function syncAndSettle(userId = 'NYC001'): Promise<void> {
  await control(run.url, 'POST', '/sync', { userId });
  run.sim.clock.advance(61 * 60_000);
  token = (await connectUser(run.url, { user: userId })).access_token;
}
const stepsFilter = (from: string, to: string) => `steps.interval.start_time >= "${from}" AND steps.interval.start_time < "${to}"`;
const rollUpBody = (start: string, end: string) => {
  const d = (s: string) => ({ date: { year: Number(s.slice(0, 4)), month: Number(s.slice(5, 7)), day: Number(s.slice(8, 10)) } });
  return { range: { start: d(start), end: d(end) }, windowSizeDays: 1 };
};

describe('identity, settings, paired devices', () => {
  it('identity maps to the legacy Fitbit id; a numeric id of the caller works too', async () => {
    const res = await get('/v4/users/me/identity');
    expect(res.status).toBe(200);
    const healthUserId = run.sim.healthUserId('NYC001');
    expect(res.body).toEqual({ name: 'users/me/identity', healthUserId, legacyUserId: 'NYC001' });
    expect(healthUserId).toMatch(/^[1-9]\d{18}$/);
    expect((await get(`/v4/users/${healthUserId}/identity`)).status).toBe(200);
    expect((await get(`/v4/users/${run.sim.healthUserId('KOL001')}/identity`)).status).toBe(403);
  });

  it('settings carry the IANA zone and the UTC offset as a Duration', async () => {
    const res = await get('/v4/users/me/settings');
    expect(res.body).toMatchObject({ name: 'users/me/settings', timeZone: 'America/New_York', utcOffset: '-18000s' });
  });

  it('settings and paired devices need settings.readonly (403 ACCESS_TOKEN_SCOPE_INSUFFICIENT)', async () => {
    const narrow = (await connectUser(run.url, { user: 'NYC001', scopes: [SCOPES.activity] })).access_token;
    for (const path of ['/v4/users/me/settings', '/v4/users/me/pairedDevices']) {
      const res = await api(run.url, narrow, path);
      expect(res.status).toBe(403);
      expect(res.body.error.details[0]).toMatchObject({ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'ACCESS_TOKEN_SCOPE_INSUFFICIENT' });
    }
    expect((await api(run.url, narrow, '/v4/users/me/identity')).status).toBe(200);
  });

  it('paired devices: listed after the first sync, with battery and lastSyncTime in UTC', async () => {
    expect((await get('/v4/users/me/pairedDevices')).body).toEqual({});
    await control(run.url, 'POST', '/sync', { userId: 'NYC001' });
    const res = await get('/v4/users/me/pairedDevices');
    expect(res.body.pairedDevices).toHaveLength(1);
    const d = res.body.pairedDevices[0];
    expect(d).toMatchObject({ deviceType: 'TRACKER', deviceVersion: 'Charge 6', lastSyncTime: '2026-11-03T15:00:00Z' });
    expect(d.name).toMatch(new RegExp(`^users/${run.sim.healthUserId('NYC001')}/pairedDevices/\\d+$`));
    expect(Number.isInteger(d.batteryLevel)).toBe(true);
    expect(['High', 'Medium', 'Low', 'Empty']).toContain(d.batteryStatus);
    expect((await get(`/v4/users/me/pairedDevices/${d.name.split('/').pop()}`)).body).toEqual(d);
  });
});

describe('list: filters, ordering, proto3 JSON', () => {
  it('steps in a day: 1-minute intervals, newest first, int64 counts as strings, offsets as Durations', async () => {
    await syncAndSettle();
    const res = await get(listPath('steps', stepsFilter(DAY_START, DAY_END), { pageSize: '10000' }));
    expect(res.status).toBe(200);
    expect(res.body.nextPageToken).toBe('');
    const points = res.body.dataPoints;
    expect(points.length).toBeGreaterThan(100);
    const starts = points.map((p: any) => Date.parse(p.steps.interval.startTime));
    expect(starts).toEqual([...starts].sort((a, b) => b - a));
    expect(Math.min(...starts)).toBeGreaterThanOrEqual(Date.parse(DAY_START));
    expect(Math.max(...starts)).toBeLessThan(Date.parse(DAY_END));
    const p = points[0];
    expect(typeof p.steps.count).toBe('string');
    expect(p.steps.interval).toEqual({ startTime: expect.stringMatching(/^2026-11-0[23]T\d\d:\d\d:00Z$/), startUtcOffset: '-18000s', endTime: expect.any(String), endUtcOffset: '-18000s' });
    expect(p.dataSource).toMatchObject({ platform: 'FITBIT', recordingMethod: 'PASSIVELY_MEASURED', device: { displayName: 'Charge 6' } });
    expect(p).not.toHaveProperty('name');
  });

  it('civil filters select by local time; heart-rate samples by sample time', async () => {
    await syncAndSettle();
    const civil = await get(listPath('steps', `steps.interval.civil_start_time >= "${DAY}" AND steps.interval.civil_start_time < "2026-11-03"`, { pageSize: '10000' }));
    const physical = await get(listPath('steps', stepsFilter(DAY_START, DAY_END), { pageSize: '10000' }));
    expect(civil.body.dataPoints).toEqual(physical.body.dataPoints);
    const hr = await get(listPath('heart-rate', 'heart_rate.sample_time.physical_time >= "2026-11-02T17:00:00Z" AND heart_rate.sample_time.physical_time < "2026-11-02T17:10:00Z"'));
    expect(hr.body.dataPoints.length).toBeGreaterThan(10);
    for (const p of hr.body.dataPoints) {
      expect(p.heartRate.beatsPerMinute).toMatch(/^\d+$/);
      expect(p.heartRate.sampleTime.physicalTime >= '2026-11-02T17:00:00Z' && p.heartRate.sampleTime.physicalTime < '2026-11-02T17:10:00Z').toBe(true);
    }
  });

  it('sleep filters by end time (AND and OR), not by start time', async () => {
    await syncAndSettle();
    const res = await get(listPath('sleep', 'sleep.interval.end_time >= "2026-11-02T00:00:00Z" AND sleep.interval.end_time < "2026-11-04T00:00:00Z"'));
    expect(res.status).toBe(200);
    for (const p of res.body.dataPoints) expect(p.sleep.interval.endTime >= '2026-11-02T00:00:00Z').toBe(true);
    const or = await get(listPath('sleep', 'sleep.interval.end_time < "2026-10-01T00:00:00Z" OR sleep.interval.end_time >= "2026-11-02T00:00:00Z"'));
    expect(or.status).toBe(200);
    expect(or.body.dataPoints.length).toBeGreaterThan(res.body.dataPoints.length);
    const wrong = await get(listPath('sleep', 'sleep.interval.start_time >= "2026-11-02T00:00:00Z"'));
    expect(wrong.status).toBe(400);
    expect(wrong.body.error.details[0].reason).toBe('INVALID_DATA_POINT_FILTER_DATA_TYPE_MEMBER');
  });

  it.each([
    ['steps.interval.start_time > "2026-11-02T00:00:00Z"', 'INVALID_DATA_POINT_FILTER_RESTRICTION_COMPARATOR'],
    ['steps.interval.start_time >= "2026-11-02"', 'INVALID_DATA_POINT_FILTER_TIMESTAMP_FORMAT'],
    ['steps.interval.civil_start_time >= "2026-13-02"', 'INVALID_DATA_POINT_FILTER_CIVIL_DATE_TIME_FORMAT'],
    ['heart_rate.sample_time.physical_time >= "2026-11-02T00:00:00Z"', 'INVALID_DATA_POINT_FILTER_COLLECTION_MISMATCH'],
    ['steps.sample_time.physical_time >= "2026-11-02T00:00:00Z"', 'INVALID_DATA_POINT_FILTER_DATA_TYPE_MEMBER'],
    ['Steps.interval.start_time >= "2026-11-02T00:00:00Z"', 'INVALID_DATA_POINT_FILTER_DATA_TYPE_RESTRICTION'],
    ['steps.interval.start_time >= 2026-11-02T00:00:00Z', 'INVALID_DATA_POINT_FILTER_RESTRICTION_ARGUMENT'],
    ['steps.interval.start_time >= "2026-11-02T00:00:00Z" AND', 'INVALID_DATA_POINT_FILTER_UNEXPECTED_END_OF_INPUT'],
    ['steps.interval.start_time >= "2026-11-02T00:00:00Z" OR steps.interval.start_time < "2026-11-01T00:00:00Z"', 'INVALID_DATA_POINT_FILTER_EXPRESSION_STRUCTURE'],
    ['steps.interval.start_time >= "2026-11-02T00:00:00Z" AND steps.interval.civil_start_time < "2026-11-03"', 'INVALID_DATA_POINT_FILTER_MIXED_TIME_RESTRICTIONS'],
    ['steps.interval.start_time >= "2026-11-02T00:00:00Z', 'INVALID_DATA_POINT_FILTER_SYNTAX'],
  ])('invalid filter %s → 400 %s', async (filter, reason) => {
    const res = await get(listPath('steps', filter));
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 400, status: 'INVALID_ARGUMENT', details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason, domain: 'health.googleapis.com' }] });
    expect(typeof res.body.error.message).toBe('string');
  });

  it('path errors: numeric parent on a collection, snake_case or unknown type, unsupported action', async () => {
    const numeric = await get(`/v4/users/${run.sim.healthUserId('NYC001')}/dataTypes/steps/dataPoints`);
    expect(numeric.status).toBe(400);
    expect(numeric.body).toEqual({ error: { code: 400, message: 'Request contains an invalid argument.', status: 'INVALID_ARGUMENT' } });
    expect((await get('/v4/users/me/dataTypes/heart_rate/dataPoints')).body.error.details[0].reason).toBe('INVALID_DATA_TYPE_FORMAT');
    expect((await get('/v4/users/me/dataTypes/blood-pressure/dataPoints')).body.error.details[0].reason).toBe('INVALID_DATA_TYPE');
    expect((await get('/v4/users/me/dataTypes/floors/dataPoints')).body.error.details[0].reason).toBe('UNSUPPORTED_DATA_TYPE_ACTION');
    expect((await post('/v4/users/me/dataTypes/sleep/dataPoints:dailyRollUp', rollUpBody('2026-11-01', '2026-11-02'))).body.error.details[0].reason).toBe('UNSUPPORTED_DATA_TYPE_ACTION');
    expect((await get('/v4/users/me/nothing')).status).toBe(404);
  });

  it('proto3 JSON: durations, omitted defaults (processed:false while sleep is processing), "NaN" baselines', async () => {
    await control(run.url, 'POST', '/sync', { userId: 'NYC001' });
    const pending = await get(listPath('sleep', 'sleep.interval.end_time >= "2026-11-03T00:00:00Z"'));
    const main = pending.body.dataPoints.find((p: any) => p.sleep.type === 'STAGES');
    expect(main.sleep.metadata ?? {}).not.toHaveProperty('processed');
    expect(main.sleep).not.toHaveProperty('stages');
    run.sim.clock.advance(61 * 60_000);
    token = (await connectUser(run.url, { user: 'NYC001' })).access_token;
    const ready = (await get(listPath('sleep', 'sleep.interval.end_time >= "2026-11-03T00:00:00Z"'))).body.dataPoints.find((p: any) => p.sleep.type === 'STAGES');
    expect(ready.sleep.metadata).toMatchObject({ processed: true, stagesStatus: 'SUCCEEDED' });
    expect(ready.sleep.metadata).not.toHaveProperty('nap');
    expect(ready.sleep.summary.minutesAsleep).toMatch(/^\d+$/);
    expect(ready.name).toMatch(/^users\/\d+\/dataTypes\/sleep\/dataPoints\/\d+$/);

    const exercise = (await get(listPath('exercise'))).body.dataPoints[0].exercise;
    expect(exercise.activeDuration).toMatch(/^\d+s$/);
    expect(exercise.metricsSummary.steps).toMatch(/^\d+$/);
    const temps = (await get(listPath('daily-sleep-temperature-derivations', undefined, { pageSize: '100' }))).body.dataPoints.map((p: any) => p.dailySleepTemperatureDerivations);
    expect(temps.length).toBeGreaterThan(30);
    expect(temps.some((t: any) => t.baselineTemperatureCelsius === 'NaN')).toBe(true);
    expect(temps.every((t: any) => typeof t.nightlyTemperatureCelsius === 'number')).toBe(true);
  });
});

describe('paging', () => {
  it('default page size 1440 with nextPageToken; following tokens yields every point once', async () => {
    await syncAndSettle();
    const filter = 'heart_rate.sample_time.physical_time >= "2026-11-02T05:00:00Z" AND heart_rate.sample_time.physical_time < "2026-11-02T11:00:00Z"';
    const first = await get(listPath('heart-rate', filter));
    expect(first.body.dataPoints).toHaveLength(1440);
    expect(first.body.nextPageToken).not.toBe('');
    const all: string[] = [];
    let pageToken = '';
    do {
      const res = await get(listPath('heart-rate', filter, pageToken ? { pageToken } : {}));
      all.push(...res.body.dataPoints.map((p: any) => p.heartRate.sampleTime.physicalTime));
      pageToken = res.body.nextPageToken;
    } while (pageToken);
    const whole = await get(listPath('heart-rate', filter, { pageSize: '10000' }));
    expect(all).toEqual(whole.body.dataPoints.map((p: any) => p.heartRate.sampleTime.physicalTime));
    expect(new Set(all).size).toBe(all.length);
  });

  it('sleep and exercise pages hold at most 25; a token from another query is INVALID_PAGE_TOKEN', async () => {
    await syncAndSettle();
    const sleep = await get(listPath('sleep', undefined, { pageSize: '100' }));
    expect(sleep.body.dataPoints).toHaveLength(25);
    expect(sleep.body.nextPageToken).not.toBe('');
    const exercise = await get(listPath('exercise'));
    expect(exercise.body.dataPoints.length).toBeLessThanOrEqual(25);
    const mismatch = await get(listPath('sleep', 'sleep.interval.end_time >= "2026-10-01T00:00:00Z"', { pageToken: sleep.body.nextPageToken }));
    expect(mismatch.status).toBe(400);
    expect(mismatch.body.error.details[0].reason).toBe('INVALID_PAGE_TOKEN');
    expect((await get(listPath('steps', undefined, { pageSize: '-1' }))).body.error.details[0].reason).toBe('INVALID_PAGE_SIZE');
  });

  it('a point sharing the timestamp of the last point on a page is skipped (the live tie quirk); narrowing the range finds it', async () => {
    await run.sim.app.close();
    run = await startSimulator({ users: USERS, phoneUsers: ['NYC001'] });
    token = (await connectUser(run.url, { user: 'NYC001' })).access_token;
    await syncAndSettle();
    const filter = stepsFilter(DAY_START, DAY_END);
    const whole = (await get(listPath('steps', filter, { pageSize: '10000' }))).body.dataPoints;
    // Watch and phone both count most walking minutes: ties at every such minute.
    const key = (p: any) => `${p.steps.interval.startTime}|${p.dataSource.platform}`;
    const tieAt = whole.findIndex((p: any, i: number) => i > 0 && whole[i - 1].steps.interval.startTime === p.steps.interval.startTime);
    expect(tieAt).toBeGreaterThan(0);
    const paged: string[] = [];
    let pageToken = '';
    do {
      const res = await get(listPath('steps', filter, { pageSize: String(tieAt), ...(pageToken ? { pageToken } : {}) }));
      paged.push(...(res.body.dataPoints ?? []).map(key));
      pageToken = res.body.nextPageToken;
    } while (pageToken);
    const missing = whole.map(key).filter((k: string) => !paged.includes(k));
    expect(missing).toContain(key(whole[tieAt]));
    expect(missing.every((k: string) => k.endsWith('|HEALTH_CONNECT'))).toBe(true);
    const [at] = key(whole[tieAt]).split('|');
    const narrow = await get(listPath('steps', stepsFilter(at ?? '', new Date(Date.parse(at ?? '') + 60_000).toISOString().replace('.000', ''))));
    expect(narrow.body.dataPoints.map(key)).toContain(key(whole[tieAt]));
  });
});

describe('reconcile and dailyRollUp', () => {
  it('reconcile merges sources (no dataSource, dataPointName for identifiable types) and validates the family', async () => {
    await run.sim.app.close();
    run = await startSimulator({ users: USERS, phoneUsers: ['NYC001'] });
    token = (await connectUser(run.url, { user: 'NYC001' })).access_token;
    await syncAndSettle();
    const filter = stepsFilter(DAY_START, DAY_END);
    const listed = (await get(listPath('steps', filter, { pageSize: '10000' }))).body.dataPoints;
    const reconciled = (await get(listPath('steps', filter, { pageSize: '10000' }, ':reconcile'))).body.dataPoints;
    expect(listed.length).toBeGreaterThan(reconciled.length);
    expect(reconciled.every((p: any) => !('dataSource' in p))).toBe(true);
    const sum = (ps: any[]) => ps.reduce((s, p) => s + Number(p.steps.count), 0);
    const rollup = await post('/v4/users/me/dataTypes/steps/dataPoints:dailyRollUp', rollUpBody(DAY, '2026-11-03'));
    expect(rollup.body.rollupDataPoints[0].steps.countSum).toBe(String(sum(reconciled)));
    expect(sum(listed)).toBeGreaterThan(sum(reconciled));
    const sleep = (await get(listPath('sleep', undefined, {}, ':reconcile'))).body.dataPoints[0];
    expect(sleep.dataPointName).toMatch(/\/dataTypes\/sleep\/dataPoints\/\d+$/);
    const bad = await get(listPath('steps', filter, { dataSourceFamily: 'users/me/dataSourceFamilies/phones' }, ':reconcile'));
    expect(bad.body.error.details[0].reason).toBe('INVALID_DATA_POINT_DATA_SOURCE_FAMILY');
    expect((await get(listPath('steps', filter, { dataSourceFamily: 'users/me/dataSourceFamilies/google-wearables' }, ':reconcile'))).status).toBe(200);
  });

  it('dailyRollUp: civil windows, no nextPageToken, range caps, strict JSON', async () => {
    await syncAndSettle();
    const res = await post('/v4/users/me/dataTypes/steps/dataPoints:dailyRollUp', rollUpBody('2026-10-30', '2026-11-03'));
    expect(res.status).toBe(200);
    expect(res.body).not.toHaveProperty('nextPageToken');
    expect(res.body.rollupDataPoints).toHaveLength(4);
    expect(res.body.rollupDataPoints[0]).toMatchObject({ civilStartTime: { date: { year: 2026, month: 10, day: 30 } }, civilEndTime: { date: { year: 2026, month: 10, day: 31 } }, steps: { countSum: expect.stringMatching(/^\d+$/) } });
    const azm = await post('/v4/users/me/dataTypes/active-zone-minutes/dataPoints:dailyRollUp', rollUpBody(DAY, '2026-11-03'));
    expect(azm.status).toBe(200);
    const hr = await post('/v4/users/me/dataTypes/heart-rate/dataPoints:dailyRollUp', rollUpBody(DAY, '2026-11-03'));
    expect(hr.body.rollupDataPoints[0].heartRate).toEqual({ beatsPerMinuteAvg: expect.any(Number), beatsPerMinuteMin: expect.any(Number), beatsPerMinuteMax: expect.any(Number) });
    const tooLong = await post('/v4/users/me/dataTypes/heart-rate/dataPoints:dailyRollUp', rollUpBody('2026-10-01', '2026-10-20'));
    expect(tooLong.body.error.details[0].reason).toBe('INVALID_ROLLUP_QUERY_DURATION');
    const backwards = await post('/v4/users/me/dataTypes/steps/dataPoints:dailyRollUp', rollUpBody('2026-11-03', '2026-11-01'));
    expect(backwards.body.error.details[0].reason).toBe('INVALID_TIME_RANGE');
    const padded = await api(run.url, token, '/v4/users/me/dataTypes/steps/dataPoints:dailyRollUp', {
      method: 'POST',
      rawBody: '{"range":{"start":{"date":{"year":2026,"month":03,"day":1}},"end":{"date":{"year":2026,"month":3,"day":8}}}}',
    });
    expect(padded.status).toBe(400);
    expect(padded.body.error).toMatchObject({ status: 'INVALID_ARGUMENT', message: expect.stringContaining('Invalid JSON payload received.') });
  });
});

describe('the same person through the Fitbit simulator', () => {
  let fitbit: FitbitSimulator;
  let fitbitUrl: string;
  let fitbitToken: string;
  beforeEach(async () => {
    fitbit = createFitbitSimulator({ clientId: 'FB', clientSecret: 'fb-secret', redirectUris: ['http://127.0.0.1:9/cb'], appName: 'Study', seed: 'test-seed', startAt: '2026-11-03T15:00:00Z', users: USERS });
    fitbitUrl = await fitbit.app.listen({ port: 0, host: '127.0.0.1' });
    await fetch(`${fitbitUrl}/_control/auto-consent`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ decision: 'allow', userId: 'NYC001' }) });
    const auth = await fetch(`${fitbitUrl}/oauth2/authorize?client_id=FB&response_type=code&scope=activity+heartrate+sleep+profile&redirect_uri=http://127.0.0.1:9/cb`, { redirect: 'manual' });
    const code = new URL(auth.headers.get('location') ?? '').searchParams.get('code') ?? '';
    const tok = await fetch(`${fitbitUrl}/oauth2/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from('FB:fb-secret').toString('base64')}` },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: 'http://127.0.0.1:9/cb' }),
    });
    fitbitToken = ((await tok.json()) as { access_token: string }).access_token;
  });
  afterEach(async () => {
    await fitbit.app.close();
  });
  const fb = async (path: string): Promise<any> => (await fetch(`${fitbitUrl}${path}`, { headers: { authorization: `Bearer ${fitbitToken}` } })).json();

  it('profile id = legacyUserId; daily steps, resting HR, sleep, exercises and HRV match after each sync', async () => {
    expect((await fb('/1/user/-/profile.json')).user.encodedId).toBe((await get('/v4/users/me/identity')).body.legacyUserId);
    for (let round = 0; round < 2; round += 1) {
      // The same sync in both worlds (a later sync revises recent days in both).
      fitbit.clock.set(run.sim.clock.now());
      await fetch(`${fitbitUrl}/_control/sync`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ userId: 'NYC001' }) });
      await control(run.url, 'POST', '/sync', { userId: 'NYC001' });
      run.sim.clock.advance(61 * 60_000);
      fitbit.clock.set(run.sim.clock.now());
      token = (await connectUser(run.url, { user: 'NYC001' })).access_token;

      const fitbitSteps = (await fb('/1/user/-/activities/steps/date/2026-10-28/2026-11-02.json'))['activities-steps'].map((e: any) => e.value);
      const rollup = (await post('/v4/users/me/dataTypes/steps/dataPoints:dailyRollUp', rollUpBody('2026-10-28', '2026-11-03'))).body.rollupDataPoints;
      expect(rollup.map((r: any) => r.steps.countSum ?? '0')).toEqual(fitbitSteps);

      const heart = (await fb('/1/user/-/activities/heart/date/2026-10-28/2026-11-02.json'))['activities-heart'].flatMap((e: any) => (e.value.restingHeartRate === undefined ? [] : [[e.dateTime, String(e.value.restingHeartRate)]]));
      const resting = (await get(listPath('daily-resting-heart-rate', 'daily_resting_heart_rate.date >= "2026-10-28" AND daily_resting_heart_rate.date < "2026-11-03"'))).body.dataPoints.map((p: any) => {
        const d = p.dailyRestingHeartRate.date;
        return [`${d.year}-${String(d.month).padStart(2, '0')}-${String(d.day).padStart(2, '0')}`, p.dailyRestingHeartRate.beatsPerMinute];
      });
      expect(heart.length).toBeGreaterThan(3);
      expect(resting.reverse()).toEqual(heart);

      const fitbitSleep = (await fb('/1.2/user/-/sleep/date/2026-11-02.json')).sleep.map((l: any) => [String(l.logId), String(l.minutesAsleep)]).sort();
      const googleSleep = (await get(listPath('sleep', 'sleep.interval.civil_end_time >= "2026-11-02" AND sleep.interval.civil_end_time < "2026-11-03"'))).body.dataPoints
        .map((p: any) => [p.name.split('/').pop(), p.sleep.summary.minutesAsleep])
        .sort();
      expect(fitbitSleep.length).toBeGreaterThan(0);
      expect(googleSleep).toEqual(fitbitSleep);

      const fitbitRuns = (await fb('/1/user/-/activities/list.json?beforeDate=2026-11-03&sort=desc&limit=100&offset=0')).activities.filter((a: any) => a.startTime >= '2026-10-25').map((a: any) => String(a.logId));
      const googleRuns = (await get(listPath('exercise', 'exercise.interval.civil_start_time >= "2026-10-25" AND exercise.interval.civil_start_time < "2026-11-03"'))).body.dataPoints.map((p: any) => p.name.split('/').pop());
      expect(fitbitRuns.length).toBeGreaterThan(0);
      expect(googleRuns).toEqual(fitbitRuns);

      const hrv = (await fb('/1/user/-/hrv/date/2026-10-28/2026-11-02.json')).hrv.map((e: any) => e.value.dailyRmssd);
      const daily = (await get(listPath('daily-heart-rate-variability', 'daily_heart_rate_variability.date >= "2026-10-28" AND daily_heart_rate_variability.date < "2026-11-03"'))).body.dataPoints.map((p: any) => p.dailyHeartRateVariability.averageHeartRateVariabilityMilliseconds);
      expect(hrv.length).toBeGreaterThan(3);
      expect(daily.reverse()).toEqual(hrv);
    }
  });

  it('nothing before the device syncs, in either API (late sync)', async () => {
    expect((await post('/v4/users/me/dataTypes/steps/dataPoints:dailyRollUp', rollUpBody('2026-10-28', '2026-11-03'))).body).toEqual({});
    expect((await get(listPath('sleep'))).body).toEqual({ nextPageToken: '' });
    expect((await fb('/1/user/-/activities/steps/date/2026-11-02/1d.json'))['activities-steps'][0].value).toBe('0');
  });

  it('the legacy shutdown switch: Fitbit answers 410 once flipped, Google keeps working', async () => {
    expect((await fetch(`${fitbitUrl}/_control/shutdown`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ gone: true }) })).status).toBe(200);
    expect((await fetch(`${fitbitUrl}/1/user/-/profile.json`, { headers: { authorization: `Bearer ${fitbitToken}` } })).status).toBe(410);
    expect((await fetch(`${fitbitUrl}/oauth2/token`, { method: 'POST' })).status).toBe(410);
    expect((await get('/v4/users/me/identity')).status).toBe(200);
  });
});

describe('rate limit, faults, error envelope', () => {
  it('300 requests per user per minute, then 429 RESOURCE_EXHAUSTED until the minute has passed', async () => {
    for (let i = 0; i < 6; i += 1) {
      const batch = await Promise.all(Array.from({ length: 50 }, () => get('/v4/users/me/identity')));
      expect(batch.every((r) => r.status === 200)).toBe(true);
    }
    const limited = await get('/v4/users/me/dataTypes/steps/dataPoints');
    expect(limited.status).toBe(429);
    expect(limited.body.error).toMatchObject({ code: 429, status: 'RESOURCE_EXHAUSTED', details: [{ reason: 'RATE_LIMIT_EXCEEDED' }] });
    expect(limited.headers.get('retry-after')).toBeNull();
    // Another user has their own budget.
    const other = (await connectUser(run.url, { user: 'KOL001' })).access_token;
    expect((await api(run.url, other, '/v4/users/me/identity')).status).toBe(200);
    run.sim.clock.advance(59_000);
    expect((await get('/v4/users/me/identity')).status).toBe(429);
    run.sim.clock.advance(1_001);
    expect((await get('/v4/users/me/identity')).status).toBe(200);
    expect(run.sim.counters().requests.NYC001).toMatchObject({ getIdentity: 302, 'dataPoints.list:steps': 1 });
    expect(run.sim.counters().rateLimited).toBe(2);
  });

  it('injected 5xx (with a count), drop and latency per route', async () => {
    const fault = await control(run.url, 'POST', '/faults', { path: '/v4/users/me/dataTypes/steps', kind: 'error', status: 503, count: 1 });
    expect(fault.status).toBe(201);
    const failed = await get(listPath('steps'));
    expect(failed.status).toBe(503);
    expect(failed.body.error).toMatchObject({ code: 503, status: 'UNAVAILABLE' });
    expect((await get(listPath('steps'))).status).toBe(200);
    expect((await get('/v4/users/me/identity')).status).toBe(200);
    await control(run.url, 'POST', '/faults', { path: '/token', kind: 'drop' });
    await expect(fetch(`${run.url}/token`, { method: 'POST' })).rejects.toThrow();
    await control(run.url, 'POST', '/faults', { path: '/v4/users/me/settings', kind: 'latency', latencyMs: 5 });
    expect((await get('/v4/users/me/settings')).status).toBe(200);
    const faults = (await control(run.url, 'GET', '/faults')).body.faults;
    expect(faults.map((f: any) => [f.path, f.applied])).toEqual([['/v4/users/me/dataTypes/steps', 1], ['/token', 1], ['/v4/users/me/settings', 1]]);
    expect((await control(run.url, 'POST', '/faults', { kind: 'explode' })).status).toBe(400);
  });

  it('a grant mixing cloud-platform with googlehealth scopes is refused (DISALLOWED_OAUTH_SCOPES)', async () => {
    await control(run.url, 'POST', '/auto-consent', { decision: 'allow', userId: 'NYC001' });
    const res = await fetch(`${run.url}/o/oauth2/v2/auth?${new URLSearchParams({ client_id: '123-sim.apps.googleusercontent.com', response_type: 'code', redirect_uri: 'http://127.0.0.1:9/oauth/google-health/callback', scope: `${SCOPES.activity} https://www.googleapis.com/auth/cloud-platform` })}`, { redirect: 'manual' });
    const code = new URL(res.headers.get('location') ?? '').searchParams.get('code') ?? '';
    const tok = await fetch(`${run.url}/token`, {
      method: 'POST',
      body: new URLSearchParams({ client_id: '123-sim.apps.googleusercontent.com', client_secret: 'GOCSPX-test-secret', grant_type: 'authorization_code', code, redirect_uri: 'http://127.0.0.1:9/oauth/google-health/callback' }),
    });
    const access = ((await tok.json()) as { access_token: string }).access_token;
    const denied = await api(run.url, access, listPath('steps'));
    expect(denied.status).toBe(403);
    expect(denied.body.error.details[0]).toMatchObject({ reason: 'DISALLOWED_OAUTH_SCOPES', metadata: { disallowed_scopes: 'cloud_platform' } });
  });
});
