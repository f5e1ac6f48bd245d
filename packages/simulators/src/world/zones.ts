/**
 * Time-zone arithmetic on IANA zones (via Intl) and per-user zone histories. This is truth-side
 * calendar math (what local day an instant belongs to); wire formats live with each API's routes.
 */

/** From `from` (epoch ms) on, the user's devices keep `zone`'s local time. */
export interface ZoneSpan {
  from: number;
  zone: string;
}

/** A user's zones over time, sorted by `from`; the first span applies to all earlier time too. */
export type ZoneHistory = readonly ZoneSpan[];

/** Calendar fields of an instant in some zone. */
export interface LocalParts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  millisecond: number;
}

const MINUTE = 60_000;
const DAY = 86_400_000;
const formatters = new Map<string, Intl.DateTimeFormat>();
/** Per zone: the offset of each 15-minute bucket asked for (numeric keys: no string per lookup). */
const offsetCache = new Map<string, Map<number, number>>();

function formatterFor(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(zone, f);
  }
  return f;
}

/** Throws unless `zone` is an IANA zone this runtime knows. */
export function assertZone(zone: string): void {
  formatterFor(zone);
}

/** The zone's UTC offset at instant `t`, in ms (local = UTC + offset). */
export function offsetMs(zone: string, t: number): number {
  // Real-world transitions fall on quarter hours, so the offset is constant within a 15-minute bucket.
  const bucket = Math.floor(t / (15 * MINUTE));
  let buckets = offsetCache.get(zone);
  if (buckets === undefined) {
    buckets = new Map();
    offsetCache.set(zone, buckets);
  }
  const cached = buckets.get(bucket);
  if (cached !== undefined) return cached;
  const probe = bucket * 15 * MINUTE;
  const fields: Record<string, number> = {};
  for (const p of formatterFor(zone).formatToParts(new Date(probe))) {
    if (p.type !== 'literal') fields[p.type] = Number(p.value);
  }
  const asUtc = Date.UTC(
    fields.year ?? 1970,
    (fields.month ?? 1) - 1,
    fields.day ?? 1,
    fields.hour ?? 0,
    fields.minute ?? 0,
    fields.second ?? 0,
  );
  const offset = asUtc - probe;
  if (buckets.size > 200_000) buckets.clear();
  buckets.set(bucket, offset);
  return offset;
}

/** Calendar fields of instant `t` in `zone`. */
export function localParts(zone: string, t: number): LocalParts {
  const d = new Date(t + offsetMs(zone, t));
  return {
    year: d.getUTCFullYear(),
    month: d.getUTCMonth() + 1,
    day: d.getUTCDate(),
    hour: d.getUTCHours(),
    minute: d.getUTCMinutes(),
    second: d.getUTCSeconds(),
    millisecond: d.getUTCMilliseconds(),
  };
}

/** The zone in effect at instant `t`. */
export function zoneAt(history: ZoneHistory, t: number): string {
  let zone = history[0]?.zone ?? 'UTC';
  for (const span of history) {
    if (span.from <= t) zone = span.zone;
    else break;
  }
  return zone;
}

const TWO = Array.from({ length: 60 }, (_, n) => String(n).padStart(2, '0'));
const THREE = Array.from({ length: 1000 }, (_, n) => String(n).padStart(3, '0'));
let lastIsoDay = Number.NaN;
let lastIsoDate = '';

/**
 * `new Date(ms).toISOString()`, the date part formatted once per day: the simulators render a
 * time for every minute or sample of every day they answer for.
 */
export function isoString(ms: number): string {
  if (!(Number.isInteger(ms) && ms >= 0 && ms < 253_402_300_800_000)) return new Date(ms).toISOString();
  const day = Math.floor(ms / DAY);
  if (day !== lastIsoDay) {
    lastIsoDay = day;
    lastIsoDate = new Date(day * DAY).toISOString().slice(0, 11);
  }
  let rest = ms - day * DAY;
  const milli = rest % 1000;
  rest = (rest - milli) / 1000;
  const second = rest % 60;
  rest = (rest - second) / 60;
  return `${lastIsoDate}${TWO[Math.floor(rest / 60)]}:${TWO[rest % 60]}:${TWO[second]}.${THREE[milli]}Z`;
}

/** `YYYY-MM-DD` from epoch-day arithmetic on a UTC-shifted instant. */
export function isoDate(shifted: number): string {
  return isoString(shifted).slice(0, 10);
}

/** The local calendar date (`YYYY-MM-DD`) of instant `t` for a user with this zone history. */
export function localDateOf(history: ZoneHistory, t: number): string {
  const zone = zoneAt(history, t);
  return isoDate(t + offsetMs(zone, t));
}

/** Whether `s` is a real `YYYY-MM-DD` calendar date. */
export function isDate(s: string): boolean {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(s)) return false;
  const t = Date.parse(`${s}T00:00:00Z`);
  return Number.isFinite(t) && isoDate(t) === s;
}

/** `date` plus `n` calendar days. */
export function addDays(date: string, n: number): string {
  return isoDate(Date.parse(`${date}T00:00:00Z`) + n * DAY);
}

/** Whole calendar days from `a` to `b` (negative when b is earlier). */
export function dayDistance(a: string, b: string): number {
  return Math.round((Date.parse(`${b}T00:00:00Z`) - Date.parse(`${a}T00:00:00Z`)) / DAY);
}

/**
 * The instant at which `zone`'s wall clock shows `date` + `minuteOfDay`. For a wall time that
 * occurs twice (DST fall-back) the earlier instant; for one that never occurs (spring-forward) the
 * instant just after the gap.
 */
export function utcOfLocal(zone: string, date: string, minuteOfDay = 0): number {
  const wall = Date.parse(`${date}T00:00:00Z`) + minuteOfDay * MINUTE;
  const guess = wall - offsetMs(zone, wall);
  const before = wall - offsetMs(zone, guess - 6 * 3_600_000);
  const after = wall - offsetMs(zone, guess + 6 * 3_600_000);
  const valid = [before, after].filter((c) => c + offsetMs(zone, c) === wall);
  // In a spring-forward gap no candidate is valid: shift forward by the gap (as Temporal does).
  return valid.length > 0 ? Math.min(...valid) : before;
}

/**
 * The UTC bounds [start, end) of a user's local day. A zone change moves the boundary: a day in
 * which the user flies west is longer than 24 h, one flying east shorter (Lifewire, fitbit-web-api §4).
 */
export function dayBounds(history: ZoneHistory, date: string): { start: number; end: number } {
  return { start: dayStart(history, date), end: dayStart(history, addDays(date, 1)) };
}

function dayStart(history: ZoneHistory, date: string): number {
  const spans = history.length > 0 ? history : [{ from: -Infinity, zone: 'UTC' }];
  let best: number | undefined;
  spans.forEach((span, i) => {
    const until = spans[i + 1]?.from ?? Infinity;
    const from = i === 0 ? -Infinity : span.from;
    const midnight = utcOfLocal(span.zone, date);
    if (midnight >= from && midnight < until && (best === undefined || midnight < best)) best = midnight;
  });
  if (best !== undefined) return best;
  // No midnight happened (the clock jumped over it at a zone change): the day starts at the jump.
  for (const span of spans) {
    if (span.from !== -Infinity && localDateOf(history, span.from) >= date) return span.from;
  }
  return utcOfLocal(zoneAt(history, Infinity), date);
}
