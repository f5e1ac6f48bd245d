/**
 * Reading Google's proto3 JSON (google-health-api §3.1): int64 fields are strings (`"512"`),
 * Durations are strings with an `s` suffix (`"-18000s"`, `"1.5s"`), doubles may be the strings
 * `"NaN"`/`"Infinity"`, Timestamps are RFC 3339 UTC with up to nanosecond fractions, and fields
 * holding their default value (0, false, "", []) are omitted. These helpers answer `undefined`
 * for anything absent or unusable, so callers decide what a missing value means.
 */

export type Json = Record<string, unknown>;

export function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function objectAt(v: unknown, key: string): Json | undefined {
  const child = isObject(v) ? v[key] : undefined;
  return isObject(child) ? child : undefined;
}

export function arrayAt(v: unknown, key: string): unknown[] {
  const child = isObject(v) ? v[key] : undefined;
  return Array.isArray(child) ? child : [];
}

export function stringAt(v: unknown, key: string): string | undefined {
  const child = isObject(v) ? v[key] : undefined;
  return typeof child === 'string' && child !== '' ? child : undefined;
}

/**
 * A finite number from a JSON number or a numeric string (int64, or a double sent as a string).
 * `"NaN"`, `"Infinity"` and `"-Infinity"` (proto3 for non-finite doubles) are not data: undefined.
 */
export function num(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v === 'string' && v.trim() !== '') {
    const n = Number(v);
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

/**
 * An int64/int32 field where omission means the proto3 default 0 (e.g. `Steps.count`): absent
 * → 0, unusable → undefined.
 */
export function intOrZero(v: unknown): number | undefined {
  return v === undefined ? 0 : num(v);
}

const DURATION = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/;

/** A proto3 Duration (`"3600s"`, `"-18000s"`, `"0.500s"`) in milliseconds. */
export function durationMs(v: unknown): number | undefined {
  if (typeof v !== 'string') return undefined;
  const m = DURATION.exec(v);
  if (!m) return undefined;
  const ms = Number(m[2]) * 1000 + Math.round(Number(`0.${m[3] ?? '0'}`) * 1000);
  return m[1] ? -ms : ms;
}

const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/;

/** An RFC 3339 Timestamp as UTC epoch ms (sub-millisecond digits truncated). */
export function timestampMs(v: unknown): number | undefined {
  if (typeof v !== 'string' || !TIMESTAMP.test(v)) return undefined;
  // Date.parse takes at most millisecond precision reliably: cut longer fractions first.
  const ms = Date.parse(v.replace(/(\.\d{3})\d+/, '$1'));
  return Number.isFinite(ms) ? ms : undefined;
}

/** A `google.type.Date` (`{year, month, day}`; zero fields omitted) as `YYYY-MM-DD`. */
export function dateString(v: unknown): string | undefined {
  if (!isObject(v)) return undefined;
  const y = num(v.year);
  const m = num(v.month);
  const d = num(v.day);
  if (!y || !m || !d) return undefined;
  return `${String(y).padStart(4, '0')}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`;
}

/** `YYYY-MM-DD` as a `google.type.Date` body: plain numbers, never zero-padded (troubleshooting page). */
export function dateBody(day: string): { year: number; month: number; day: number } {
  const [y, m, d] = day.split('-').map(Number);
  return { year: y!, month: m!, day: d! };
}

/**
 * The participant's civil date at an instant, from the offset Google recorded with it
 * (`startUtcOffset`, `utcOffset`): the same wall clock the device showed, so the same date the
 * legacy API reported.
 */
export function civilDate(instant: number, offset: unknown): string | undefined {
  const off = durationMs(offset);
  return off === undefined ? undefined : new Date(instant + off).toISOString().slice(0, 10);
}
