import { addDays, daysBetween, parseLocal, type ProviderContext } from '@fitlamp/provider';
import { badResponse, callData, type GoogleHttp } from './http.ts';
import { dateBody, isObject, stringAt } from './proto-json.ts';

/**
 * `list` answers raw per-source points; `reconcile` merges the sources into what the Fitbit /
 * Google Health app shows (google-health-api §3.4). Same filter and paging rules.
 */
export type PointsMethod = 'list' | 'reconcile';

/** Page sizes: 10000 is the cap; `sleep` and `exercise` are capped at 25 (discovery `list.pageSize`). */
export const MAX_PAGE_SIZE = 10_000;
export const SESSION_PAGE_SIZE = 25;

/** One fetch never spends more requests than this, whatever the answers look like. */
const MAX_PAGES = 60;

const DAY = 86_400_000;

/** RFC 3339 in UTC, without a `.000` fraction (the form the docs' examples use). */
function rfc3339(ms: number): string {
  return new Date(ms).toISOString().replace('.000Z', 'Z');
}

/** A civil literal: `YYYY-MM-DD` at midnight, else `YYYY-MM-DDTHH:mm:ss` (discovery `list.filter`). */
function civilLiteral(wall: number): string {
  const iso = new Date(wall).toISOString();
  return wall % DAY === 0 ? iso.slice(0, 10) : iso.slice(0, 19);
}

/**
 * An AIP-160 range filter: snake_case data type prefix, `>=` and `<` joined by `AND`, literals
 * quoted (google-health-api §3.3), e.g.
 * `steps.interval.start_time >= "2026-03-08T05:00:00Z" AND steps.interval.start_time < "2026-03-09T04:00:00Z"`.
 */
function rangeFilter(field: string, from: string, to: string): string {
  return `${field} >= "${from}" AND ${field} < "${to}"`;
}

interface Page {
  points: unknown[];
  next: string | undefined;
}

interface PointsQuery {
  /** Kebab-case data type in the path, e.g. `heart-rate`. */
  type: string;
  method: PointsMethod;
  /** The filter member, e.g. `heart_rate.sample_time.physical_time`. */
  field: string;
  pageSize: number;
}

interface Budget {
  pages: number;
}

function endpointOf(q: PointsQuery): string {
  return `${q.type}-${q.method}`;
}

async function fetchPage(http: GoogleHttp, ctx: ProviderContext, q: PointsQuery, filter: string, budget: Budget, pageToken?: string): Promise<Page> {
  const endpoint = endpointOf(q);
  if (budget.pages >= MAX_PAGES) throw badResponse(endpoint, `no end after ${MAX_PAGES} pages; stopped rather than spend the participant's quota`);
  budget.pages += 1;
  const params = [`filter=${encodeURIComponent(filter)}`, `pageSize=${q.pageSize}`];
  if (pageToken) params.push(`pageToken=${encodeURIComponent(pageToken)}`);
  const suffix = q.method === 'reconcile' ? ':reconcile' : '';
  const body = await callData(http, ctx, { method: 'GET', url: `/v4/users/me/dataTypes/${q.type}/dataPoints${suffix}?${params.join('&')}`, endpoint });
  if (!isObject(body)) throw badResponse(endpoint, 'answer is not a JSON object');
  // proto3 JSON omits an empty repeated field: no `dataPoints` means none.
  const points = body.dataPoints ?? [];
  if (!Array.isArray(points)) throw badResponse(endpoint, 'dataPoints is not an array');
  // The last page says `"nextPageToken": ""` or nothing at all (§3.1).
  return { points, next: stringAt(body, 'nextPageToken') };
}

/** Identity of a point for de-duplication: its name when it has one, else its whole JSON. */
function identity(point: unknown): string {
  return (isObject(point) && (stringAt(point, 'name') ?? stringAt(point, 'dataPointName'))) || JSON.stringify(point);
}

/**
 * The last resort, used only when narrowing cannot help (every point on a full page shares one
 * timestamp, or a one-day daily filter overflows): follow `nextPageToken` as Google intends,
 * dropping repeats. Such a chain can still lose points to the tie bug; nothing better exists.
 */
async function followCursor(http: GoogleHttp, ctx: ProviderContext, q: PointsQuery, filter: string, first: Page, budget: Budget): Promise<unknown[]> {
  const seen = new Set<string>();
  const out: unknown[] = [];
  let page = first;
  for (;;) {
    for (const p of page.points) {
      const id = identity(p);
      if (seen.has(id)) continue;
      seen.add(id);
      out.push(p);
    }
    if (!page.next) return out;
    page = await fetchPage(http, ctx, q, filter, budget, page.next);
  }
}

/**
 * Every point of a physical-time range `[start, end)`, without trusting `nextPageToken`.
 *
 * Google orders points by start time, newest first, and its cursor can silently skip points that
 * share the timestamp of a page's last point (google-health-api §3.3, kkdev "Following the
 * cursor can return fewer records than exist"). So a full page is never continued: every point
 * newer than the page's oldest timestamp `t` is complete on it and kept; points at `t` are
 * dropped and the range is narrowed to `[start, t + 1 ms)`, a fresh query whose first page holds
 * them all again, ties included. Each point is kept exactly once (from the one query whose page
 * it was strictly newer than the boundary on, or from a last page), and each query costs what
 * following the cursor would have. A page that is not newest-first is split in two instead.
 */
