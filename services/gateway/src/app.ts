import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Kysely } from 'kysely';
import { Counter, Histogram, type Registry } from 'prom-client';
import { createBullBoard } from '@bull-board/api';
import type { HTTPStatus } from '@bull-board/api/typings/app';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import cookie from '@fastify/cookie';
import formbody from '@fastify/formbody';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import { validatorCompiler } from 'fastify-type-provider-zod';
import type { TokenCipher } from '@fitlamp/crypto';
import { pingDatabase, type Database } from '@fitlamp/db';
import type { LampClient } from '@fitlamp/lamp';
import type { Provider, ProviderName } from '@fitlamp/provider';
import { registerQueueMetrics, type QueueSet } from '@fitlamp/queues';
import { stripQuery, type Logger, type ReadinessCheck, type RedisConnection } from '@fitlamp/runtime';
import { createAdminGuard, requireGlobalAdmin } from './admin-auth.ts';
import { registerAdminRoutes } from './admin.ts';
import { registerAdminDayRoutes } from './admin-days.ts';
import { registerAdminAlertRoutes } from './admin-alerts.ts';
import { registerAdminDeliveryRoutes } from './admin-deliveries.ts';
import { registerAdminExportRoutes } from './admin-export.ts';
import { registerDashboard } from './dashboard.ts';
import { registerConnectRoutes } from './connect.ts';
import { registerGoogleHealthWebhooks } from './webhooks.ts';
import type { GatewayEnv } from './env.ts';
import { createErrorHandler, INTERNAL_ERROR_MESSAGE } from './errors.ts';
import { createCrossSiteGuard } from './cross-site.ts';
import { problemPage, sendPage, STYLE_HASH } from './pages.ts';

export interface GatewayDeps {
  env: GatewayEnv;
  logger: Logger;
  db: Kysely<Database>;
  /** Producer connection: readiness pings and queue producers. */
  redis: RedisConnection;
  queues: QueueSet;
  registry: Registry;
  /** The enabled providers by name (a provider is enabled when its client id is configured). */
  providers: Partial<Record<ProviderName, Provider>>;
  /** mindLAMP, with the researcher credential: participant checks. */
  lamp: LampClient;
  /** Encrypts tokens and PKCE verifiers at rest. */
  cipher: TokenCipher;
}

/** Where a provider's consent page lives: the CSP must let the consent form redirect there. */
function authorizeOrigin(provider: Provider): string {
  const probe = provider.authorizationUrl({ redirectUri: 'https://invalid.example/', state: 'x', codeChallenge: 'x', scopes: [] });
  return new URL(probe).origin;
}

/** TRUST_PROXY as Fastify takes it: a hop count trusts the nearest `hops` proxies (as Fastify's own number option). */
function trustProxyOption(setting: GatewayEnv['TRUST_PROXY']): boolean | string[] | ((address: string, hop: number) => boolean) {
  return typeof setting === 'number' ? (_address, hop) => hop < setting : setting;
}

/** What the gateway's `/readyz` (on the ops port) checks: Postgres and Redis reachable. */
export function gatewayReadinessChecks(deps: Pick<GatewayDeps, 'db' | 'redis'>): ReadinessCheck[] {
  return [
    { name: 'postgres', check: () => pingDatabase(deps.db) },
    { name: 'redis', check: () => deps.redis.ping() },
  ];
}

/** Per-IP rate limit of a scope, shared across replicas through Redis; a Redis outage lets requests through. */
function rateLimitOptions(deps: GatewayDeps, max: number, scope: string) {
  return {
    max,
    timeWindow: 60_000,
    redis: deps.redis,
    nameSpace: `${deps.env.QUEUE_PREFIX}-ratelimit-${scope}-`,
    skipOnError: true,
    errorResponseBuilder: (_request: unknown, context: { after: string }) => ({ statusCode: 429, code: 'rate_limited', message: `retry after ${context.after}` }),
  };
}

/**
 * The gateway as a Fastify instance, without listening: `main.ts` listens, tests `inject` or
 * listen on port 0.
 */
