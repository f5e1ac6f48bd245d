import { basalKcalPerMinute, type DayTruth } from '../world/day.ts';
import { firstSyncAfter, viewDay } from '../world/world.ts';
import {
  beyondBound,
  eachVisibleMinute,
  listDates,
  pageOf,
  parseDetail,
  parseListQuery,
  parseRange,
  slicesFor,
  type DataContext,
  type Slice,
} from './context.ts';
import { buckets, intradayRows, type Row } from './intraday.ts';
import { floating, withOffset, type Frame } from './wire-time.ts';

/** Daily activity resources (`activities/[resource]/date/...`, fitbit-web-api §3.1). */
export const DAILY_RESOURCES = [
  'steps',
  'distance',
  'calories',
  'caloriesBMR',
  'activityCalories',
  'floors',
  'elevation',
  'minutesSedentary',
  'minutesLightlyActive',
  'minutesFairlyActive',
  'minutesVeryActive',
] as const;
/** Intraday activity resources. */
export const INTRADAY_RESOURCES = ['steps', 'calories', 'distance', 'floors', 'elevation'] as const;
/** Periods accepted by the daily time series. */
export const ACTIVITY_PERIODS = ['1d', '7d', '30d', '1w', '1m', '3m', '6m', '1y'] as const;

type Intensity = 'sedentary' | 'lightly' | 'fairly' | 'very';

function intensity(day: DayTruth, i: number): Intensity | null {
  if (day.state[i] === 'sleep') return null;
  const steps = day.steps[i] ?? 0;
  const zone = day.zone[i] ?? 0;
  if (steps >= 130 || zone >= 2) return 'very';
  if (steps >= 100 || zone === 1) return 'fairly';
  if (steps >= 20) return 'lightly';
  return 'sedentary';
}

// Accept-Language en_US switches distances to miles and elevation to feet (fitbit-web-api §3).
function imperial(ctx: DataContext): boolean {
  return ctx.acceptLanguage === 'en_US';
}

function distanceValue(ctx: DataContext, km: number): number {
  return Math.round((imperial(ctx) ? km * 0.621371 : km) * 100_000) / 100_000;
}

function elevationValue(ctx: DataContext, floors: number): number {
  return Math.round(floors * (imperial(ctx) ? 10 : 3.048) * 100) / 100;
}

function dailyTotals(ctx: DataContext, slices: Slice[]): Record<(typeof DAILY_RESOURCES)[number], number> {
  const totals = { steps: 0, distance: 0, calories: 0, caloriesBMR: 0, activityCalories: 0, floors: 0, elevation: 0, minutesSedentary: 0, minutesLightlyActive: 0, minutesFairlyActive: 0, minutesVeryActive: 0 };
  const bmr = basalKcalPerMinute(ctx.user);
  // Basal calories accrue for every elapsed minute, synced or not, once the account exists.
  for (const s of slices) {
    if (s.view.date < ctx.user.since) continue;
    const elapsed = Math.max(0, Math.min(s.to, Math.floor((ctx.now - s.view.start) / 60_000)) - s.from);
    totals.caloriesBMR += elapsed * bmr;
  }
  let active = 0;
  eachVisibleMinute(slices, (i, { day }) => {
    totals.steps += day.steps[i] ?? 0;
    totals.distance += day.distanceKm[i] ?? 0;
    totals.floors += day.floors[i] ?? 0;
    active += (day.calories[i] ?? 0) - (day.caloriesBmr[i] ?? 0);
    const level = intensity(day, i);
    if (level === 'sedentary') totals.minutesSedentary += 1;
    else if (level === 'lightly') totals.minutesLightlyActive += 1;
    else if (level === 'fairly') totals.minutesFairlyActive += 1;
    else if (level === 'very') totals.minutesVeryActive += 1;
  });
  totals.activityCalories = Math.round(active);
  totals.calories = Math.round(totals.caloriesBMR + active);
  totals.caloriesBMR = Math.round(totals.caloriesBMR);
  totals.distance = distanceValue(ctx, totals.distance);
  totals.elevation = elevationValue(ctx, totals.floors);
  return totals;
}

/**
 * `GET /1/user/-/activities/[tracker/][resource]/date/[start]/[end|period].json`: one entry per
 * date, values as strings, "0" for days without data (fitbit-web-api §3.3, §3.4).
 */
