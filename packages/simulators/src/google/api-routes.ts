import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { WorldUser } from '../world/users.ts';
import { findUser, viewDay, viewDevices } from '../world/world.ts';
import { addDays, dayDistance, isDate, localDateOf, offsetMs, zoneAt } from '../world/zones.ts';
import { CLOUD_PLATFORM, DATA_METHOD_SCOPES, IDENTITY_SCOPES, RENDERED_TYPES, SCOPES, findDataType, rollupMaxDays, type DataTypeInfo, type Operation } from './catalogue.ts';
import { ApiError, invalid, sendApiError } from './errors.ts';
import { matches, parseFilter, physicalSpan } from './filter.ts';
import { checkBearer } from './oauth.ts';
import { bucketsAreDisjoint, dataSource, heartRateSamples, pointsForDate, type Point, type RenderContext } from './points.ts';
import { healthUserIdOf, type AccessToken, type GoogleState } from './state.ts';
import { compact, dateMessage, double, duration, int64, timestamp } from './wire.ts';

/** Everything a handler needs about an authenticated call. */
interface Call {
  state: GoogleState;
  token: AccessToken;
  user: WorldUser;
  healthUserId: string;
  now: number;
  query: Record<string, string | undefined>;
}

const DATA_SOURCE_FAMILIES = ['all-sources', 'google-wearables', 'google-sources'];

function permissionDenied(): ApiError {
  return new ApiError(403, 'The caller does not have permission', undefined, {}, 'PERMISSION_DENIED');
}

/** 403 when the token has none of the method's scopes, or not the one this data type needs (§8.3). */
function requireScope(call: Call, accepted: string[], needed?: string): void {
  const has = (s: string): boolean => call.token.scopes.includes(s);
  if (!accepted.some(has)) {
    throw new ApiError(403, 'Request had insufficient authentication scopes.', 'ACCESS_TOKEN_SCOPE_INSUFFICIENT', { service: 'health.googleapis.com', method: 'google.devicesandservices.health.v4.HealthService' });
  }
  if (needed && !has(needed)) {
    throw new ApiError(403, `The caller is missing the OAuth scope required for this data type: ${needed}`, 'MISSING_OAUTH_SCOPE', { required_scope: needed });
  }
}

/**
 * Resolves the `{user}` path segment. Collection methods accept only `me` (a numeric id answers
 * 400 with no details, google-health-api §3.1); single-resource reads accept the caller's own id.
 */
function checkParent(call: Call, segment: string, collection: boolean): void {
  if (segment === 'me') return;
  if (collection) throw new ApiError(400, 'Request contains an invalid argument.');
  if (segment !== call.healthUserId) throw permissionDenied();
}

/** Spends one request of the user's rolling-minute budget (google-health-api §5.1, §8.4). */
function spendRequest(state: GoogleState, healthUserId: string): void {
  const now = state.clock.now();
  const recent = (state.rate.get(healthUserId) ?? []).filter((t) => t > now - 60_000 && t <= now);
  state.rate.set(healthUserId, recent);
  if (recent.length >= state.rateLimitPerMinute) {
    state.counters.rateLimited += 1;
    const retryAfter = Math.max(1, Math.ceil(((recent[0] ?? now) + 60_000 - now) / 1000));
    throw new ApiError(
      429,
      `Quota exceeded for quota metric 'Requests' and limit 'Requests per minute per user' of service 'health.googleapis.com' for consumer 'project_number:${state.webhooks.projectNumber}'.`,
      'RATE_LIMIT_EXCEEDED',
      {
        service: 'health.googleapis.com',
        quota_metric: 'health.googleapis.com/requests',
        quota_limit: 'RequestsPerMinutePerUser',
        quota_limit_value: String(state.rateLimitPerMinute),
        consumer: `projects/${state.webhooks.projectNumber}`,
      },
      'RESOURCE_EXHAUSTED',
      state.retryAfterHeader ? { 'retry-after': String(retryAfter) } : {},
    );
  }
  recent.push(now);
}

