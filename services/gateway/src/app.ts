import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Kysely } from 'kysely';
import { sql } from 'kysely';
import type { Redis } from 'ioredis';
import { Counter, Histogram, type Registry } from 'prom-client';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { Database } from '@fitlamp/db';
import { registerQueueMetrics, type QueueSet } from '@fitlamp/queues';
import { checkReadiness, stripQuery, type Logger, type ReadinessCheck } from '@fitlamp/runtime';
import { createAdminGuard } from './admin-auth.ts';
import type { GatewayEnv } from './env.ts';

export interface GatewayDeps {
  env: GatewayEnv;
  logger: Logger;
  db: Kysely<Database>;
  /** Producer connection: readiness pings and queue producers. */
  redis: Redis;
  queues: QueueSet;
  registry: Registry;
}

/**
 * The gateway as a Fastify instance, without listening: `main.ts` listens, tests `inject` or
 * listen on port 0.
 */
export async function buildGateway(deps: GatewayDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    trustProxy: true,
    bodyLimit: 256 * 1024,
    // Query strings carry OAuth codes and states: request logs show the path only.
    logController: new LogController({ disableRequestLogging: true }),
  });
  const requireAdmin = createAdminGuard(deps.env.ADMIN_TOKEN);

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
  registerQueueMetrics(deps.registry, deps.queues.all);

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    httpRequests.inc({ method: request.method, route, status: String(reply.statusCode) });
    httpDuration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
    request.log.info(
      { method: request.method, url: stripQuery(request.url), status: reply.statusCode, ms: Math.round(reply.elapsedTime) },
      'request',
    );
  });

  const readinessChecks: ReadinessCheck[] = [
    { name: 'postgres', check: () => sql`select 1`.execute(deps.db) },
    { name: 'redis', check: () => deps.redis.ping() },
  ];

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const report = await checkReadiness(readinessChecks);
    return reply.code(report.ok ? 200 : 503).send({ status: report.ok ? 'ready' : 'not_ready', checks: report.checks });
  });
  app.get('/metrics', async (_request, reply) => {
    return reply.type(deps.registry.contentType).send(await deps.registry.metrics());
  });

  await app.register(async (admin) => {
    admin.addHook('onRequest', requireAdmin);
    const serverAdapter = new FastifyAdapter();
    createBullBoard({
      queues: deps.queues.all.map((queue) => new BullMQAdapter(queue)),
      serverAdapter,
      options: { uiConfig: { boardTitle: 'fitlamp queues' } },
    });
    serverAdapter.setBasePath('/admin/queues');
    await admin.register(serverAdapter.registerPlugin(), { prefix: '/admin/queues' });
  });

  return app;
}
