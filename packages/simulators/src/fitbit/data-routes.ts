import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { RequestError, type DataContext } from './context.ts';
import { sendError } from './errors.ts';
import { checkBearer } from './oauth.ts';
import { spendRequest } from './rate-limit.ts';
import { DAILY_RESOURCES, INTRADAY_RESOURCES, activityIntraday, activityLogList, activityTimeSeries, azmIntraday, azmTimeSeries } from './render-activity.ts';
import { heartIntraday, heartTimeSeries } from './render-heart.ts';
import { breathingRate, hrv, skinTemperature, spo2 } from './render-nightly.ts';
import { devices, profile } from './render-profile.ts';
import { sleepByDate, sleepByRange, sleepList } from './render-sleep.ts';
import type { FitbitState } from './state.ts';
import { findUser } from '../world/world.ts';

interface Endpoint {
  /** Name used in counters. */
  name: string;
  /** Matched against `<version>:<path after /user/<id>/>`. */
  pattern: RegExp;
  scope: string;
  /** Intraday endpoints need the app's intraday access (fitbit-web-api §3.2). */
  intraday?: boolean;
  /** Whether `?timezone=UTC` is honoured (activity and heart-rate series, §4). */
  utc?: boolean;
  handle(ctx: DataContext, m: string[]): object;
}

const D = '(\\d{4}-\\d{2}-\\d{2}|today)';
const END = '(\\d{4}-\\d{2}-\\d{2}|today|1d|7d|30d|1w|1m|3m|6m|1y)';
const TIME = '(?:/time/(\\d{2}:\\d{2})/(\\d{2}:\\d{2}))?';
const re = (s: string): RegExp => new RegExp(`^${s}$`);
const arg = (m: string[], i: number): string => m[i] ?? '';
const opt = (m: string[], i: number): string | undefined => m[i];

/** The data endpoints, most specific first. */
const ENDPOINTS: Endpoint[] = [
  { name: 'profile', pattern: re('1:profile\\.json'), scope: 'profile', handle: (ctx) => profile(ctx) },
  { name: 'devices', pattern: re('1:devices\\.json'), scope: 'settings', handle: (ctx) => devices(ctx) },
  { name: 'activities-list', pattern: re('1:activities/list\\.json'), scope: 'activity', handle: (ctx) => activityLogList(ctx) },
  {
    name: 'heart-intraday',
    pattern: re(`1:activities/heart/date/${D}/(1d|${D.slice(1, -1)})/(\\w+)${TIME}\\.json`),
    scope: 'heartrate',
    intraday: true,
    utc: true,
    handle: (ctx, m) => heartIntraday(ctx, arg(m, 1), arg(m, 2), arg(m, 3), opt(m, 4), opt(m, 5)),
  },
  { name: 'heart-timeseries', pattern: re(`1:activities/heart/date/${D}/${END}\\.json`), scope: 'heartrate', utc: true, handle: (ctx, m) => heartTimeSeries(ctx, arg(m, 1), arg(m, 2)) },
  {
    name: 'azm-intraday',
    pattern: re(`1:activities/active-zone-minutes/date/${D}/(1d|${D.slice(1, -1)})/(\\w+)${TIME}\\.json`),
    scope: 'activity',
    intraday: true,
    utc: true,
    handle: (ctx, m) => azmIntraday(ctx, arg(m, 1), arg(m, 2), arg(m, 3), opt(m, 4), opt(m, 5)),
  },
  { name: 'azm-timeseries', pattern: re(`1:activities/active-zone-minutes/date/${D}/${END}\\.json`), scope: 'activity', utc: true, handle: (ctx, m) => azmTimeSeries(ctx, arg(m, 1), arg(m, 2)) },
  {
    name: 'activity-intraday',
    pattern: re(`1:activities/(${INTRADAY_RESOURCES.join('|')})/date/${D}/(1d|${D.slice(1, -1)})/(\\w+)${TIME}\\.json`),
    scope: 'activity',
    intraday: true,
    utc: true,
    handle: (ctx, m) => activityIntraday(ctx, arg(m, 1) as (typeof INTRADAY_RESOURCES)[number], arg(m, 2), arg(m, 3), arg(m, 4), opt(m, 5), opt(m, 6)),
  },
  {
    name: 'activity-timeseries',
    pattern: re(`1:activities/(tracker/)?(${DAILY_RESOURCES.join('|')})/date/${D}/${END}\\.json`),
    scope: 'activity',
    utc: true,
    handle: (ctx, m) => activityTimeSeries(ctx, m[1] !== undefined, arg(m, 2) as (typeof DAILY_RESOURCES)[number], arg(m, 3), arg(m, 4)),
  },
  { name: 'sleep-date', pattern: re(`1\\.2:sleep/date/${D}\\.json`), scope: 'sleep', handle: (ctx, m) => sleepByDate(ctx, arg(m, 1)) },
  { name: 'sleep-range', pattern: re(`1\\.2:sleep/date/${D}/${D}\\.json`), scope: 'sleep', handle: (ctx, m) => sleepByRange(ctx, arg(m, 1), arg(m, 2)) },
  { name: 'sleep-list', pattern: re('1\\.2:sleep/list\\.json'), scope: 'sleep', handle: (ctx) => sleepList(ctx) },
  { name: 'spo2', pattern: re(`1:spo2/date/${D}(?:/${D})?\\.json`), scope: 'oxygen_saturation', handle: (ctx, m) => spo2(ctx, arg(m, 1), opt(m, 2)) },
  { name: 'hrv', pattern: re(`1:hrv/date/${D}(?:/${D})?\\.json`), scope: 'heartrate', handle: (ctx, m) => hrv(ctx, arg(m, 1), opt(m, 2)) },
  { name: 'br', pattern: re(`1:br/date/${D}(?:/${D})?\\.json`), scope: 'respiratory_rate', handle: (ctx, m) => breathingRate(ctx, arg(m, 1), opt(m, 2)) },
  { name: 'temp-skin', pattern: re(`1:temp/skin/date/${D}(?:/${D})?\\.json`), scope: 'temperature', handle: (ctx, m) => skinTemperature(ctx, arg(m, 1), opt(m, 2)) },
];