function renderContext(call: Call): RenderContext {
  return {
    world: call.state.world,
    user: call.user,
    healthUserId: call.healthUserId,
    now: call.now,
    civilTimes: call.state.civilTimes,
    phone: call.state.phoneUsers.has(call.user.id),
  };
}

function dataType(raw: string, op: Operation): DataTypeInfo {
  const type = findDataType(raw);
  if (!type) {
    const snake = raw.includes('_');
    throw invalid(snake ? 'INVALID_DATA_TYPE_FORMAT' : 'INVALID_DATA_TYPE', snake ? `The data type ID ${raw} must be kebab-case (e.g. heart-rate).` : `The data type ID ${raw} is not supported.`, { data_type: raw });
  }
  if (!type.ops.includes(op)) throw invalid('UNSUPPORTED_DATA_TYPE_ACTION', `The ${op} operation is not supported for data type ${type.path}.`, { data_type: type.path });
  return type;
}

function pageSizeOf(raw: string | number | undefined, type: DataTypeInfo | undefined, defaults: { def: number; max: number }): number {
  if (raw === undefined || raw === '') return defaults.def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw invalid('INVALID_PAGE_SIZE', `Invalid page size: ${raw}. It must be a non-negative integer.`);
  if (n === 0) return defaults.def;
  // Values above the maximum are truncated, not refused (Discovery `list.pageSize`).
  const max = type && (type.path === 'sleep' || type.path === 'exercise') ? 25 : defaults.max;
  return Math.min(n, max);
}

interface Cursor {
  order: number;
  tie: number;
}

function fingerprint(parts: Array<string | number | undefined>): string {
  return Buffer.from(JSON.stringify(parts)).toString('base64url').slice(-24);
}

function encodeToken(fp: string, cursor: Cursor): string {
  return Buffer.from(JSON.stringify({ q: fp, o: cursor.order, t: cursor.tie })).toString('base64url');
}

function decodeToken(raw: string | undefined, fp: string): Cursor | null {
  if (raw === undefined || raw === '') return null;
  try {
    const parsed = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as { q?: unknown; o?: unknown; t?: unknown };
    if (parsed.q === fp && typeof parsed.o === 'number' && typeof parsed.t === 'number') return { order: parsed.o, tie: parsed.t };
  } catch {
    // fall through
  }
  throw invalid('INVALID_PAGE_TOKEN', 'The page token is invalid or does not belong to this request (all other parameters must stay the same).');
}

/** Scans the world newest-first for one page of a list/reconcile query. */
function queryPoints(call: Call, type: DataTypeInfo, method: 'list' | 'reconcile'): { points: Point[]; next: string } {
  const q = call.query;
  const filter = parseFilter(type, q.filter);
  const family = q.dataSourceFamily;
  if (method === 'reconcile' && family !== undefined && family !== '') {
    const m = /^users\/me\/dataSourceFamilies\/(.+)$/.exec(family);
    if (!m || !DATA_SOURCE_FAMILIES.includes(m[1] ?? '')) {
      throw invalid('INVALID_DATA_POINT_DATA_SOURCE_FAMILY', `Invalid data source family: ${family}. Supported: ${DATA_SOURCE_FAMILIES.map((f) => `users/me/dataSourceFamilies/${f}`).join(', ')}.`);
    }
  }
  const sessionType = type.path === 'sleep' || type.path === 'exercise';
  const pageSize = pageSizeOf(q.pageSize, type, sessionType ? { def: 25, max: 25 } : { def: 1440, max: 10_000 });
  const fp = fingerprint([method, type.path, q.filter ?? '', q.pageSize ?? '', family ?? '']);
  const cursor = decodeToken(q.pageToken, fp);
  if (!RENDERED_TYPES.has(type.path)) return { points: [], next: '' };

  const ctx = renderContext(call);
  const h = call.user.zoneHistory;
  const span = physicalSpan(filter);
  const today = localDateOf(h, call.now);
  let last = Number.isFinite(span.to) ? addDays(localDateOf(h, span.to), 1) : today;
  if (cursor) last = addDays(localDateOf(h, cursor.order), 1) < last ? addDays(localDateOf(h, cursor.order), 1) : last;
  if (last > today) last = today;
  let first = Number.isFinite(span.from) ? addDays(localDateOf(h, span.from), -1) : call.user.since;
  if (first < call.user.since) first = call.user.since;

  const after = (p: Point): boolean => {
    if (!cursor) return true;
    // The tie bug: the token keeps only the last timestamp, so the page after it starts strictly
    // before it and a point sharing that timestamp is skipped (google-health-api §3.3, [LIVE]).
    if (call.state.tieBug) return p.order < cursor.order;
    return p.order < cursor.order || (p.order === cursor.order && p.tie > cursor.tie);
  };
  const collected: Point[] = [];
  const disjoint = bucketsAreDisjoint(type);
  for (let d = last; d >= first; d = addDays(d, -1)) {
    for (const p of pointsForDate(ctx, type, d)) {
      // reconcile merges sources per interval (max per minute); the phone never exceeds the watch.
      if (method === 'reconcile' && p.source !== 'watch') continue;
      if (matches(filter, p.values) && after(p)) collected.push(p);
    }
    if (disjoint && collected.length > pageSize) break;
  }
  collected.sort((a, b) => b.order - a.order || a.tie - b.tie);
  const page = collected.slice(0, pageSize);
  const lastPoint = page[page.length - 1];
  const next = collected.length > pageSize && lastPoint ? encodeToken(fp, { order: lastPoint.order, tie: lastPoint.tie }) : '';
  return { points: page, next };
}