export async function buildGateway(deps: GatewayDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    // Whose X-Forwarded-For to believe (TRUST_PROXY): nobody's by default, so a client cannot pick
    // the address its rate limit is counted under.
    trustProxy: trustProxyOption(deps.env.TRUST_PROXY),
    // A request id per request, sent back as X-Request-Id: a 5xx's details are in the log under it.
    genReqId: () => randomUUID(),
    bodyLimit: 256 * 1024,
    // Query strings carry OAuth codes and states: request logs show the path only.
    logController: new LogController({ disableRequestLogging: true }),
  });
  // Route schemas are zod schemas; what they refuse, and every failure, goes to one error handler
  // (errors.ts): JSON here, the page scopes below answer with pages.
  app.setValidatorCompiler(validatorCompiler);
  app.setErrorHandler(createErrorHandler());
  const requireAdmin = createAdminGuard(deps.env.ADMIN_TOKEN, deps.db);

  const httpRequests = new Counter({
    name: 'fitlamp_http_requests_total',
    help: 'HTTP requests answered by the gateway',
    labelNames: ['method', 'route', 'status'],
    registers: [deps.registry],
  });
  const httpDuration = new Histogram({
    name: 'fitlamp_http_request_duration_seconds',
    help: 'Gateway response time',
    labelNames: ['method', 'route'],
    buckets: [0.005, 0.025, 0.1, 0.25, 1, 2.5, 10],
    registers: [deps.registry],
  });
  registerQueueMetrics(deps.registry, deps.queues);

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    httpRequests.inc({ method: request.method, route, status: String(reply.statusCode) });
    httpDuration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
    request.log.info(
      { method: request.method, url: stripQuery(request.url), status: reply.statusCode, ms: Math.round(reply.elapsedTime) },
      'request',
    );
  });

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  // Browsers ask for it on every page; there is none.
  app.get('/favicon.ico', async (_request, reply) => reply.code(204).header('cache-control', 'public, max-age=86400').send());
  // /readyz and /metrics are on the ops port (main.ts, gatewayReadinessChecks), not here.

  // Pages people open: security headers with a strict CSP, per-IP rate limit, HTML errors.
  await app.register(async (pub) => {
    await pub.register(helmet, {
      contentSecurityPolicy: {
        useDefaults: false,
        directives: {
          defaultSrc: ["'none'"],
          styleSrc: [STYLE_HASH],
          imgSrc: ["'self'", 'data:'],
          // The consent form posts here, then is redirected to the provider's consent page.
          formAction: ["'self'", ...new Set(Object.values(deps.providers).map(authorizeOrigin))],
          frameAncestors: ["'none'"],
          baseUri: ["'none'"],
        },
      },
      // Links carry their token in the query: no other site sees them as a referrer. `same-origin`
      // rather than `no-referrer` so that a same-origin form's `Origin` is not "null" (cross-site.ts).
      referrerPolicy: { policy: 'same-origin' },
    });
    // Shared across gateway replicas; a Redis outage must not take the pages down with it.
    await pub.register(rateLimit, rateLimitOptions(deps, deps.env.PUBLIC_RATE_LIMIT_PER_MINUTE, 'public'));
    await pub.register(formbody, { bodyLimit: 8 * 1024 });
    // The consent cookie binds an OAuth state to the browser that started it (connect.ts).
    await pub.register(cookie);
    pub.setErrorHandler(
      createErrorHandler({
        badRequest: (reply, status) =>
          sendPage(
            reply,
            status,
            'Request not understood',
            problemPage('We could not understand that request', 'Something in the request was malformed.', 'Please open the link from the study team again.'),
          ),
        tooManyRequests: (reply) =>
          sendPage(
            reply,
            429,
            'Too many requests',
            problemPage('Too many requests', 'This page was opened too many times in a short while.', 'Please wait a minute, then try again.'),
          ),
        internal: (reply) =>
          sendPage(
            reply,
            500,
            'Something went wrong',
            problemPage('Something went wrong on our side', 'Your request could not be completed.', 'Please try again in a few minutes. If it keeps happening, contact the study team.'),
          ),
      }),
    );
    registerConnectRoutes(pub, deps);
  });

  // Provider webhooks: machine-to-machine, raw bodies (signatures), no pages, no admin token.
  await registerGoogleHealthWebhooks(app, deps);

  // Everything under /admin: rate limited per client address, counted before the token is checked
  // (so guessing it is slow too).
  await app.register(async (admins) => {
    // A scope hook, not the plugin's per-route one: it runs before the admin token is checked.
    await admins.register(rateLimit, { ...rateLimitOptions(deps, deps.env.ADMIN_RATE_LIMIT_PER_MINUTE, 'admin'), global: false });
    admins.addHook('onRequest', admins.rateLimit());

    // The coordinator's JSON API.
    await admins.register(async (admin) => {
      await admin.register(helmet, { contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } } });
      admin.addHook('onRequest', requireAdmin);
      registerAdminRoutes(admin, deps);
      registerAdminDayRoutes(admin, deps);
      await registerAdminDeliveryRoutes(admin, deps);
      await registerAdminAlertRoutes(admin, deps);
      registerAdminExportRoutes(admin, deps);
    });

    // The coordinator's dashboard (HTML pages; the Retry form posts to the JSON API above).
    await registerDashboard(admins, deps, requireAdmin);

    await admins.register(async (admin) => registerBullBoard(admin, deps, requireAdmin));
  });

  return app;
}