function baseUrl(state: FitbitState, request: FastifyRequest): string {
  return (state.publicUrl ?? `${request.protocol}://${request.headers.host ?? 'localhost'}`).replace(/\/$/, '');
}

async function handleData(state: FitbitState, version: string, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const bearer = checkBearer(state, request.headers.authorization);
  if (!bearer.ok) return sendError(reply, 401, bearer.errorType, bearer.message);
  const token = bearer.token;
  state.recorded?.push({ url: request.url, authorization: request.headers.authorization ?? '' });
  const [pathOnly = ''] = request.url.split('?');
  const match = /^\/[\d.]+\/user\/([^/]+)\/(.*)$/.exec(pathOnly);
  const pathUser = match?.[1] ?? '';
  const rest = `${version}:${match?.[2] ?? ''}`;
  const endpoint = ENDPOINTS.find((e) => e.pattern.test(rest));
  const name = endpoint?.name ?? 'unknown';
  const perUser = (state.counters.requests[token.userId] ??= {});
  perUser[name] = (perUser[name] ?? 0) + 1;

  const rate = spendRequest(state, token.userId);
  reply.headers(rate.headers);
  if (!rate.allowed) {
    state.counters.rateLimited += 1;
    return reply
      .code(429)
      .header('retry-after', String(rate.resetSeconds))
      .send({ errors: [{ errorType: 'system', fieldName: 'n/a', message: 'Too Many Requests' }], success: false });
  }
  const user = findUser(state.world, token.userId);
  if (!user || (pathUser !== '-' && pathUser !== token.userId)) {
    return sendError(reply, 403, 'insufficient_permissions', 'API client is not authorized by Fitbit to access the resource requested.');
  }
  if (!endpoint) return reply.code(404).send({ errors: [{ errorType: 'not_found', message: 'The API you are requesting could not be found.' }], success: false });
  if (!token.scopes.includes(endpoint.scope)) {
    return sendError(reply, 403, 'insufficient_scope', `This application does not have permission to access ${endpoint.scope} data.`);
  }
  if (endpoint.intraday && !state.intradayAccess) {
    return sendError(reply, 403, 'insufficient_permissions', 'API client is not authorized by Fitbit to access the resource requested.');
  }
  const query = request.query as Record<string, string | undefined>;
  const utc = endpoint.utc === true && query.timezone === 'UTC';
  const ctx: DataContext = {
    state,
    user,
    now: state.clock.now(),
    query,
    frame: utc ? { kind: 'utc' } : { kind: 'local', history: user.zoneHistory },
    baseUrl: baseUrl(state, request),
    acceptLanguage: request.headers['accept-language'],
  };
  try {
    return reply.send(endpoint.handle(ctx, [...(rest.match(endpoint.pattern) ?? [])]));
  } catch (err) {
    if (err instanceof RequestError) {
      return reply.code(err.status).send({ errors: [{ errorType: err.errorType, ...(err.fieldName ? { fieldName: err.fieldName } : {}), message: err.message }], success: false });
    }
    throw err;
  }
}

/** Registers every data endpoint under `/1/user/*` and `/1.2/user/*`. */
export function registerDataRoutes(app: FastifyInstance, state: FitbitState): void {
  app.get('/1/user/*', (request, reply) => handleData(state, '1', request, reply));
  app.get('/1.2/user/*', (request, reply) => handleData(state, '1.2', request, reply));
}
