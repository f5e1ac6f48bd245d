import { isoString, localParts, offsetMs, zoneAt, type ZoneHistory } from '../world/zones.ts';

/**
 * proto3 JSON as the Google Health API writes it (google-health-api §3.1): Timestamps RFC3339 UTC
 * with `Z` (no fraction when it is zero), Durations `"Ns"`, int64 as strings, default values
 * omitted, NaN doubles as `"NaN"`.
 */

/** RFC3339 UTC, `2026-02-23T13:10:00Z`; milliseconds only when non-zero. */
export function timestamp(ms: number): string {
  const iso = isoString(ms);
  return iso.endsWith('.000Z') ? `${iso.slice(0, 19)}Z` : iso;
}

/** A Duration from milliseconds: `"-18000s"`, `"900s"`, `"0.500s"`. */
export function duration(ms: number): string {
  const s = ms / 1000;
  return Number.isInteger(s) ? `${s}s` : `${s.toFixed(3)}s`;
}

/** int64 as a string; undefined (omitted) for 0, proto3's default. */
export function int64(n: number): string | undefined {
  return n === 0 ? undefined : String(Math.round(n));
}

/** int64 as a string, kept even when 0 (output fields the live API sends with zeros, e.g. sleep summaries). */
export function int64Always(n: number): string {
  return String(Math.round(n));
}

/** A double: `"NaN"`/`"Infinity"` as strings, 0 omitted. */
export function double(n: number): number | string | undefined {
  if (Number.isNaN(n)) return 'NaN';
  if (!Number.isFinite(n)) return n > 0 ? 'Infinity' : '-Infinity';
  return n === 0 ? undefined : n;
}

/** Drops undefined members and `false` booleans (proto3 omits defaults). */
export function compact<T extends Record<string, unknown>>(obj: T): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined || v === false || v === '') continue;
    if (Array.isArray(v) && v.length === 0) continue;
    out[k] = v;
  }
  return out as T;
}

/** The user's UTC offset at instant `t`, as a Duration string. */
export function utcOffset(history: ZoneHistory, t: number): string {
  return duration(offsetMs(zoneAt(history, t), t));
}

/** Civil (local wall-clock) time of `t` as `YYYY-MM-DDTHH:mm:ss`, for filters and notifications. */
export function civilString(history: ZoneHistory, t: number): string {
  const off = offsetMs(zoneAt(history, t), t);
  return isoString(t + off).slice(0, 19);
}

/** `{year, month, day}` (google.type.Date) of a `YYYY-MM-DD` string. */
export function dateMessage(date: string): { year: number; month: number; day: number } {
  const [y, m, d] = date.split('-').map(Number);
  return { year: y ?? 0, month: m ?? 0, day: d ?? 0 };
}

/** A CivilDateTime message of instant `t` in the user's zone then; zero time fields omitted. */
export function civilDateTime(history: ZoneHistory, t: number): { date: { year: number; month: number; day: number }; time?: Record<string, number> } {
  const p = localParts(zoneAt(history, t), t);
  const time: Record<string, number> = {};
  if (p.hour) time.hours = p.hour;
  if (p.minute) time.minutes = p.minute;
  if (p.second) time.seconds = p.second;
  if (p.millisecond) time.nanos = p.millisecond * 1_000_000;
  return { date: { year: p.year, month: p.month, day: p.day }, ...(Object.keys(time).length > 0 ? { time } : {}) };
}

/** An ObservationTimeInterval / SessionTimeInterval; civil fields only when asked (live samples omit them). */
export function interval(history: ZoneHistory, start: number, end: number, civil: boolean): Record<string, unknown> {
  return {
    startTime: timestamp(start),
    startUtcOffset: utcOffset(history, start),
    endTime: timestamp(end),
    endUtcOffset: utcOffset(history, end),
    ...(civil ? { civilStartTime: civilDateTime(history, start), civilEndTime: civilDateTime(history, end) } : {}),
  };
}

/** An ObservationSampleTime. */
export function sampleTime(history: ZoneHistory, t: number, civil: boolean): Record<string, unknown> {
  return { physicalTime: timestamp(t), utcOffset: utcOffset(history, t), ...(civil ? { civilTime: civilDateTime(history, t) } : {}) };
}