export function activityTimeSeries(ctx: DataContext, tracker: boolean, resource: (typeof DAILY_RESOURCES)[number], first: string, second: string): object {
  const dates = parseRange(ctx, first, second, 1095, ACTIVITY_PERIODS);
  const key = `activities-${tracker ? 'tracker-' : ''}${resource}`;
  return { [key]: dates.map((d) => ({ dateTime: d, value: String(dailyTotals(ctx, slicesFor(ctx, d))[resource]) })) };
}

/**
 * Activity intraday (`activities/[resource]/date/[date]/1d/[detail].json`, optional
 * `/time/HH:mm/HH:mm`, or `/date/[start]/[end]/[detail]`): the full window zero-filled (unsynced
 * minutes read 0, fitbit-web-api §3.4), at most 24 hours.
 */
export function activityIntraday(ctx: DataContext, resource: (typeof INTRADAY_RESOURCES)[number], first: string, second: string, detail: string, startTime?: string, endTime?: string): object {
  const seconds = parseDetail(detail, ['1min', '5min', '15min']);
  const { dates, rows, slices } = intradayRows(ctx, first, second, startTime, endTime);
  const bmr = basalKcalPerMinute(ctx.user);
  const value = (r: Row): number => {
    if (!r.visible || !r.day) return resource === 'calories' ? bmr : 0;
    const d = r.day;
    if (resource === 'steps') return d.steps[r.index] ?? 0;
    if (resource === 'calories') return d.calories[r.index] ?? 0;
    if (resource === 'distance') return d.distanceKm[r.index] ?? 0;
    return d.floors[r.index] ?? 0;
  };
  const dataset = buckets(rows, seconds / 60).map((b) => {
    const sum = b.rows.reduce((s, r) => s + value(r), 0);
    if (resource === 'calories') {
      // Calorie points carry an activity level and METs ×10 as well (Fitbit intraday calories).
      const levels = b.rows.map((r) => (r.visible && r.day ? intensity(r.day, r.index) : 'sedentary'));
      const level = Math.max(...levels.map((l) => (l === 'very' ? 3 : l === 'fairly' ? 2 : l === 'lightly' ? 1 : 0)));
      return { level, mets: Math.round((sum / b.rows.length / bmr) * 10), time: b.time, value: Math.round(sum * 100) / 100 };
    }
    if (resource === 'distance') return { time: b.time, value: distanceValue(ctx, sum) };
    if (resource === 'elevation') return { time: b.time, value: elevationValue(ctx, sum) };
    return { time: b.time, value: sum };
  });
  return {
    [`activities-${resource}`]: dates.map((d) => ({ dateTime: d, value: String(dailyTotals(ctx, slices.get(d) ?? [])[resource]) })),
    [`activities-${resource}-intraday`]: { dataset, datasetInterval: seconds / 60, datasetType: 'minute' },
  };
}

function azmValue(fat: number, cardio: number, peak: number): Record<string, number> {
  // Cardio and peak minutes count double (Fitbit AZM); zero parts are left out.
  const value: Record<string, number> = { activeZoneMinutes: fat + 2 * cardio + 2 * peak };
  if (fat) value.fatBurnActiveZoneMinutes = fat;
  if (cardio) value.cardioActiveZoneMinutes = 2 * cardio;
  if (peak) value.peakActiveZoneMinutes = 2 * peak;
  return value;
}

function azmOf(slices: Slice[]): Record<string, number> {
  const n = [0, 0, 0, 0];
  eachVisibleMinute(slices, (i, { day }) => {
    n[day.zone[i] ?? 0] = (n[day.zone[i] ?? 0] ?? 0) + 1;
  });
  return azmValue(n[1] ?? 0, n[2] ?? 0, n[3] ?? 0);
}

/** `activities/active-zone-minutes/date/[start]/[end|period].json`; days without AZM are left out. */
export function azmTimeSeries(ctx: DataContext, first: string, second: string): object {
  const dates = parseRange(ctx, first, second, 1095, ACTIVITY_PERIODS);
  const entries = dates
    .map((d) => ({ dateTime: d, value: azmOf(slicesFor(ctx, d)) }))
    .filter((e) => (e.value.activeZoneMinutes ?? 0) > 0);
  return { 'activities-active-zone-minutes': entries };
}