function listDataPoints(call: Call, typeRaw: string, method: 'list' | 'reconcile'): object {
  const type = dataType(typeRaw, method);
  requireScope(call, DATA_METHOD_SCOPES, type.scope);
  const ctx = renderContext(call);
  const { points, next } = queryPoints(call, type, method);
  const recording = type.shape === 'daily' ? 'DERIVED' : 'PASSIVELY_MEASURED';
  const items = points.map((p) =>
    method === 'list'
      ? { ...(p.name ? { name: p.name } : {}), dataSource: dataSource(ctx, p.source, recording), [type.member]: p.render() }
      : { ...(p.name ? { dataPointName: p.name } : {}), [type.member]: p.render() },
  );
  // proto3 omits an empty repeated field; the last page still carries `"nextPageToken": ""` (codelab sample).
  return { ...(items.length > 0 ? { dataPoints: items } : {}), nextPageToken: next };
}

function getDataPoint(call: Call, typeRaw: string, id: string): object {
  const type = dataType(typeRaw, 'get');
  requireScope(call, DATA_METHOD_SCOPES, type.scope);
  const ctx = renderContext(call);
  const wanted = `users/${call.healthUserId}/dataTypes/${type.path}/dataPoints/${id}`;
  const today = localDateOf(call.user.zoneHistory, call.now);
  if (RENDERED_TYPES.has(type.path)) {
    for (let d = today; d >= call.user.since; d = addDays(d, -1)) {
      const p = pointsForDate(ctx, type, d).find((x) => x.name === wanted);
      if (p) return { name: p.name, dataSource: dataSource(ctx, p.source), [type.member]: p.render() };
    }
  }
  throw new ApiError(404, `Data point ${wanted} not found.`, 'RESOURCE_NOT_FOUND', { resource: wanted });
}

function civilDate(v: unknown, field: string): { date: string; midnight: boolean } {
  const obj = (v ?? {}) as { date?: { year?: unknown; month?: unknown; day?: unknown }; time?: Record<string, unknown> };
  const d = obj.date;
  const ok = d && [d.year, d.month, d.day].every((x) => Number.isInteger(x));
  const date = ok ? `${String(d.year).padStart(4, '0')}-${String(d.month).padStart(2, '0')}-${String(d.day).padStart(2, '0')}` : '';
  if (!ok || !isDate(date)) throw invalid('INVALID_CIVIL_DATE_TIME', `${field} must be a CivilDateTime with a valid date {year, month, day}.`);
  const time = obj.time ?? {};
  const midnight = ['hours', 'minutes', 'seconds', 'nanos'].every((k) => time[k] === undefined || time[k] === 0);
  return { date, midnight };
}

