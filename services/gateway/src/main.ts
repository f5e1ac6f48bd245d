import { Registry, collectDefaultMetrics } from 'prom-client';
import { createTokenCipher, parseEncryptionKey } from '@fitlamp/crypto';
import { createDb } from '@fitlamp/db';
import { createLampClient } from '@fitlamp/lamp';
import { createQueues, shardLayoutOf } from '@fitlamp/queues';
import { createLogger, createProducerConnection, redisTargetOf, runService, startOpsServer } from '@fitlamp/runtime';
import { alertConfigFromEnv, startAlertLoop } from './alerts.ts';
import { buildGateway, gatewayReadinessChecks } from './app.ts';
import { loadGatewayEnv } from './env.ts';
import { createProviders } from '@fitlamp/provider-registry';

await runService({
  name: 'gateway',
  async start() {
    const env = loadGatewayEnv(process.env);
    const logger = createLogger({ name: 'gateway', level: env.LOG_LEVEL });
    const cipher = createTokenCipher(
      parseEncryptionKey(env.TOKEN_ENCRYPTION_KEY),
      env.TOKEN_ENCRYPTION_KEY_PREVIOUS ? [parseEncryptionKey(env.TOKEN_ENCRYPTION_KEY_PREVIOUS, 'TOKEN_ENCRYPTION_KEY_PREVIOUS')] : [],
    );
    const providers = createProviders(env);
    const lamp = createLampClient({ baseUrl: env.LAMP_API_URL, accessKey: env.LAMP_ACCESS_KEY, secretKey: env.LAMP_SECRET_KEY, timeoutMs: 10_000 });
    const db = createDb(env.DATABASE_URL, { applicationName: 'fitlamp-gateway' });
    const redis = createProducerConnection(redisTargetOf(env));
    redis.on('error', (err) => logger.warn({ err: err.message }, 'redis connection error'));
    const queues = createQueues(redis, env.QUEUE_PREFIX, shardLayoutOf(env));
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    const app = await buildGateway({ env, logger, db, redis, queues, registry, providers, lamp, cipher });
    await app.listen({ port: env.PORT, host: env.HOST });
    // /readyz and /metrics on a port the Ingress does not route (probes and Prometheus only).
    const ops = await startOpsServer({ host: env.HOST, port: env.OPS_PORT, registry, logger, checks: gatewayReadinessChecks({ db, redis }) });
    logger.info({ providers: Object.keys(providers), publicBaseUrl: env.PUBLIC_BASE_URL, ops: ops.url }, 'gateway listening');
    const alerts =
      env.ALERT_EVALUATE_SECONDS > 0
        ? startAlertLoop({ db, config: alertConfigFromEnv(env), logger, intervalMs: env.ALERT_EVALUATE_SECONDS * 1000, clockOffsetMs: env.CLOCK_OFFSET_MS })
        : undefined;
    return {
      logger,
      shutdownTimeoutMs: env.SHUTDOWN_TIMEOUT_MS,
      closers: [
        { name: 'http', close: () => app.close() },
        { name: 'alerts', close: async () => alerts?.close() },
        { name: 'ops', close: () => new Promise((resolve) => ops.close(resolve)) },
        { name: 'queues', close: () => queues.close() },
        { name: 'lamp', close: () => lamp.close() },
        { name: 'postgres', close: () => db.destroy() },
        { name: 'redis', close: () => redis.quit() },
      ],
    };
  },
});