export async function collectPhysicalRange(
  http: GoogleHttp,
  ctx: ProviderContext,
  q: PointsQuery & { timeOf: (point: unknown) => number | undefined },
  start: number,
  end: number,
  budget: Budget = { pages: 0 },
): Promise<unknown[]> {
  const out: unknown[] = [];
  let to = end;
  while (to > start) {
    const filter = rangeFilter(q.field, rfc3339(start), rfc3339(to));
    const page = await fetchPage(http, ctx, q, filter, budget);
    if (!page.next) {
      out.push(...page.points);
      return out;
    }
    const times = page.points.map(q.timeOf);
    const newestFirst = times.every((t, i) => t !== undefined && (i === 0 || t <= times[i - 1]!));
    if (!newestFirst) {
      if (to - start <= 1) return [...out, ...(await followCursor(http, ctx, q, filter, page, budget))];
      const mid = start + Math.floor((to - start) / 2);
      out.push(...(await collectPhysicalRange(http, ctx, q, mid, to, budget)));
      to = mid;
      continue;
    }
    const boundary = times[times.length - 1]!;
    const complete = page.points.filter((_, i) => times[i]! > boundary);
    if (complete.length === 0) return [...out, ...(await followCursor(http, ctx, q, filter, page, budget))];
    out.push(...complete);
    to = Math.min(to, boundary + 1);
  }
  return out;
}

/**
 * Every point whose civil field lies in `[from, to)` (wall-clock ms, as `parseLocal` gives).
 * Used for civil filters (daily `date`, sleep `civil_end_time`, exercise `civil_start_time`),
 * whose points are few: a full page is not continued but the range split in two, down to single
 * days (or, where the member takes a time, single seconds), as kkdev advises ("narrowing the
 * range until one page suffices"). Civil sub-ranges partition the points exactly whatever the
 * order and the DST folds, so nothing is lost or repeated.
 */
async function collectCivilRange(
  http: GoogleHttp,
  ctx: ProviderContext,
  q: PointsQuery & { timeLiterals: boolean },
  from: number,
  to: number,
  budget: Budget = { pages: 0 },
): Promise<unknown[]> {
  const filter = rangeFilter(q.field, civilLiteral(from), civilLiteral(to));
  const page = await fetchPage(http, ctx, q, filter, budget);
  if (!page.next) return page.points;
  const span = to - from;
  let mid: number | undefined;
  if (span > DAY) mid = from + Math.floor(span / DAY / 2) * DAY;
  else if (q.timeLiterals && span > 1000) mid = from + Math.floor(span / 2000) * 1000;
  if (mid === undefined || mid <= from) return followCursor(http, ctx, q, filter, page, budget);
  return [...(await collectCivilRange(http, ctx, q, from, mid, budget)), ...(await collectCivilRange(http, ctx, q, mid, to, budget))];
}

/** `collectCivilRange` over whole local days `first`…`last` (inclusive). */
export function collectCivilDays(
  http: GoogleHttp,
  ctx: ProviderContext,
  q: PointsQuery & { timeLiterals: boolean },
  first: string,
  last: string,
): Promise<unknown[]> {
  return collectCivilRange(http, ctx, q, parseLocal(first), parseLocal(addDays(last, 1)));
}

/**
 * `dailyRollUp` over local days `first`…`last` (inclusive; the range is closed-open, so it ends
 * the day after), one window per day. The range may span 90 days (14 for a few types none of
 * fitlamp's streams use). `pageSize` is the number of windows: Google rejects a smaller one
 * (kkdev measured `pageSize >= ceil(range/window)`). Dates are JSON numbers, never zero-padded.
 */
export async function dailyRollUp(http: GoogleHttp, ctx: ProviderContext, type: string, first: string, last: string): Promise<unknown[]> {
  const endpoint = `${type}-daily-rollup`;
  const windows = daysBetween(first, last).length;
  const request = {
    range: { start: { date: dateBody(first) }, end: { date: dateBody(addDays(last, 1)) } },
    windowSizeDays: 1,
    pageSize: windows,
  };
  const out: unknown[] = [];
  let pageToken: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const body = await callData(http, ctx, {
      method: 'POST',
      url: `/v4/users/me/dataTypes/${type}/dataPoints:dailyRollUp`,
      endpoint,
      json: pageToken ? { ...request, pageToken } : request,
    });
    if (!isObject(body)) throw badResponse(endpoint, 'answer is not a JSON object');
    const points = body.rollupDataPoints ?? [];
    if (!Array.isArray(points)) throw badResponse(endpoint, 'rollupDataPoints is not an array');
    out.push(...points);
    // The discovery document gives dailyRollUp no nextPageToken; follow one if it ever appears.
    pageToken = stringAt(body, 'nextPageToken');
    if (!pageToken) return out;
  }
  throw badResponse(endpoint, `no end after ${MAX_PAGES} pages`);
}