/** `dataPoints:dailyRollUp`: civil-day windows in the user's time zone; no nextPageToken (§3.5). */
function dailyRollUp(call: Call, typeRaw: string, body: unknown): object {
  const type = dataType(typeRaw, 'dailyRollUp');
  requireScope(call, DATA_METHOD_SCOPES, type.scope);
  const req = (body ?? {}) as { range?: { start?: unknown; end?: unknown }; windowSizeDays?: unknown; pageSize?: unknown; dataSourceFamily?: unknown };
  if (!req.range || req.range.start === undefined || req.range.end === undefined) throw invalid('INVALID_TIME_RANGE', 'range.start and range.end are required.');
  const start = civilDate(req.range.start, 'range.start');
  const end = civilDate(req.range.end, 'range.end');
  const window = req.windowSizeDays === undefined ? 1 : req.windowSizeDays;
  if (!Number.isInteger(window) || (window as number) < 1) throw invalid('INVALID_ROLLUP_WINDOW', 'windowSizeDays must be a positive integer.');
  if (!start.midnight) throw invalid('INVALID_ROLLUP_WINDOW', 'The start time must be aligned with the aggregation window.');
  const days = dayDistance(start.date, end.date) + (end.midnight ? 0 : 1);
  if (days <= 0) throw invalid('INVALID_TIME_RANGE', 'range.end must be after range.start.');
  const maxDays = rollupMaxDays(type.path);
  if (days > maxDays) throw invalid('INVALID_ROLLUP_QUERY_DURATION', `The maximum range for ${type.path} is ${maxDays} days.`);
  if (typeof req.dataSourceFamily === 'string' && req.dataSourceFamily !== '' && !DATA_SOURCE_FAMILIES.some((f) => req.dataSourceFamily === `users/me/dataSourceFamilies/${f}`)) {
    throw invalid('INVALID_DATA_POINT_DATA_SOURCE_FAMILY', `Invalid data source family: ${req.dataSourceFamily}.`);
  }
  if (req.pageSize !== undefined) pageSizeOf(req.pageSize as number, undefined, { def: 1440, max: 10_000 });
  const ctx = renderContext(call);
  const w = window as number;
  const out: object[] = [];
  for (let k = 0; k * w < days; k += 1) {
    const wStart = addDays(start.date, k * w);
    const wEnd = addDays(start.date, Math.min(days, (k + 1) * w));
    const value = rollupWindow(ctx, type, wStart, wEnd);
    if (value === null) continue;
    out.push({ civilStartTime: { date: dateMessage(wStart) }, civilEndTime: { date: dateMessage(wEnd) }, [type.member]: value });
  }
  return out.length > 0 ? { rollupDataPoints: out } : {};
}

/** One window's reconciled value, or null when nothing of it has synced (windows without data are left out). */
function rollupWindow(ctx: RenderContext, type: DataTypeInfo, from: string, to: string): Record<string, unknown> | null {
  let any = false;
  if (type.path === 'heart-rate') {
    let n = 0;
    let sum = 0;
    let min = Infinity;
    let max = -Infinity;
    for (let d = from; d < to; d = addDays(d, 1)) {
      for (const s of heartRateSamples(ctx, d)) {
        n += 1;
        sum += s.bpm;
        min = Math.min(min, s.bpm);
        max = Math.max(max, s.bpm);
      }
    }
    return n === 0 ? null : compact({ beatsPerMinuteAvg: double(Math.round((sum / n) * 100) / 100), beatsPerMinuteMin: double(min), beatsPerMinuteMax: double(max) });
  }
  const sums = [0, 0, 0, 0];
  let steps = 0;
  for (let d = from; d < to; d = addDays(d, 1)) {
    if (d < ctx.user.since) continue;
    const view = viewDay(ctx.world, ctx.user, d, ctx.now);
    const day = view.day;
    if (!day) continue;
    any = true;
    for (let i = 0; i < view.visibleMinutes; i += 1) {
      steps += day.steps[i] ?? 0;
      const z = day.zone[i] ?? 0;
      sums[z] = (sums[z] ?? 0) + 1;
    }
  }
  if (!any) return null;
  if (type.path === 'steps') return compact({ countSum: int64(steps) });
  if (type.path === 'active-zone-minutes') {
    return compact({ sumInFatBurnHeartZone: int64(sums[1] ?? 0), sumInCardioHeartZone: int64(2 * (sums[2] ?? 0)), sumInPeakHeartZone: int64(2 * (sums[3] ?? 0)) });
  }
  return null;
}

