import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MockAgent, request } from 'undici';
import { daysBetween, ProviderError, STREAMS, type ProviderContext, type RateInfo } from '@fitlamp/provider';
import { createGoogleHealthProvider } from './google-health-provider.ts';
import type { GoogleHttp } from './http.ts';
import { collectPhysicalRange } from './query.ts';

const API = 'https://health.google.test';
let agent: MockAgent;
beforeEach(() => {
  agent = new MockAgent();
  agent.disableNetConnect();
});
afterEach(async () => {
  await agent.close();
});

const provider = () => createGoogleHealthProvider({ clientId: 'c', clientSecret: 's', apiUrl: API, dispatcher: agent });
const G = 'https://www.googleapis.com/auth/googlehealth.';

function context(over: Partial<ProviderContext> = {}) {
  const requests: string[] = [];
  const rates: RateInfo[] = [];
  const ctx: ProviderContext = {
    accessToken: 'ya29.tok',
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

/** Records every request's path (with its decoded query) and JSON body. */
function recorder() {
  const seen: Array<{ path: string; query: Record<string, string>; body?: unknown }> = [];
  const record = (opts: { path: string; body?: unknown }) => {
    const url = new URL(opts.path, API);
    seen.push({ path: url.pathname, query: Object.fromEntries(url.searchParams), ...(opts.body ? { body: JSON.parse(String(opts.body)) } : {}) });
  };
  return { seen, record };
}

describe('planRequests', () => {
  const p = createGoogleHealthProvider({ clientId: 'c', clientSecret: 's' });
  const year = daysBetween('2026-01-01', '2026-12-31');
  const count = (stream: (typeof STREAMS)[number], intraday = true) => p.planRequests(stream, year, { intraday }).length;

  it('sizes requests to what one page holds', () => {
    expect(count('steps')).toBe(61); // 6 days of minutes per 10000-point page
    expect(count('steps', false)).toBe(5); // dailyRollUp, 90 days
    expect(count('heart_rate')).toBe(365);
    expect(p.planRequests('heart_rate', year.slice(0, 2), { intraday: true })[0]).toEqual({ stream: 'heart_rate', days: ['2026-01-01'], cost: 2, intraday: true });
    expect(p.planRequests('heart_rate', year, { intraday: false })).toEqual([{ stream: 'heart_rate', days: year, cost: 0, intraday: false }]);
    for (const s of ['resting_heart_rate', 'spo2', 'hrv', 'breathing_rate', 'skin_temperature', 'active_zone_minutes'] as const) expect(count(s)).toBe(5);
    expect(count('sleep')).toBe(53);
    expect(count('exercise')).toBe(53);
    expect(count('device')).toBe(1);
    expect(p.planRequests('sleep', year, { intraday: true }).flatMap((r) => r.days)).toEqual(year);
    expect(p.planRequests('sleep', [], { intraday: true })).toEqual([]);
  });
});

describe('filters and request shapes', () => {
  it('steps: reconcile, interval start_time over the local days (a DST day is 23 h), snake_case prefix, >=/< AND', async () => {
    const { seen, record } = recorder();
    agent
      .get(API)
      .intercept({ path: (p) => p.startsWith('/v4/users/me/dataTypes/steps/dataPoints:reconcile?'), method: 'GET', headers: { authorization: 'Bearer ya29.tok' } })
      .reply((opts) => {
        record(opts);
        return { statusCode: 200, data: { dataPoints: [], nextPageToken: '' } };
      });
    const { ctx, requests } = context();
    const days = ['2026-03-07', '2026-03-08'];
    const results = await provider().fetch({ stream: 'steps', days, cost: 1, intraday: true }, ctx);
    expect(results).toEqual(days.map((day) => ({ day, records: [] })));
    expect(seen).toEqual([
      {
        path: '/v4/users/me/dataTypes/steps/dataPoints:reconcile',
        query: { filter: 'steps.interval.start_time >= "2026-03-07T05:00:00Z" AND steps.interval.start_time < "2026-03-09T04:00:00Z"', pageSize: '10000' },
      },
    ]);
    expect(requests).toEqual(['steps-reconcile']);
  });

  it('heart rate: sample physical_time; daily types: date; sleep: civil_end_time; exercise: civil_start_time', async () => {
    const { seen, record } = recorder();
    agent
      .get(API)
      .intercept({ path: (p) => p.startsWith('/v4/users/me/dataTypes/'), method: 'GET' })
      .reply((opts) => {
        record(opts);
        return { statusCode: 200, data: {} }; // proto3: an empty list is an empty object
      })
      .persist();
    const { ctx } = context();
    const p = provider();
    await p.fetch({ stream: 'heart_rate', days: ['2026-11-01'], cost: 2, intraday: true }, ctx);
    await p.fetch({ stream: 'hrv', days: ['2026-03-01', '2026-03-07'], cost: 1, intraday: false }, ctx);
    await p.fetch({ stream: 'skin_temperature', days: ['2026-03-01'], cost: 1, intraday: false }, ctx);
    await p.fetch({ stream: 'sleep', days: ['2026-03-01', '2026-03-07'], cost: 1, intraday: false }, ctx);
    await p.fetch({ stream: 'exercise', days: ['2026-03-01'], cost: 1, intraday: false }, ctx);
    expect(seen.map((s) => [s.path, s.query.filter, s.query.pageSize])).toEqual([
      [
        '/v4/users/me/dataTypes/heart-rate/dataPoints:reconcile',
        'heart_rate.sample_time.physical_time >= "2026-11-01T04:00:00Z" AND heart_rate.sample_time.physical_time < "2026-11-02T05:00:00Z"',
        '10000',
      ],
      [
        '/v4/users/me/dataTypes/daily-heart-rate-variability/dataPoints:reconcile',
        'daily_heart_rate_variability.date >= "2026-03-01" AND daily_heart_rate_variability.date < "2026-03-08"',
        '10000',
      ],
      [
        '/v4/users/me/dataTypes/daily-sleep-temperature-derivations/dataPoints:reconcile',
        'daily_sleep_temperature_derivations.date >= "2026-03-01" AND daily_sleep_temperature_derivations.date < "2026-03-02"',
        '10000',
      ],
      ['/v4/users/me/dataTypes/sleep/dataPoints:reconcile', 'sleep.interval.civil_end_time >= "2026-03-01" AND sleep.interval.civil_end_time < "2026-03-08"', '25'],
      ['/v4/users/me/dataTypes/exercise/dataPoints:reconcile', 'exercise.interval.civil_start_time >= "2026-03-01" AND exercise.interval.civil_start_time < "2026-03-02"', '25'],
    ]);
  });

  it('AZM and daily steps: dailyRollUp POST with plain-number dates, closed-open range, one window per day', async () => {
    const { seen, record } = recorder();
    agent
      .get(API)
      .intercept({ path: '/v4/users/me/dataTypes/active-zone-minutes/dataPoints:dailyRollUp', method: 'POST' })
      .reply((opts) => {
        record(opts);
        return {
          statusCode: 200,
          data: { rollupDataPoints: [{ civilStartTime: { date: { year: 2026, month: 3, day: 9 } }, civilEndTime: { date: { year: 2026, month: 3, day: 10 } }, activeZoneMinutes: { sumInPeakHeartZone: '4' } }] },
        };
      });
    const { ctx, requests } = context();
    const results = await provider().fetch({ stream: 'active_zone_minutes', days: ['2026-03-08', '2026-03-09'], cost: 1, intraday: false }, ctx);
    expect(seen[0]!.body).toEqual({
      range: { start: { date: { year: 2026, month: 3, day: 8 } }, end: { date: { year: 2026, month: 3, day: 10 } } },
      windowSizeDays: 1,
      pageSize: 2,
    });
    expect(results.map((r) => [r.day, r.records.map((x) => x.event.data.value)])).toEqual([
      ['2026-03-08', []],
      ['2026-03-09', [4]],
    ]);
    expect(requests).toEqual(['active-zone-minutes-daily-rollup']);

    agent
      .get(API)
      .intercept({ path: '/v4/users/me/dataTypes/steps/dataPoints:dailyRollUp', method: 'POST' })
      .reply(200, { rollupDataPoints: [{ civilStartTime: { date: { year: 2026, month: 3, day: 8 } }, steps: { countSum: '1200' } }] });
    const steps = await provider().fetch({ stream: 'steps', days: ['2026-03-08'], cost: 1, intraday: false }, context({ intraday: false }).ctx);
    expect(steps[0]!.records[0]).toMatchObject({ distinct: 'day', event: { data: { value: 1200 }, duration: 23 * 3_600_000 } });
  });

  it('devices follow pairedDevices pages', async () => {
    const { seen, record } = recorder();
    agent
      .get(API)
      .intercept({ path: (p) => p.startsWith('/v4/users/me/pairedDevices'), method: 'GET' })
      .reply((opts): { statusCode: number; data: object } => {
        record(opts);
        return seen.length === 1
          ? { statusCode: 200, data: { pairedDevices: [{ name: 'users/me/pairedDevices/1', deviceVersion: 'Pixel Watch 3', lastSyncTime: '2026-03-07T17:29:05Z', batteryLevel: 55, batteryStatus: 'Medium' }], nextPageToken: 'p2' } }
          : { statusCode: 200, data: { pairedDevices: [{ name: 'users/me/pairedDevices/2', deviceType: 'SCALE' }], nextPageToken: '' } };
      })
      .persist();
    const devices = await provider().fetchDevices(context().ctx);
    expect(devices.map((d) => d.id)).toEqual(['1', '2']);
    expect(seen.map((s) => s.query)).toEqual([{ pageSize: '100' }, { pageSize: '100', pageToken: 'p2' }]);
  });

  it('asks nothing for a stream whose scope was not granted', async () => {
    const { ctx, requests } = context({ scopes: [`${G}activity_and_fitness.readonly`] });
    const err = await caught(provider().fetch({ stream: 'sleep', days: ['2026-03-01'], cost: 1, intraday: false }, ctx));
    expect(err.code).toBe('scope_missing');
    expect(requests).toEqual([]);
  });
});

/**
 * A stand-in for the Health API's `heart-rate` reconcile that reproduces the documented paging
 * bug (google-health-api §3.3): it pages newest first, and its cursor resumes strictly before the
 * last timestamp it sent, so points tied with a page's last point are skipped.
 */
function buggyHeartRateServer(points: Array<{ t: number; bpm: number }>, serverPageSize: number) {
  const calls: Array<{ filter: string; pageToken?: string }> = [];
  const handler = (opts: { path: string }): { statusCode: number; data: object } => {
    const url = new URL(opts.path, API);
    const filter = url.searchParams.get('filter') ?? '';
    const pageToken = url.searchParams.get('pageToken') ?? undefined;
    calls.push({ filter, ...(pageToken ? { pageToken } : {}) });
    const m = /^heart_rate\.sample_time\.physical_time >= "([^"]+)" AND heart_rate\.sample_time\.physical_time < "([^"]+)"$/.exec(filter);
    if (!m) return { statusCode: 400, data: { error: { code: 400, status: 'INVALID_ARGUMENT', message: 'bad filter' } } };
    const from = Date.parse(m[1]!);
    let to = Date.parse(m[2]!);
    if (pageToken) to = Number(pageToken); // resumes strictly before the last sent timestamp: ties lost
    const size = Math.min(Number(url.searchParams.get('pageSize') ?? 1440), serverPageSize);
    const matching = points.filter((p) => p.t >= from && p.t < to).sort((a, b) => b.t - a.t);
    const page = matching.slice(0, size);
    const more = matching.length > size;
    return {
      statusCode: 200,
      data: {
        dataPoints: page.map((p) => ({ heartRate: { sampleTime: { physicalTime: new Date(p.t).toISOString(), utcOffset: '-14400s' }, beatsPerMinute: String(p.bpm) } })),
        nextPageToken: more ? String(page[page.length - 1]!.t) : '',
      },
    };
  };
  return { calls, handler };
}

describe('paging across the tied-timestamp bug', () => {
  // 2026-10-20 in New York: 04:00Z to 04:00Z next day. Every 10 s, two samples share the timestamp.
  const dayStart = Date.parse('2026-10-20T04:00:00Z');
  const points: Array<{ t: number; bpm: number }> = [];
  for (let i = 0; i < 3000; i++) {
    points.push({ t: dayStart + i * 10_000, bpm: 60 + (i % 7) }, { t: dayStart + i * 10_000, bpm: 80 + (i % 5) });
  }
  const http = (): GoogleHttp => ({ apiUrl: API, tokenUrl: '', revokeUrl: '', timeoutMs: 5000, dispatcher: agent });
  const q = {
    type: 'heart-rate',
    method: 'reconcile' as const,
    field: 'heart_rate.sample_time.physical_time',
    pageSize: 10_000,
    timeOf: (p: unknown) => Date.parse((p as { heartRate: { sampleTime: { physicalTime: string } } }).heartRate.sampleTime.physicalTime),
  };
  const asPairs = (got: unknown[]) =>
    got.map((p) => {
      const hr = (p as { heartRate: { sampleTime: { physicalTime: string }; beatsPerMinute: string } }).heartRate;
      return `${Date.parse(hr.sampleTime.physicalTime)}:${hr.beatsPerMinute}`;
    });

  it('the stand-in really loses tied points when its cursor is followed', async () => {
    const server = buggyHeartRateServer(points, 999);
    agent.get(API).intercept({ path: (p) => p.startsWith('/v4/users/me/dataTypes/heart-rate/'), method: 'GET' }).reply(server.handler).persist();
    const got: unknown[] = [];
    let token: string | undefined;
    const filter = `heart_rate.sample_time.physical_time >= "2026-10-20T04:00:00Z" AND heart_rate.sample_time.physical_time < "2026-10-21T04:00:00Z"`;
    do {
      const res = await request(`${API}/v4/users/me/dataTypes/heart-rate/dataPoints:reconcile?filter=${encodeURIComponent(filter)}${token ? `&pageToken=${token}` : ''}`, {
        dispatcher: agent,
      });
      const body = (await res.body.json()) as { dataPoints: unknown[]; nextPageToken: string };
      got.push(...body.dataPoints);
      token = body.nextPageToken;
    } while (token);
    expect(got.length).toBeLessThan(points.length);
  });

  it('narrowing instead of following the cursor gets every point exactly once, for the cost of the cursor', async () => {
    const server = buggyHeartRateServer(points, 999); // odd size: every page boundary splits a tied pair
    agent.get(API).intercept({ path: (p) => p.startsWith('/v4/users/me/dataTypes/heart-rate/'), method: 'GET' }).reply(server.handler).persist();
    const { ctx, requests } = context();
    const got = await collectPhysicalRange(http(), ctx, q, dayStart, dayStart + 86_400_000);
    const pairs = asPairs(got);
    expect(new Set(pairs).size).toBe(pairs.length); // nothing duplicated
    expect(pairs.sort()).toEqual(points.map((p) => `${p.t}:${p.bpm}`).sort()); // nothing lost
    expect(server.calls.every((c) => c.pageToken === undefined)).toBe(true);
    expect(requests.length).toBe(Math.ceil(points.length / 998)); // each page keeps all but the tied boundary point
    // The second query ends just after the first page's oldest timestamp, so the ties come back.
    const first = server.calls[0]!.filter;
    expect(first).toContain('< "2026-10-21T04:00:00Z"');
    expect(server.calls[1]!.filter).toMatch(/< "2026-10-20T\d{2}:\d{2}:\d{2}\.001Z"$/);
  });

  it('through the provider: each minute is the mean of all its samples, ties included', async () => {
    const server = buggyHeartRateServer(points, 1001);
    agent.get(API).intercept({ path: (p) => p.startsWith('/v4/users/me/dataTypes/heart-rate/'), method: 'GET' }).reply(server.handler).persist();
    const [result] = await provider().fetch({ stream: 'heart_rate', days: ['2026-10-20'], cost: 2, intraday: true }, context().ctx);
    const expected = new Map<number, number[]>();
    for (const p of points) {
      const minute = Math.floor(p.t / 60_000) * 60_000;
      expected.set(minute, [...(expected.get(minute) ?? []), p.bpm]);
    }
    expect(result!.records).toHaveLength(expected.size);
    for (const r of result!.records) {
      const bpms = expected.get(r.event.timestamp)!;
      expect(r.event.data.value).toBe(Math.round(bpms.reduce((s, b) => s + b, 0) / bpms.length));
    }
  });
});

describe('paging fallbacks', () => {
  const http = (): GoogleHttp => ({ apiUrl: API, tokenUrl: '', revokeUrl: '', timeoutMs: 5000, dispatcher: agent });
  const q = {
    type: 'steps',
    method: 'list' as const,
    field: 'steps.interval.start_time',
    pageSize: 10_000,
    timeOf: (p: unknown) => Date.parse((p as { steps: { interval: { startTime: string } } }).steps.interval.startTime),
  };
  const pt = (t: string, count: string, device: string) => ({ steps: { interval: { startTime: t, endTime: t }, count }, dataSource: { device: { displayName: device } } });

  it('a full page of one timestamp cannot be narrowed: the cursor is followed and repeats dropped', async () => {
    const seen: string[] = [];
    agent
      .get(API)
      .intercept({ path: (p) => p.startsWith('/v4/users/me/dataTypes/steps/dataPoints?'), method: 'GET' })
      .reply((opts): { statusCode: number; data: object } => {
        const token = new URL(opts.path, API).searchParams.get('pageToken') ?? '';
        seen.push(token);
        return token === ''
          ? { statusCode: 200, data: { dataPoints: [pt('2026-03-01T10:00:00Z', '5', 'watch'), pt('2026-03-01T10:00:00Z', '7', 'phone')], nextPageToken: 'p2' } }
          : { statusCode: 200, data: { dataPoints: [pt('2026-03-01T10:00:00Z', '7', 'phone'), pt('2026-03-01T10:00:00Z', '9', 'scale')], nextPageToken: '' } };
      })
      .persist();
    const got = await collectPhysicalRange(http(), context().ctx, q, Date.parse('2026-03-01T05:00:00Z'), Date.parse('2026-03-02T05:00:00Z'));
    expect(got.map((p) => (p as { steps: { count: string } }).steps.count)).toEqual(['5', '7', '9']);
    expect(seen).toEqual(['', 'p2']);
  });

  it('a page that is not newest-first is not trusted for narrowing: the range is split in two', async () => {
    const filters: string[] = [];
    const all = [pt('2026-03-01T06:00:00Z', '1', 'w'), pt('2026-03-01T20:00:00Z', '2', 'w'), pt('2026-03-01T08:00:00Z', '3', 'w')];
    agent
      .get(API)
      .intercept({ path: (p) => p.startsWith('/v4/users/me/dataTypes/steps/dataPoints?'), method: 'GET' })
      .reply((opts): { statusCode: number; data: object } => {
        const filter = new URL(opts.path, API).searchParams.get('filter')!;
        filters.push(filter);
        const [, from, to] = /start_time >= "([^"]+)" AND steps\.interval\.start_time < "([^"]+)"/.exec(filter)!;
        const inRange = all.filter((p) => p.steps.interval.startTime >= from! && p.steps.interval.startTime < to!); // ascending-ish, wrong order
        return { statusCode: 200, data: { dataPoints: inRange.slice(0, 2), nextPageToken: inRange.length > 2 ? 'x' : '' } };
      })
      .persist();
    const got = await collectPhysicalRange(http(), context().ctx, q, Date.parse('2026-03-01T05:00:00Z'), Date.parse('2026-03-02T05:00:00Z'));
    expect(got.map((p) => (p as { steps: { count: string } }).steps.count).sort()).toEqual(['1', '2', '3']);
    expect(filters).toHaveLength(3);
    expect(filters[1]).toContain('>= "2026-03-01T17:00:00Z"');
  });
});

describe('sessions beyond one page', () => {
  it('splits the civil range instead of paging: 30 sleeps in a week, each delivered once', async () => {
    // Five short sleeps a day for six days (2026-03-02..07), ending 03:00, 06:00 … 15:00 local (EST).
    const sessions: Array<{ end: number; civilEnd: string }> = [];
    for (let d = 2; d <= 7; d++) {
      for (let k = 1; k <= 5; k++) {
        const local = `2026-03-0${d}T${String(k * 3).padStart(2, '0')}:00:00`;
        sessions.push({ end: Date.parse(`${local}Z`) + 5 * 3_600_000, civilEnd: local });
      }
    }
    const filters: string[] = [];
    agent
      .get(API)
      .intercept({ path: (p) => p.startsWith('/v4/users/me/dataTypes/sleep/dataPoints:reconcile'), method: 'GET' })
      .reply((opts) => {
        const url = new URL(opts.path, API);
        const filter = url.searchParams.get('filter')!;
        filters.push(filter);
        const m = /^sleep\.interval\.civil_end_time >= "([^"]+)" AND sleep\.interval\.civil_end_time < "([^"]+)"$/.exec(filter)!;
        const inRange = sessions.filter((s) => s.civilEnd >= m[1]! && s.civilEnd < m[2]!).sort((a, b) => b.end - a.end);
        const page = inRange.slice(0, Number(url.searchParams.get('pageSize')));
        return {
          statusCode: 200,
          data: {
            dataPoints: page.map((s) => ({
              name: `users/1/dataTypes/sleep/dataPoints/${s.end}`,
              sleep: {
                interval: { startTime: new Date(s.end - 3_600_000).toISOString(), startUtcOffset: '-18000s', endTime: new Date(s.end).toISOString(), endUtcOffset: '-18000s' },
                type: 'CLASSIC',
                stages: [{ startTime: new Date(s.end - 3_600_000).toISOString(), endTime: new Date(s.end).toISOString(), type: 'ASLEEP' }],
                metadata: { processed: true },
              },
            })),
            nextPageToken: inRange.length > page.length ? 'more' : '',
          },
        };
      })
      .persist();
    const days = daysBetween('2026-03-01', '2026-03-07');
    const results = await provider().fetch({ stream: 'sleep', days, cost: 1, intraday: false }, context().ctx);
    const all = results.flatMap((r) => r.records);
    expect(all).toHaveLength(30);
    expect(new Set(all.map((r) => r.event.timestamp)).size).toBe(30);
    expect(results.map((r) => r.records.length)).toEqual([0, 5, 5, 5, 5, 5, 5]);
    expect(filters[0]).toBe('sleep.interval.civil_end_time >= "2026-03-01" AND sleep.interval.civil_end_time < "2026-03-08"');
    expect(filters.slice(1)).toEqual([
      'sleep.interval.civil_end_time >= "2026-03-01" AND sleep.interval.civil_end_time < "2026-03-04"',
      'sleep.interval.civil_end_time >= "2026-03-04" AND sleep.interval.civil_end_time < "2026-03-08"',
    ]);
  });

  it('splits a single overfull day at civil times', async () => {
    // 30 naps ending every 30 minutes on 2026-03-04 (local), more than one page of 25.
    const ends = Array.from({ length: 30 }, (_, i) => `2026-03-04T${String(Math.floor(i / 2) + 5).padStart(2, '0')}:${i % 2 ? '30' : '00'}:00`);
    const filters: string[] = [];
    agent
      .get(API)
      .intercept({ path: (p) => p.startsWith('/v4/users/me/dataTypes/exercise/dataPoints:reconcile'), method: 'GET' })
      .reply((opts): { statusCode: number; data: object } => {
        const url = new URL(opts.path, API);
        const filter = url.searchParams.get('filter')!;
        filters.push(filter);
        const [, from, to] = /civil_start_time >= "([^"]+)" AND exercise\.interval\.civil_start_time < "([^"]+)"/.exec(filter)!;
        const norm = (s: string) => (s.length === 10 ? `${s}T00:00:00` : s);
        const inRange = ends.filter((e) => e >= norm(from!) && e < norm(to!)).reverse();
        return {
          statusCode: 200,
          data: {
            dataPoints: inRange.slice(0, 25).map((e) => ({
              exercise: {
                interval: { startTime: `${e}Z`, startUtcOffset: '0s', endTime: new Date(Date.parse(`${e}Z`) + 600_000).toISOString(), endUtcOffset: '0s' },
                displayName: 'Run',
              },
            })),
            nextPageToken: inRange.length > 25 ? 'more' : '',
          },
        };
      })
      .persist();
    const [day] = await provider().fetch({ stream: 'exercise', days: ['2026-03-04'], cost: 1, intraday: false }, context({ zones: [{ zone: 'UTC', validFrom: 0 }] }).ctx);
    expect(day!.records).toHaveLength(30);
    expect(new Set(day!.records.map((r) => r.event.timestamp)).size).toBe(30);
    expect(filters.slice(1)).toEqual([
      'exercise.interval.civil_start_time >= "2026-03-04" AND exercise.interval.civil_start_time < "2026-03-04T12:00:00"',
      'exercise.interval.civil_start_time >= "2026-03-04T12:00:00" AND exercise.interval.civil_start_time < "2026-03-05"',
    ]);
  });
});

describe('errors', () => {
  const status = (code: number, statusName: string, reason?: string, message = 'm') => ({
    error: { code, message, status: statusName, ...(reason ? { details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason, domain: 'health.googleapis.com' }] } : {}) },
  });
  const hrv = { stream: 'hrv' as const, days: ['2026-03-01'], cost: 1, intraday: false };
  const reply = (code: number, body: unknown, headers: Record<string, string> = {}) =>
    agent.get(API).intercept({ path: (p) => p.startsWith('/v4/users/me/dataTypes/daily-heart-rate-variability/'), method: 'GET' }).reply(code, body as object, { headers });

  it('401 → token_expired; 403 scope reasons → scope_missing; other 403 and 400 → rejected', async () => {
    reply(401, status(401, 'UNAUTHENTICATED', undefined, 'Request had invalid authentication credentials.'));
    expect(await caught(provider().fetch(hrv, context().ctx))).toMatchObject({ code: 'token_expired', details: { status: 401 } });
    reply(403, status(403, 'PERMISSION_DENIED', 'MISSING_OAUTH_SCOPE'));
    expect(await caught(provider().fetch(hrv, context().ctx))).toMatchObject({ code: 'scope_missing', details: { reason: 'MISSING_OAUTH_SCOPE' } });
    reply(403, status(403, 'PERMISSION_DENIED', 'ACCESS_TOKEN_SCOPE_INSUFFICIENT'));
    expect((await caught(provider().fetch(hrv, context().ctx))).code).toBe('scope_missing');
    reply(403, status(403, 'PERMISSION_DENIED', undefined, 'The caller does not have permission.'));
    expect((await caught(provider().fetch(hrv, context().ctx))).code).toBe('rejected');
    reply(400, status(400, 'INVALID_ARGUMENT', 'INVALID_DATA_POINT_FILTER'));
    const err = await caught(provider().fetch(hrv, context().ctx));
    expect(err).toMatchObject({ code: 'rejected', details: { status: 400, reason: 'INVALID_DATA_POINT_FILTER', endpoint: 'daily-heart-rate-variability-reconcile' } });
    expect(err.message).not.toContain('ya29');
  });

  it('429 → rate_limited until the next minute boundary, or Retry-After; the spent budget is reported', async () => {
    reply(429, status(429, 'RESOURCE_EXHAUSTED', 'RATE_LIMIT_EXCEEDED'));
    const { ctx, rates, requests } = context();
    const before = Date.now();
    const err = await caught(provider().fetch(hrv, ctx));
    expect(err.code).toBe('rate_limited');
    const resetAt = err.details.resetAt!;
    expect(resetAt % 60_000 === 0 || resetAt - before <= 1_100).toBe(true);
    expect(resetAt).toBeGreaterThan(before);
    expect(resetAt).toBeLessThanOrEqual(Math.floor(Date.now() / 60_000) * 60_000 + 60_000 + 1000);
    expect(rates).toEqual([{ remaining: 0, resetAt }]);
    expect(requests).toEqual(['daily-heart-rate-variability-reconcile']);

    reply(429, status(429, 'RESOURCE_EXHAUSTED'), { 'retry-after': '17' });
    const t0 = Date.now();
    const withHeader = await caught(provider().fetch(hrv, context().ctx));
    expect(withHeader.details.resetAt! - t0).toBeGreaterThanOrEqual(16_900);
    expect(withHeader.details.resetAt! - t0).toBeLessThan(18_000);
  });

  it('429 reset instants count on the caller’s clock, not the machine’s', async () => {
    // A fetcher whose clock runs at another date (a simulator's, a test's) must be told to wait
    // as long as Google said, measured on that clock: counted on the machine's clock, the wait
    // would come out days long or zero.
    const clock = Date.parse('2031-05-06T07:08:09.500Z');
    reply(429, status(429, 'RESOURCE_EXHAUSTED'), { 'retry-after': '17' });
    const { ctx, rates } = context({ now: () => clock });
    const withHeader = await caught(provider().fetch(hrv, ctx));
    expect(withHeader.code).toBe('rate_limited');
    expect(withHeader.details.resetAt).toBe(clock + 17_000);
    expect(rates).toEqual([{ remaining: 0, resetAt: clock + 17_000 }]);

    reply(429, status(429, 'RESOURCE_EXHAUSTED'));
    const without = await caught(provider().fetch(hrv, context({ now: () => clock }).ctx));
    expect(without.details.resetAt).toBe(Date.parse('2031-05-06T07:09:00Z'));
  });

  it('5xx and network failures → unavailable; a 2xx that is not JSON → bad_response', async () => {
    reply(503, status(503, 'UNAVAILABLE'));
    expect((await caught(provider().fetch(hrv, context().ctx))).code).toBe('unavailable');
    reply(500, status(500, 'INTERNAL', 'INTERNAL_ERROR'));
    expect((await caught(provider().fetch(hrv, context().ctx))).code).toBe('unavailable');
    agent.get(API).intercept({ path: (p) => p.startsWith('/v4/users/me/dataTypes/'), method: 'GET' }).replyWithError(new Error('socket hang up'));
    expect((await caught(provider().fetch(hrv, context().ctx))).code).toBe('unavailable');
    reply(200, '<html>');
    expect((await caught(provider().fetch(hrv, context().ctx))).code).toBe('bad_response');
  });
});
