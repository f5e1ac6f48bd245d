import { ProviderError, type DayRequest, type DayResult, type DeviceState, type NormalizedRecord, type ProviderContext } from '@fitlamp/provider';
import { badResponse, getData, type FitbitHttp } from './http.ts';
import { normalizeActivities, normalizeDailySeries, normalizeDevices, normalizeMinuteSeries, parseDevices, type DailyStream } from './normalize.ts';
import { STREAM_SCOPES } from './oauth.ts';
import { usesIntraday } from './plan.ts';
import { normalizeSleep } from './sleep.ts';

/** Range paths of the daily series (fitbit-web-api §3.1); `{s}`/`{e}` are local dates. */
const DAILY_PATHS: Record<DailyStream, (s: string, e: string) => string> = {
  steps: (s, e) => `/1/user/-/activities/steps/date/${s}/${e}.json`,
  resting_heart_rate: (s, e) => `/1/user/-/activities/heart/date/${s}/${e}.json`,
  spo2: (s, e) => `/1/user/-/spo2/date/${s}/${e}.json`,
  hrv: (s, e) => `/1/user/-/hrv/date/${s}/${e}.json`,
  breathing_rate: (s, e) => `/1/user/-/br/date/${s}/${e}.json`,
  skin_temperature: (s, e) => `/1/user/-/temp/skin/date/${s}/${e}.json`,
  active_zone_minutes: (s, e) => `/1/user/-/activities/active-zone-minutes/date/${s}/${e}.json`,
};

/** A runaway `pagination.next` chain stops here rather than spending the hour's budget. */
const MAX_PAGES = 20;

/** The participant's devices (`GET /1/user/-/devices.json`, scope `settings`). */
export async function fetchDevices(http: FitbitHttp, ctx: ProviderContext): Promise<DeviceState[]> {
  const body = await getData(http, ctx, '/1/user/-/devices.json', 'devices');
  if (!Array.isArray(body)) throw badResponse('devices', 'devices answer is not an array');
  return parseDevices(body, ctx.zones);
}

/**
 * The activity log list from the day before the first requested day (`afterDate` is exclusive
 * on some readings of the docs), ascending, following `pagination.next` as Fitbit requires
 * (never a hand-made offset, fitbit-web-api §3.3) until the pages pass the last requested day.
 * `next` must stay on the configured API origin: the bearer token goes nowhere else.
 */
async function fetchActivities(http: FitbitHttp, ctx: ProviderContext, days: readonly string[]): Promise<unknown[]> {
  const first = days[0]!;
  const last = days[days.length - 1]!;
  const afterDate = new Date(Date.parse(`${first}T00:00:00Z`) - 86_400_000).toISOString().slice(0, 10);
  let url: string | undefined = `/1/user/-/activities/list.json?afterDate=${afterDate}&sort=asc&limit=100&offset=0`;
  const origin = new URL(http.apiUrl).origin;
  const all: unknown[] = [];
  for (let page = 0; url !== undefined && page < MAX_PAGES; page++) {
    const body = await getData(http, ctx, url, 'activities-list');
    const activities = (body as { activities?: unknown } | undefined)?.activities;
    if (!Array.isArray(activities)) throw badResponse('activities-list', 'answer without an activities array');
    all.push(...activities);
    const lastStart = (activities[activities.length - 1] as { startTime?: unknown } | undefined)?.startTime;
    const next = (body as { pagination?: { next?: unknown } }).pagination?.next;
    url = undefined;
    if (activities.length === 0 || (typeof lastStart === 'string' && lastStart.slice(0, 10) > last)) break;
    if (typeof next === 'string' && next !== '') {
      let resolved: URL;
      try {
        resolved = new URL(next, http.apiUrl);
      } catch {
        throw badResponse('activities-list', 'pagination.next is not a URL');
      }
      if (resolved.origin !== origin) throw badResponse('activities-list', 'pagination.next points away from the API');
      url = resolved.toString();
    }
  }
  return all;
}

/**
 * Sleep v1.2 by date range (≤ 100 days). While Fitbit is still processing, the answer carries
 * `meta.state: "pending"` (fitbit-web-api §3.3): the logs are incomplete, so retry later.
 */
async function fetchSleepLogs(http: FitbitHttp, ctx: ProviderContext, days: readonly string[]): Promise<unknown[]> {
  const body = await getData(http, ctx, `/1.2/user/-/sleep/date/${days[0]}/${days[days.length - 1]}.json`, 'sleep-range');
  const b = body as { sleep?: unknown; meta?: { state?: unknown } } | undefined;
  if (b?.meta?.state === 'pending') {
    throw new ProviderError('unavailable', 'Fitbit sleep-range: still processing sleep (meta.state pending); retry later', {
      endpoint: 'sleep-range',
      reason: 'pending',
    });
  }
  if (!Array.isArray(b?.sleep)) throw badResponse('sleep-range', 'answer without a sleep array');
  return b.sleep;
}

async function recordsFor(http: FitbitHttp, request: DayRequest, ctx: ProviderContext): Promise<NormalizedRecord[]> {
  const { stream, days } = request;
  const first = days[0]!;
  const last = days[days.length - 1]!;
  const intraday = request.intraday && ctx.intraday && usesIntraday(stream);

  switch (stream) {
    case 'steps':
    case 'heart_rate': {
      if (!intraday) {
        // No daily heart-rate series to fall back to (plan.ts): the days are empty, and free.
        if (stream === 'heart_rate') return [];
        return normalizeDailySeries('steps', days, await getData(http, ctx, DAILY_PATHS.steps(first, last), 'steps-daily'), ctx.zones);
      }
      const resource = stream === 'steps' ? 'steps' : 'heart';
      const out: NormalizedRecord[] = [];
      for (const day of days) {
        const body = await getData(http, ctx, `/1/user/-/activities/${resource}/date/${day}/1d/1min.json`, `${stream.replace('_', '-')}-intraday`, {
          intraday: true,
        });
        out.push(...normalizeMinuteSeries(stream, day, body, ctx.zones));
      }
      return out;
    }
    case 'sleep':
      return normalizeSleep(days, await fetchSleepLogs(http, ctx, days), ctx.zones);
    case 'exercise':
      return normalizeActivities(days, await fetchActivities(http, ctx, days), ctx.zones);
    case 'device':
      return normalizeDevices(await fetchDevices(http, ctx), ctx.zones);
    default: {
      const endpoint = `${stream.replace(/_/g, '-')}-range`;
      return normalizeDailySeries(stream, days, await getData(http, ctx, DAILY_PATHS[stream](first, last), endpoint), ctx.zones);
    }
  }
}

/**
 * Runs one planned request: fetches, normalizes, and answers every requested day, with empty
 * `records` where Fitbit had nothing. A stream whose scope the context says was not granted
 * fails with `scope_missing` without spending a request.
 */
export async function fetchStream(http: FitbitHttp, request: DayRequest, ctx: ProviderContext): Promise<DayResult[]> {
  const days = [...new Set(request.days)].sort();
  if (days.length === 0) return [];
  const scope = STREAM_SCOPES[request.stream];
  if (ctx.scopes.length > 0 && !ctx.scopes.includes(scope)) {
    throw new ProviderError('scope_missing', `Fitbit ${request.stream}: the participant did not grant the "${scope}" scope`, {
      reason: 'insufficient_scope',
    });
  }
  const byDay = new Map<string, NormalizedRecord[]>(days.map((d) => [d, []]));
  for (const record of await recordsFor(http, { ...request, days }, ctx)) byDay.get(record.day)?.push(record);
  return days.map((day) => ({ day, records: byDay.get(day)! }));
}
