/**
 * Floating local times → UTC through a participant's zone history. Legacy Fitbit returns wall
 * clock times without offset; converting them with today's offset is wrong for any day on the
 * other side of a DST change or a trip (DESIGN.md "Times are local").
 */

/** From `validFrom` (UTC epoch ms) on, the participant's device used `zone` (IANA). */
export interface ZoneSpan {
  zone: string;
  validFrom: number;
}

/** A participant's zones, oldest first. The first span also covers everything before it. */
export type ZoneHistory = readonly ZoneSpan[];

const formatters = new Map<string, Intl.DateTimeFormat>();
const offsetCache = new Map<string, Map<number, number>>();
const QUARTER_HOUR = 15 * 60_000;
const DAY = 86_400_000;

function formatterFor(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(zone, f);
  }
  return f;
}

/**
 * The zone's UTC offset (ms) at an instant. Real-world transitions fall on quarter hours, so the
 * offset is constant within a quarter hour and cached per quarter hour.
 */
export function offsetAt(zone: string, instant: number): number {
  const bucket = Math.floor(instant / QUARTER_HOUR) * QUARTER_HOUR;
  let cache = offsetCache.get(zone);
  if (!cache) {
    cache = new Map();
    offsetCache.set(zone, cache);
  }
  const hit = cache.get(bucket);
  if (hit !== undefined) return hit;
  const parts = formatterFor(zone).formatToParts(new Date(bucket));
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value);
  const wall = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second'));
  const offset = wall - bucket;
  if (cache.size > 50_000) cache.clear();
  cache.set(bucket, offset);
  return offset;
}

const LOCAL = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?)?$/;

/** Parses `YYYY-MM-DD[THH:mm[:ss[.SSS]]]` as wall-clock milliseconds (the digits read as if UTC). */
export function parseLocal(local: string): number {
  const m = LOCAL.exec(local);
  if (!m) throw new RangeError(`not a local date-time: ${JSON.stringify(local)}`);
  const [, y, mo, d, h = '0', mi = '0', s = '0', ms = '0'] = m;
  return Date.UTC(+y!, +mo! - 1, +d!, +h, +mi, +s, +ms.padEnd(3, '0'));
}

/**
 * The instant(s) at which `zone`'s clocks read `wall`: two in a fall-back hour, none in a
 * spring-forward gap (then the instant just after the gap, as clocks would show it).
 */
function candidates(zone: string, wall: number): number[] {
  const found = new Set<number>();
  for (const probe of [wall - DAY, wall, wall + DAY]) {
    const instant = wall - offsetAt(zone, probe);
    if (instant + offsetAt(zone, instant) === wall) found.add(instant);
  }
  if (found.size === 0) return [wall - offsetAt(zone, wall - DAY)];
  return [...found].sort((a, b) => a - b);
}

export interface LocalToUtcOptions {
  /**
   * For a wall time that occurs twice (the fall-back hour), take the first occurrence at or
   * after this instant. Series in time order pass the previous point's instant.
   */
  notBefore?: number;
}

/**
 * Converts a floating local time to UTC epoch ms through the zone valid at that moment. Every
 * span of the history proposes the instant(s) its zone would give; a proposal counts only if it
 * falls inside its span. Of those, the earliest at or after `notBefore` wins (a series in time
 * order thereby walks through a fall-back hour, or a westward trip that repeats wall-clock
 * times, in order); without `notBefore`, the earliest.
 */
export function localToUtc(local: string | number, history: ZoneHistory, options: LocalToUtcOptions = {}): number {
  if (history.length === 0) throw new RangeError('zone history is empty');
  const wall = typeof local === 'number' ? local : parseLocal(local);
  const valid: number[] = [];
  const all: number[] = [];
  for (let i = 0; i < history.length; i++) {
    const from = i === 0 ? -Infinity : history[i]!.validFrom;
    const until = i + 1 < history.length ? history[i + 1]!.validFrom : Infinity;
    for (const c of candidates(history[i]!.zone, wall)) {
      all.push(c);
      if (c >= from && c < until) valid.push(c);
    }
  }
  // A wall time no span can produce (e.g. skipped by an eastward trip): the nearest guess.
  const pool = (valid.length > 0 ? valid : all).sort((a, b) => a - b);
  if (options.notBefore === undefined) return pool[0]!;
  return pool.find((c) => c >= options.notBefore!) ?? pool[pool.length - 1]!;
}

/** The zone a participant was in at an instant. */
function zoneAtInstant(history: ZoneHistory, instant: number): string {
  if (history.length === 0) throw new RangeError('zone history is empty');
  for (let i = history.length - 1; i > 0; i--) if (instant >= history[i]!.validFrom) return history[i]!.zone;
  return history[0]!.zone;
}

/** The participant's local calendar day (YYYY-MM-DD) at an instant. */
export function localDayAt(history: ZoneHistory, instant: number): string {
  const zone = zoneAtInstant(history, instant);
  return new Date(instant + offsetAt(zone, instant)).toISOString().slice(0, 10);
}

/** `day` plus `n` calendar days (negative to go back). */
export function addDays(day: string, n: number): string {
  return new Date(parseLocal(day) + n * DAY).toISOString().slice(0, 10);
}

/**
 * Every day from `from` to `to`, inclusive, oldest first. With `newest`, at most that many: the
 * last ones (a range from untrusted input then costs no more than `newest` steps).
 */
export function daysBetween(from: string, to: string, newest?: number): string[] {
  const out: string[] = [];
  if (from > to || (newest !== undefined && newest < 1)) return out;
  const floor = newest === undefined ? from : addDays(to, 1 - newest);
  // Stops at `to` without stepping past it (the day after 9999-12-31 is no YYYY-MM-DD).
  for (let d = floor > from ? floor : from; ; d = addDays(d, 1)) {
    out.push(d);
    if (d >= to) return out;
  }
}

/** The UTC instants at which a local day starts and ends (the end is the next day's start). */
export function localDayBounds(day: string, history: ZoneHistory): { start: number; end: number } {
  return { start: localToUtc(day, history), end: localToUtc(addDays(day, 1), history) };
}

/**
 * The local days a participant's sync covers at `instant`: today and the `backfillDays` complete
 * days before it, oldest first. Counting complete days, not "the last N days including today",
 * is what gives a participant who connects a minute after their local midnight the same history
 * as one who connects a minute before it (issue: the window must not depend on the hour).
 */
export function syncWindow(history: ZoneHistory, instant: number, backfillDays: number): { first: string; today: string } {
  const today = localDayAt(history, instant);
  return { first: addDays(today, -backfillDays), today };
}