/** Bull Board's page links a web font on a third-party host: the page is served without it. */
const THIRD_PARTY_FONT = /<link href="https:\/\/fonts\.googleapis\.com\/[^"]*" rel="stylesheet">\s*/g;

/**
 * Bull Board at /admin/queues, behind the admin token, with a CSP of its own: its scripts,
 * styles, fonts and images from the gateway only (the inline loading placeholder's style
 * attributes aside), no framing, and the same refusal of cross-site writes as the rest of /admin.
 */
async function registerBullBoard(admin: FastifyInstance, deps: GatewayDeps, requireAdmin: ReturnType<typeof createAdminGuard>): Promise<void> {
  await admin.register(helmet, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'none'"],
        scriptSrc: ["'self'"],
        // main.css from the gateway; the placeholder's <style> and style attributes are Bull Board's own markup.
        styleSrc: ["'self'", "'unsafe-inline'"],
        imgSrc: ["'self'", 'data:'],
        fontSrc: ["'self'"],
        connectSrc: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        baseUri: ["'self'"],
      },
    },
    referrerPolicy: { policy: 'same-origin' },
  });
  admin.addHook('onRequest', requireAdmin);
  // Queues are every study's: coordinators scoped to studies do not see them.
  admin.addHook('onRequest', requireGlobalAdmin);
  admin.addHook(
    'onRequest',
    createCrossSiteGuard(
      () => deps.env.PUBLIC_BASE_URL,
      (reply) => reply.code(403).send({ error: 'cross_site_refused', message: 'This request came from another site.' }),
    ),
  );
  admin.addHook('onSend', async (_request, reply, payload) => {
    if (typeof payload !== 'string' || !String(reply.getHeader('content-type') ?? '').startsWith('text/html')) return payload;
    return payload.replace(THIRD_PARTY_FONT, '');
  });
  // A failure's details go to the log under the request's id; the answer only says where to look.
  admin.addHook('onError', async (request, _reply, error: Error & { statusCode?: number }) => {
    if ((error.statusCode ?? 500) >= 500) request.log.error({ err: error }, 'queue dashboard request failed');
  });
  const serverAdapter = new FastifyAdapter();
  createBullBoard({
    queues: deps.queues.all.map(({ queue }) => new BullMQAdapter(queue)),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'fitlamp queues', miscLinks: [{ text: 'Study overview', url: '/admin' }] } },
  });
  // Bull Board answers a failure with its message (a Redis error's text, say): a 5xx says where
  // to look instead, as everywhere else in the gateway.
  serverAdapter.setErrorHandler((error: Error & { statusCode?: number }) => {
    const status = (error.statusCode ?? 500) as HTTPStatus;
    return { status, body: { error: { key: 'ERRORS.INTERNAL_SERVER_ERROR' }, message: status >= 500 ? INTERNAL_ERROR_MESSAGE : error.message } };
  });
  serverAdapter.setBasePath('/admin/queues');
  await admin.register(serverAdapter.registerPlugin(), { prefix: '/admin/queues' });
}