function identity(call: Call): object {
  requireScope(call, IDENTITY_SCOPES);
  // legacyUserId is the legacy Fitbit user id: the Fitbit simulator's id for the same person.
  return { name: 'users/me/identity', healthUserId: call.healthUserId, legacyUserId: call.user.id };
}

function settings(call: Call, segment: string): object {
  requireScope(call, [SCOPES.settings]);
  const zone = zoneAt(call.user.zoneHistory, call.now);
  return {
    name: `users/${segment}/settings`,
    autoStrideEnabled: true,
    distanceUnit: 'DISTANCE_UNIT_KILOMETERS',
    glucoseUnit: 'GLUCOSE_UNIT_MG_DL',
    heightUnit: 'HEIGHT_UNIT_CENTIMETERS',
    languageLocale: 'en_US',
    strideLengthRunningType: 'STRIDE_LENGTH_TYPE_AUTO',
    strideLengthWalkingType: 'STRIDE_LENGTH_TYPE_AUTO',
    swimUnit: 'SWIM_UNIT_METERS',
    temperatureUnit: 'TEMPERATURE_UNIT_CELSIUS',
    timeZone: zone,
    utcOffset: duration(offsetMs(zone, call.now)),
    waterUnit: 'WATER_UNIT_ML',
    weightUnit: 'WEIGHT_UNIT_KILOGRAMS',
  };
}

function profile(call: Call, segment: string): object {
  requireScope(call, [SCOPES.profile]);
  const [year, month, day] = call.user.since.split('-').map(Number);
  return compact({
    name: `users/${segment}/profile`,
    age: call.user.traits.age,
    membershipStartDate: { year, month, day },
    autoWalkingStrideLengthMm: call.user.traits.strideCm * 10,
    autoRunningStrideLengthMm: Math.round(call.user.traits.strideCm * 13.5),
  });
}

const FEATURES = ['STEPS', 'HEART_RATE', 'SLEEP', 'SPO2', 'SKIN_TEMPERATURE', 'ACTIVE_ZONE_MINUTES'];

function pairedDevices(call: Call): Array<{ id: string; body: Record<string, unknown> }> {
  // Like the Fitbit simulator: a device that never synced is not listed yet.
  return viewDevices(call.state.world, call.user, call.now).flatMap((d) => {
    if (d.lastSyncAt === null) return [];
    const level = d.batteryLevel;
    return [
      {
        id: d.device.id,
        body: {
          name: `users/${call.healthUserId}/pairedDevices/${d.device.id}`,
          deviceType: d.device.kind === 'scale' ? 'SCALE' : 'TRACKER',
          deviceVersion: d.device.model,
          batteryLevel: level,
          batteryStatus: level > 60 ? 'High' : level > 25 ? 'Medium' : level > 5 ? 'Low' : 'Empty',
          lastSyncTime: timestamp(d.lastSyncAt),
          macAddress: d.device.mac,
          features: FEATURES,
        },
      },
    ];
  });
}

function listPairedDevices(call: Call): object {
  requireScope(call, [SCOPES.settings]);
  const size = pageSizeOf(call.query.pageSize, undefined, { def: 5, max: 100 });
  const fp = fingerprint(['pairedDevices', call.query.pageSize ?? '']);
  const cursor = decodeToken(call.query.pageToken, fp);
  const all = pairedDevices(call);
  const from = cursor ? cursor.order : 0;
  const page = all.slice(from, from + size);
  const more = from + size < all.length;
  return { ...(page.length > 0 ? { pairedDevices: page.map((d) => d.body) } : {}), ...(more ? { nextPageToken: encodeToken(fp, { order: from + size, tie: 0 }) } : {}) };
}

function getPairedDevice(call: Call, id: string): object {
  requireScope(call, [SCOPES.settings]);
  const found = pairedDevices(call).find((d) => d.id === id);
  if (!found) throw new ApiError(404, `Paired device ${id} not found.`, 'RESOURCE_NOT_FOUND');
  return found.body;
}

