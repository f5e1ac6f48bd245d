import { offsetMs, zoneAt, type ZoneHistory } from '../world/zones.ts';

/**
 * Fitbit renders most times as floating local time (no offset) in the zone the user's device
 * had at that moment (fitbit-web-api §4). A frame is either that local time or UTC (`?timezone=UTC`).
 */
export type Frame = { kind: 'local'; history: ZoneHistory } | { kind: 'utc' };

/** The frame's offset at instant `t`, ms. */
export function frameOffset(frame: Frame, t: number): number {
  return frame.kind === 'utc' ? 0 : offsetMs(zoneAt(frame.history, t), t);
}

/** `YYYY-MM-DDTHH:mm:ss.SSS` in the frame, without offset. */
export function floating(frame: Frame, t: number): string {
  return isoUtc23(t + frameOffset(frame, t));
}

const TWO = Array.from({ length: 60 }, (_, n) => String(n).padStart(2, '0'));
const THREE = Array.from({ length: 1000 }, (_, n) => String(n).padStart(3, '0'));
const DAY_MS = 86_400_000;
let lastDay = Number.NaN;
let lastDate = '';

/**
 * `new Date(ms).toISOString().slice(0, 23)`, the date part formatted once per day: intraday
 * responses render a time for every minute of every day they cover.
 */
function isoUtc23(ms: number): string {
  if (!(Number.isInteger(ms) && ms >= 0 && ms < 253_402_300_800_000)) return new Date(ms).toISOString().slice(0, 23);
  const day = Math.floor(ms / DAY_MS);
  if (day !== lastDay) {
    lastDay = day;
    lastDate = new Date(day * DAY_MS).toISOString().slice(0, 11);
  }
  let rest = ms - day * DAY_MS;
  const milli = rest % 1000;
  rest = (rest - milli) / 1000;
  const second = rest % 60;
  rest = (rest - second) / 60;
  return `${lastDate}${TWO[Math.floor(rest / 60)]}:${TWO[rest % 60]}:${TWO[second]}.${THREE[milli]}`;
}

/** `YYYY-MM-DDTHH:mm:ss.SSS±hh:mm`, local time with its offset (activity-log `startTime`, §3.3). */
export function withOffset(history: ZoneHistory, t: number): string {
  const off = offsetMs(zoneAt(history, t), t);
  const sign = off < 0 ? '-' : '+';
  const abs = Math.abs(off) / 60_000;
  const hh = String(Math.floor(abs / 60)).padStart(2, '0');
  const mm = String(abs % 60).padStart(2, '0');
  return `${new Date(t + off).toISOString().slice(0, 23)}${sign}${hh}:${mm}`;
}
