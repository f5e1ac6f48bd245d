import { heartRateSeconds, heartRateZones } from '../world/day.ts';
import { viewDay } from '../world/world.ts';
import { eachVisibleMinute, parseDetail, parseRange, slicesFor, type DataContext, type Slice } from './context.ts';
import { buckets, intradayRows } from './intraday.ts';

/** Periods accepted by the heart-rate time series (fitbit-web-api §3.1). */
export const HEART_PERIODS = ['1d', '7d', '30d', '1w', '1m'] as const;

function heartValue(ctx: DataContext, date: string, slices: Slice[]): object {
  const z = heartRateZones(ctx.user);
  const bands = [
    { name: 'Out of Range', min: 30, max: z.fatBurn, minutes: 0, caloriesOut: 0 },
    { name: 'Fat Burn', min: z.fatBurn, max: z.cardio, minutes: 0, caloriesOut: 0 },
    { name: 'Cardio', min: z.cardio, max: z.peak, minutes: 0, caloriesOut: 0 },
    { name: 'Peak', min: z.peak, max: 220, minutes: 0, caloriesOut: 0 },
  ];
  eachVisibleMinute(slices, (i, { day }) => {
    if (day.heartRate[i] === null) return;
    const band = bands[day.zone[i] ?? 0];
    if (!band) return;
    band.minutes += 1;
    band.caloriesOut += day.calories[i] ?? 0;
  });
  // Resting HR belongs to a whole synced local day and is missing on thin days (fitbit-web-api §3.3).
  const local = viewDay(ctx.state.world, ctx.user, date, ctx.now);
  const resting = local.complete ? local.day?.restingHeartRate : null;
  return {
    customHeartRateZones: [],
    heartRateZones: bands.map((b) => ({ caloriesOut: Math.round(b.caloriesOut * 100) / 100, max: b.max, min: b.min, minutes: b.minutes, name: b.name })),
    ...(resting !== null && resting !== undefined ? { restingHeartRate: resting } : {}),
  };
}

/** `GET /1/user/-/activities/heart/date/[start]/[end|period].json` (≤ 1 year). */
export function heartTimeSeries(ctx: DataContext, first: string, second: string): object {
  const dates = parseRange(ctx, first, second, 366, HEART_PERIODS);
  return { 'activities-heart': dates.map((d) => ({ dateTime: d, value: heartValue(ctx, d, slicesFor(ctx, d)) })) };
}

/**
 * Heart-rate intraday at 1sec/1min/5min/15min, ≤ 24 h. Only measured points are listed; an
 * unsynced stretch is simply absent (fitbit-web-api §3.4).
 */
export function heartIntraday(ctx: DataContext, first: string, second: string, detail: string, startTime?: string, endTime?: string): object {
  const seconds = parseDetail(detail, ['1sec', '1min', '5min', '15min']);
  const { dates, rows, slices } = intradayRows(ctx, first, second, startTime, endTime);
  const measured = rows.filter((r) => r.visible && r.day && r.day.heartRate[r.index] !== null);
  const dataset =
    seconds === 1
      ? measured.flatMap((r) =>
          r.day ? heartRateSeconds(ctx.state.world.seed, r.day, r.index).map((s) => ({ time: `${r.time.slice(0, 6)}${String(s.second).padStart(2, '0')}`, value: s.bpm })) : [],
        )
      : buckets(measured, seconds / 60).map((b) => ({
          time: b.time,
          value: Math.round(b.rows.reduce((s, r) => s + (r.day?.heartRate[r.index] ?? 0), 0) / b.rows.length),
        }));
  return {
    'activities-heart': dates.map((d) => ({ dateTime: d, value: heartValue(ctx, d, slices.get(d) ?? []) })),
    'activities-heart-intraday': { dataset, datasetInterval: seconds === 1 ? 1 : seconds / 60, datasetType: seconds === 1 ? 'second' : 'minute' },
  };
}
