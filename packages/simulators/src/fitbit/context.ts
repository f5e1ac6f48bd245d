import type { WorldUser } from '../world/users.ts';
import { viewDay, type DayView } from '../world/world.ts';
import { addDays, dayDistance, isDate, localDateOf } from '../world/zones.ts';
import type { FitbitState } from './state.ts';
import type { Frame } from './wire-time.ts';

/** A rejected request: answered with Fitbit's error body. */
export class RequestError extends Error {
  constructor(
    readonly status: number,
    readonly errorType: string,
    message: string,
    readonly fieldName?: string,
  ) {
    super(message);
  }
}

/** Everything a data handler needs about the request. */
export interface DataContext {
  state: FitbitState;
  user: WorldUser;
  now: number;
  query: Record<string, string | undefined>;
  /** `?timezone=UTC` where supported, else the user's local time (fitbit-web-api §4). */
  frame: Frame;
  /** Base for absolute links (pagination.next), without trailing slash. */
  baseUrl: string;
  /** `Accept-Language`: `en_US` selects imperial units (fitbit-web-api §3). */
  acceptLanguage: string | undefined;
}

/** Parses a path date (`YYYY-MM-DD` or `today`, in the frame). */
export function parseDate(ctx: DataContext, raw: string, field = 'date'): string {
  if (raw === 'today') return ctx.frame.kind === 'utc' ? new Date(ctx.now).toISOString().slice(0, 10) : localDateOf(ctx.user.zoneHistory, ctx.now);
  if (!isDate(raw)) throw new RequestError(400, 'validation', `Invalid date: ${raw}. The date must be in the format yyyy-MM-dd.`, field);
  return raw;
}

const PERIOD_DAYS: Record<string, number> = { '1d': 1, '7d': 7, '30d': 30, '1w': 7 };
const PERIOD_MONTHS: Record<string, number> = { '1m': 1, '3m': 3, '6m': 6, '1y': 12 };

/**
 * Resolves `date/[start]/[end]` or `date/[date]/[period]` to an inclusive list of dates,
 * enforcing the endpoint's allowed periods and maximum range in days.
 */
export function parseRange(ctx: DataContext, first: string, second: string, maxDays: number, periods: readonly string[] = []): string[] {
  let start: string;
  let end: string;
  if (periods.includes(second)) {
    end = parseDate(ctx, first);
    const days = PERIOD_DAYS[second];
    if (days !== undefined) start = addDays(end, -(days - 1));
    else {
      const d = new Date(`${end}T00:00:00Z`);
      d.setUTCMonth(d.getUTCMonth() - (PERIOD_MONTHS[second] ?? 1));
      start = addDays(d.toISOString().slice(0, 10), 1);
    }
  } else {
    start = parseDate(ctx, first, 'startDate');
    end = parseDate(ctx, second, 'endDate');
  }
  const span = dayDistance(start, end) + 1;
  if (span < 1) throw new RequestError(400, 'validation', 'The end date must be on or after the start date.', 'endDate');
  if (span > maxDays) throw new RequestError(400, 'validation', `The date range must not exceed ${maxDays} days.`, 'endDate');
  return Array.from({ length: span }, (_, i) => addDays(start, i));
}

/** The minutes [from, to) of one local day that fall into a frame date. */
export interface Slice {
  view: DayView;
  from: number;
  to: number;
}

/** The local-day slices that make up `date` in the frame (one day locally, up to three in UTC). */
export function slicesFor(ctx: DataContext, date: string): Slice[] {
  if (ctx.frame.kind === 'local') {
    const view = viewDay(ctx.state.world, ctx.user, date, ctx.now);
    return [{ view, from: 0, to: Math.round((view.end - view.start) / 60_000) }];
  }
  const start = Date.parse(`${date}T00:00:00Z`);
  const end = start + 86_400_000;
  const slices: Slice[] = [];
  const last = localDateOf(ctx.user.zoneHistory, end - 1);
  for (let d = localDateOf(ctx.user.zoneHistory, start); d <= last; d = addDays(d, 1)) {
    const view = viewDay(ctx.state.world, ctx.user, d, ctx.now);
    const n = Math.round((view.end - view.start) / 60_000);
    const from = Math.max(0, Math.round((start - view.start) / 60_000));
    const to = Math.min(n, Math.round((end - view.start) / 60_000));
    if (to > from) slices.push({ view, from, to });
  }
  return slices;
}

/** Calls `fn` for each synced minute of the slices. */
export function eachVisibleMinute(slices: Slice[], fn: (i: number, view: DayView & { day: NonNullable<DayView['day']> }) => void): void {
  for (const s of slices) {
    const day = s.view.day;
    if (!day) continue;
    const v = { ...s.view, day };
    for (let i = s.from; i < Math.min(s.to, s.view.visibleMinutes); i += 1) fn(i, v);
  }
}

/** Validates an intraday detail level against the allowed ones and returns its size in seconds. */
export function parseDetail(raw: string, allowed: readonly string[]): number {
  if (!allowed.includes(raw)) throw new RequestError(400, 'validation', `Invalid detail-level: ${raw}. Supported: ${allowed.join(', ')}.`, 'detail-level');
  return raw === '1sec' ? 1 : Number(raw.replace('min', '')) * 60;
}

