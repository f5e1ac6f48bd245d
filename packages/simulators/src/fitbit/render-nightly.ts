import { viewNight, type NightView } from '../world/world.ts';
import { parseDate, parseRange, type DataContext } from './context.ts';

type Summary = NonNullable<NightView['summary']>;

function nightly<K extends keyof Summary>(ctx: DataContext, date: string, key: K): Summary[K] | null {
  return viewNight(ctx.state.world, ctx.user, date, ctx.now).summary?.[key] ?? null;
}

function dates(ctx: DataContext, first: string, second: string | undefined, maxDays: number): string[] {
  return second === undefined ? [parseDate(ctx, first)] : parseRange(ctx, first, second, maxDays);
}

/**
 * SpO2 summary of the main sleep ending on each date. By date: one object (`{}` without data);
 * by interval: an array where days without data are date-only objects (fitbit-web-api §3.3).
 */
export function spo2(ctx: DataContext, first: string, second: string | undefined): object {
  const entries = dates(ctx, first, second, 1095).map((d) => {
    const v = nightly(ctx, d, 'spo2');
    return v ? { dateTime: d, value: v } : { dateTime: d };
  });
  if (second !== undefined) return entries;
  const only = entries[0];
  return only && 'value' in only ? only : {};
}

/** HRV (`{"hrv":[{dateTime, value:{dailyRmssd, deepRmssd}}]}`), ≤ 30 days; days without data omitted. */
export function hrv(ctx: DataContext, first: string, second: string | undefined): object {
  return {
    hrv: dates(ctx, first, second, 30).flatMap((d) => {
      const v = nightly(ctx, d, 'hrv');
      return v ? [{ dateTime: d, value: v }] : [];
    }),
  };
}

/** Breathing rate (`{"br":[{dateTime, value:{breathingRate}}]}`), ≤ 30 days. */
export function breathingRate(ctx: DataContext, first: string, second: string | undefined): object {
  return {
    br: dates(ctx, first, second, 30).flatMap((d) => {
      const v = nightly(ctx, d, 'breathingRate');
      return v === null ? [] : [{ dateTime: d, value: { breathingRate: v } }];
    }),
  };
}

/** Skin temperature relative to baseline (`{"tempSkin":[…]}`), ≤ 30 days. */
export function skinTemperature(ctx: DataContext, first: string, second: string | undefined): object {
  return {
    tempSkin: dates(ctx, first, second, 30).flatMap((d) => {
      const v = nightly(ctx, d, 'skinTempRelative');
      return v === null ? [] : [{ dateTime: d, value: { nightlyRelative: v }, logType: 'dedicated_temp_sensor' }];
    }),
  };
}