/** AZM intraday (shape per the OpenAPI `GetAzmIntradayResponse`): only minutes that earned AZM. */
export function azmIntraday(ctx: DataContext, first: string, second: string, detail: string, startTime?: string, endTime?: string): object {
  const seconds = parseDetail(detail, ['1min', '5min', '15min']);
  const { dates, rows, slices } = intradayRows(ctx, first, second, startTime, endTime);
  const dataset = buckets(rows.filter((r) => r.visible && r.day && (r.day.zone[r.index] ?? 0) > 0), seconds / 60).map((b) => {
    const count = (z: number): number => b.rows.filter((r) => r.day?.zone[r.index] === z).length;
    return { time: b.time, value: azmValue(count(1), count(2), count(3)) };
  });
  return {
    'activities-active-zone-minutes': dates.map((d) => ({ dateTime: d, value: azmOf(slices.get(d) ?? []) })),
    'activities-active-zone-minutes-intraday': { dataset, datasetInterval: seconds / 60, datasetType: 'minute' },
  };
}

/**
 * `GET /1/user/-/activities/list.json`: recorded exercises with `startTime` carrying an offset
 * and `lastModified` in UTC (fitbit-web-api §3.3), paginated via `pagination.next`.
 */
export function activityLogList(ctx: DataContext): object {
  const q = parseListQuery(ctx);
  const logs: Array<{ start: string; log: object }> = [];
  const local: Frame = { kind: 'local', history: ctx.user.zoneHistory };
  for (const date of listDates(ctx, q)) {
    const view = viewDay(ctx.state.world, ctx.user, date, ctx.now);
    const day = view.day;
    if (!day) continue;
    for (const e of day.exercises) {
      if (e.end > view.start + view.visibleMinutes * 60_000) continue;
      const start = floating(local, e.start);
      if (!beyondBound(q, start)) continue;
      const from = Math.round((e.start - day.start) / 60_000);
      const to = Math.round((e.end - day.start) / 60_000);
      const levels: Record<Intensity, number> = { sedentary: 0, lightly: 0, fairly: 0, very: 0 };
      for (let i = from; i < to; i += 1) {
        const l = intensity(day, i);
        if (l) levels[l] += 1;
      }
      const duration = e.end - e.start;
      const localDate = start.slice(0, 10);
      const hhmm = (t: number): string => floating(local, t).slice(11, 16);
      logs.push({
        start,
        log: {
          activeDuration: duration,
          activityLevel: (['sedentary', 'lightly', 'fairly', 'very'] as const).map((name) => ({ minutes: levels[name], name })),
          activityName: e.kind === 'run' ? 'Run' : 'Walk',
          activityTypeId: e.kind === 'run' ? 90009 : 90013,
          averageHeartRate: e.averageHeartRate,
          calories: e.calories,
          caloriesLink: `${ctx.baseUrl}/1/user/-/activities/calories/date/${localDate}/${localDate}/1min/time/${hhmm(e.start)}/${hhmm(e.end)}.json`,
          distance: distanceValue(ctx, e.distanceKm),
          distanceUnit: imperial(ctx) ? 'Mile' : 'Kilometer',
          duration,
          elevationGain: 0,
          hasActiveZoneMinutes: e.minutesByZone[1] + e.minutesByZone[2] + e.minutesByZone[3] > 0,
          heartRateLink: `${ctx.baseUrl}/1/user/-/activities/heart/date/${localDate}/${localDate}/1sec/time/${hhmm(e.start)}/${hhmm(e.end)}.json`,
          lastModified: new Date(firstSyncAfter(ctx.state.world, ctx.user, e.end, ctx.now) ?? e.end).toISOString(),
          logId: e.id,
          logType: 'auto_detected',
          originalDuration: duration,
          originalStartTime: withOffset(ctx.user.zoneHistory, e.start),
          startTime: withOffset(ctx.user.zoneHistory, e.start),
          steps: e.steps,
          tcxLink: `${ctx.baseUrl}/1/user/-/activities/${e.id}.tcx`,
        },
      });
    }
  }
  logs.sort((a, b) => (q.sort === 'asc' ? a.start.localeCompare(b.start) : b.start.localeCompare(a.start)));
  const page = pageOf(ctx, '/1/user/-/activities/list.json', q, logs.map((l) => l.log));
  return { activities: page.items, pagination: page.pagination };
}
