import { localDayBounds, ProviderError, type DayRequest, type DayResult, type DeviceState, type NormalizedRecord, type ProviderContext } from '@fitlamp/provider';
import { badResponse, callData, type GoogleHttp } from './http.ts';
import {
  DAILY,
  normalizeActiveZoneMinutes,
  normalizeDaily,
  normalizeDailySteps,
  normalizeDevices,
  normalizeExercise,
  normalizeHeartRate,
  normalizeSteps,
  parsePairedDevices,
  type DailyStream,
} from './normalize.ts';
import { hasScope, STREAM_SCOPES } from './oauth.ts';
import { usesIntraday } from './plan.ts';
import { objectAt, stringAt, timestampMs } from './proto-json.ts';
import { collectCivilDays, collectPhysicalRange, dailyRollUp, MAX_PAGE_SIZE, SESSION_PAGE_SIZE } from './query.ts';
import { normalizeSleep } from './sleep.ts';

const MAX_DEVICE_PAGES = 10;

/** The participant's paired devices (`users/me/pairedDevices`, `settings.readonly`; 100 a page). */
export async function fetchDevices(http: GoogleHttp, ctx: ProviderContext): Promise<DeviceState[]> {
  const all: unknown[] = [];
  let pageToken: string | undefined;
  for (let page = 0; page < MAX_DEVICE_PAGES; page++) {
    const query = `pageSize=100${pageToken ? `&pageToken=${encodeURIComponent(pageToken)}` : ''}`;
    const body = await callData(http, ctx, { method: 'GET', url: `/v4/users/me/pairedDevices?${query}`, endpoint: 'paired-devices' });
    const devices = (body as { pairedDevices?: unknown } | undefined)?.pairedDevices ?? [];
    if (!Array.isArray(devices)) throw badResponse('paired-devices', 'pairedDevices is not an array');
    all.push(...devices);
    pageToken = stringAt(body, 'nextPageToken');
    if (!pageToken) break;
  }
  return parsePairedDevices(all);
}

const intervalStart = (member: string) => (p: unknown) => timestampMs(objectAt(objectAt(p, member), 'interval')?.startTime);
const sampleTime = (member: string) => (p: unknown) => timestampMs(objectAt(objectAt(p, member), 'sampleTime')?.physicalTime);

/**
 * What each stream asks Google, and why `reconcile` or `list` (the rule: what the participant
 * sees in the Fitbit app must be what lands in mindLAMP):
 * - steps, heart rate: `reconcile`. `list` returns every source's points and a phone plus a
 *   watch are summed twice (2506 + 1919 listed vs 2560 reconciled = the app, §3.4).
 * - resting HR, HRV, SpO2, breathing rate, skin temperature: `reconcile` of the daily types: one
 *   value per day as the app shows it, whichever sources exist.
 * - sleep, exercise: `reconcile` too: a night or a workout recorded by the watch and also written
 *   by another app through Health Connect is one session in the app, two in `list`.
 * - steps without intraday detail, AZM: `dailyRollUp`, which is reconciled and excludes
 *   off-wrist data (discovery `RollupDataPoint`), the app's daily figures.
 */
async function recordsFor(http: GoogleHttp, request: DayRequest, ctx: ProviderContext): Promise<NormalizedRecord[]> {
  const { stream, days } = request;
  const first = days[0]!;
  const last = days[days.length - 1]!;
  const intraday = request.intraday && ctx.intraday && usesIntraday(stream);
  const physical = () => ({ start: localDayBounds(first, ctx.zones).start, end: localDayBounds(last, ctx.zones).end });

  switch (stream) {
    case 'steps': {
      if (!intraday) return normalizeDailySteps(days, await dailyRollUp(http, ctx, 'steps', first, last), ctx.zones);
      const { start, end } = physical();
      const q = { type: 'steps', method: 'reconcile' as const, field: 'steps.interval.start_time', pageSize: MAX_PAGE_SIZE, timeOf: intervalStart('steps') };
      return normalizeSteps(days, await collectPhysicalRange(http, ctx, q, start, end), ctx.zones);
    }
    case 'heart_rate': {
      // No daily heart-rate form to fall back to (plan.ts): the days are empty, and free.
      if (!intraday) return [];
      const { start, end } = physical();
      const q = {
        type: 'heart-rate',
        method: 'reconcile' as const,
        field: 'heart_rate.sample_time.physical_time',
        pageSize: MAX_PAGE_SIZE,
        timeOf: sampleTime('heartRate'),
      };
      return normalizeHeartRate(days, await collectPhysicalRange(http, ctx, q, start, end), ctx.zones);
    }
    case 'active_zone_minutes':
      return normalizeActiveZoneMinutes(days, await dailyRollUp(http, ctx, 'active-zone-minutes', first, last), ctx.zones);
    case 'sleep': {
      // Sleep is filtered by its end (discovery `list.filter`: sleep rejects start filters), and the
      // civil end date is the legacy `dateOfSleep`, the day the record belongs to.
      const q = { type: 'sleep', method: 'reconcile' as const, field: 'sleep.interval.civil_end_time', pageSize: SESSION_PAGE_SIZE, timeLiterals: true };
      return normalizeSleep(days, await collectCivilDays(http, ctx, q, first, last), ctx.zones);
    }
    case 'exercise': {
      const q = { type: 'exercise', method: 'reconcile' as const, field: 'exercise.interval.civil_start_time', pageSize: SESSION_PAGE_SIZE, timeLiterals: true };
      return normalizeExercise(days, await collectCivilDays(http, ctx, q, first, last), ctx.zones);
    }
    case 'device':
      return normalizeDevices(await fetchDevices(http, ctx), ctx.zones);
    default: {
      const spec = DAILY[stream satisfies DailyStream];
      const prefix = spec.type.replace(/-/g, '_');
      const q = { type: spec.type, method: 'reconcile' as const, field: `${prefix}.date`, pageSize: MAX_PAGE_SIZE, timeLiterals: false };
      return normalizeDaily(stream, days, await collectCivilDays(http, ctx, q, first, last), ctx.zones);
    }
  }
}

/**
 * Runs one planned request: fetches, normalizes, and answers every requested day, with empty
 * `records` where Google had nothing. A stream whose scope the context says was not granted
 * fails with `scope_missing` without spending a request.
 */
export async function fetchStream(http: GoogleHttp, request: DayRequest, ctx: ProviderContext): Promise<DayResult[]> {
  const days = [...new Set(request.days)].sort();
  if (days.length === 0) return [];
  const scope = STREAM_SCOPES[request.stream];
  if (ctx.scopes.length > 0 && !hasScope(ctx.scopes, scope)) {
    throw new ProviderError('scope_missing', `Google Health ${request.stream}: the participant did not grant "${scope}"`, {
      reason: 'MISSING_OAUTH_SCOPE',
    });
  }
  const byDay = new Map<string, NormalizedRecord[]>(days.map((d) => [d, []]));
  for (const record of await recordsFor(http, { ...request, days }, ctx)) byDay.get(record.day)?.push(record);
  return days.map((day) => ({ day, records: byDay.get(day)! }));
}