/** An intraday window: frame dates plus an inclusive `YYYY-MM-DDTHH:mm` range. */
export interface IntradayWindow {
  dates: string[];
  fromKey: string;
  toKey: string;
}

/**
 * Resolves an intraday request's dates and optional `/time/HH:mm/HH:mm`. A call may cover at most
 * 24 hours (fitbit-web-api §3.1).
 */
export function parseIntradayWindow(ctx: DataContext, first: string, second: string, startTime?: string, endTime?: string): IntradayWindow {
  const start = parseDate(ctx, first, 'startDate');
  const end = second === '1d' ? start : parseDate(ctx, second, 'endDate');
  for (const t of [startTime, endTime]) {
    if (t !== undefined && !/^([01]\d|2[0-3]):[0-5]\d$/.test(t)) throw new RequestError(400, 'validation', `Invalid time: ${t}. The time must be in the format HH:mm.`, 'time');
  }
  const from = Date.parse(`${start}T${startTime ?? '00:00'}:00Z`);
  const to = Date.parse(`${end}T${endTime ?? '23:59'}:00Z`) + 60_000;
  if (to <= from) throw new RequestError(400, 'validation', 'The end of the time range must be after its start.', 'endDate');
  if (to - from > 86_400_000) throw new RequestError(400, 'validation', 'The time range of an intraday request must not exceed 24 hours.', 'endDate');
  const dates = [start];
  if (end !== start) dates.push(end);
  return { dates, fromKey: `${start}T${startTime ?? '00:00'}`, toKey: `${end}T${endTime ?? '23:59'}` };
}

/** The query of a paginated list endpoint (`sleep/list.json`, `activities/list.json`). */
export interface ListQuery {
  sort: 'asc' | 'desc';
  /** `afterDate` (asc) or `beforeDate` (desc), as given: a date or a local date-time. */
  bound: string;
  limit: number;
  offset: number;
}

/**
 * Parses list parameters: exactly one of afterDate (with sort=asc) or beforeDate (with
 * sort=desc), limit ≤ 100 (fitbit-web-api §3.1).
 */
export function parseListQuery(ctx: DataContext): ListQuery {
  const { afterDate, beforeDate, sort, limit, offset } = ctx.query;
  if ((afterDate === undefined) === (beforeDate === undefined)) {
    throw new RequestError(400, 'validation', 'Exactly one of afterDate or beforeDate must be specified.', 'afterDate');
  }
  const bound = (afterDate ?? beforeDate) as string;
  if (!isDate(bound.slice(0, 10)) || !/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{3})?)?)?$/.test(bound)) {
    throw new RequestError(400, 'validation', `Invalid date: ${bound}. Use yyyy-MM-dd or yyyy-MM-ddTHH:mm:ss.`, afterDate ? 'afterDate' : 'beforeDate');
  }
  const expected = afterDate !== undefined ? 'asc' : 'desc';
  if (sort !== expected) throw new RequestError(400, 'validation', `sort must be ${expected} when ${afterDate ? 'afterDate' : 'beforeDate'} is used.`, 'sort');
  const n = Number(limit);
  if (!Number.isInteger(n) || n < 1 || n > 100) throw new RequestError(400, 'validation', 'limit must be an integer between 1 and 100.', 'limit');
  const o = offset === undefined ? 0 : Number(offset);
  if (!Number.isInteger(o) || o < 0) throw new RequestError(400, 'validation', 'offset must be a non-negative integer.', 'offset');
  return { sort: expected, bound, limit: n, offset: o };
}

/**
 * One page of a sorted list plus Fitbit's pagination object. Clients must follow `next` rather
 * than computing offsets (fitbit-web-api §3.3).
 */
export function pageOf<T>(ctx: DataContext, path: string, q: ListQuery, items: T[]): { items: T[]; pagination: Record<string, unknown> } {
  const boundKey = q.sort === 'asc' ? 'afterDate' : 'beforeDate';
  const link = (offset: number): string =>
    `${ctx.baseUrl}${path}?${new URLSearchParams({ offset: String(offset), limit: String(q.limit), sort: q.sort, [boundKey]: q.bound }).toString()}`;
  return {
    items: items.slice(q.offset, q.offset + q.limit),
    pagination: {
      [boundKey]: q.bound,
      limit: q.limit,
      next: q.offset + q.limit < items.length ? link(q.offset + q.limit) : '',
      offset: q.offset,
      previous: q.offset > 0 ? link(Math.max(0, q.offset - q.limit)) : '',
      sort: q.sort,
    },
  };
}

/** Local dates to scan for a list query: from the account's first day to today, bounded by the query. */
export function listDates(ctx: DataContext, q: ListQuery): string[] {
  const today = localDateOf(ctx.user.zoneHistory, ctx.now);
  const boundDate = q.bound.slice(0, 10);
  const first = q.sort === 'asc' && boundDate > ctx.user.since ? addDays(boundDate, -1) : ctx.user.since;
  const last = q.sort === 'desc' && boundDate < today ? addDays(boundDate, 1) : today;
  const out: string[] = [];
  for (let d = first; d <= last; d = addDays(d, 1)) out.push(d);
  return out;
}

/** Whether a floating local time string lies beyond the list bound in the list's direction. */
export function beyondBound(q: ListQuery, floatingTime: string): boolean {
  return q.sort === 'asc' ? floatingTime > q.bound : floatingTime < q.bound;
}