function notFound(path: string): ApiError {
  return new ApiError(404, `The requested URL ${path} was not found on this server.`, undefined, {}, 'NOT_FOUND');
}

async function handle(state: GoogleState, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const [path = ''] = request.url.split('?');
  try {
    const token = checkBearer(state, request.headers.authorization);
    const user = findUser(state.world, token.userId);
    if (!user) throw permissionDenied();
    const call: Call = {
      state,
      token,
      user,
      healthUserId: healthUserIdOf(state.world.seed, user),
      now: state.clock.now(),
      query: request.query as Record<string, string | undefined>,
    };
    const m = /^\/v4\/users\/([^/]+)\/(.+)$/.exec(path);
    const segment = decodeURIComponent(m?.[1] ?? '');
    const rest = m?.[2] ?? '';
    const routes: Array<[RegExp, string, string, (g: string[]) => object]> = [
      [/^identity$/, 'GET', 'getIdentity', () => (checkParent(call, segment, false), identity(call))],
      [/^settings$/, 'GET', 'getSettings', () => (checkParent(call, segment, false), settings(call, segment))],
      [/^profile$/, 'GET', 'getProfile', () => (checkParent(call, segment, false), profile(call, segment))],
      [/^pairedDevices$/, 'GET', 'pairedDevices.list', () => (checkParent(call, segment, false), listPairedDevices(call))],
      [/^pairedDevices\/([^/]+)$/, 'GET', 'pairedDevices.get', (g) => (checkParent(call, segment, false), getPairedDevice(call, g[1] ?? ''))],
      [/^dataTypes\/([^/:]+)\/dataPoints$/, 'GET', 'dataPoints.list', (g) => (checkParent(call, segment, true), listDataPoints(call, g[1] ?? '', 'list'))],
      [/^dataTypes\/([^/:]+)\/dataPoints:reconcile$/, 'GET', 'dataPoints.reconcile', (g) => (checkParent(call, segment, true), listDataPoints(call, g[1] ?? '', 'reconcile'))],
      [/^dataTypes\/([^/:]+)\/dataPoints:dailyRollUp$/, 'POST', 'dataPoints.dailyRollUp', (g) => (checkParent(call, segment, true), dailyRollUp(call, g[1] ?? '', request.body))],
      [/^dataTypes\/([^/:]+)\/dataPoints\/([^/:]+)$/, 'GET', 'dataPoints.get', (g) => (checkParent(call, segment, false), getDataPoint(call, g[1] ?? '', g[2] ?? ''))],
    ];
    const route = m ? routes.find(([re, method]) => re.test(rest) && method === request.method) : undefined;
    const groups = route ? [...(rest.match(route[0]) ?? [])] : [];
    const endpoint = route ? `${route[2]}${groups[1] && route[2].startsWith('dataPoints') ? `:${groups[1]}` : ''}` : 'unknown';
    const perUser = (state.counters.requests[user.id] ??= {});
    perUser[endpoint] = (perUser[endpoint] ?? 0) + 1;
    spendRequest(state, call.healthUserId);
    // A grant mixing cloud-platform with googlehealth.* is refused by every user operation ([LIVE] §1.2).
    if (token.scopes.includes(CLOUD_PLATFORM) && token.scopes.some((s) => s.includes('googlehealth.'))) {
      throw new ApiError(403, 'Request contains disallowed OAuth scope(s).', 'DISALLOWED_OAUTH_SCOPES', { disallowed_scopes: 'cloud_platform' });
    }
    if (!route) throw notFound(path);
    return reply.type('application/json; charset=UTF-8').send(route[3](groups));
  } catch (err) {
    if (err instanceof ApiError) return sendApiError(reply, err);
    throw err;
  }
}

/** Registers the v4 user surface under `/v4/users/...`. */
export function registerApiRoutes(app: FastifyInstance, state: GoogleState): void {
  app.route({ method: ['GET', 'POST', 'PATCH', 'DELETE'], url: '/v4/users/*', handler: (request, reply) => handle(state, request, reply) });
}
