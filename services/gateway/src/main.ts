import { Registry, collectDefaultMetrics } from 'prom-client';
import { createDb } from '@fitlamp/db';
import { createQueues } from '@fitlamp/queues';
import { createLogger, createProducerConnection, runService } from '@fitlamp/runtime';
import { buildGateway } from './app.ts';
import { loadGatewayEnv } from './env.ts';

await runService({
  name: 'gateway',
  timeoutMs: Number(process.env.SHUTDOWN_TIMEOUT_MS ?? 25_000),
  async start() {
    const env = loadGatewayEnv(process.env);
    const logger = createLogger({ name: 'gateway', level: env.LOG_LEVEL });
    const db = createDb(env.DATABASE_URL, { applicationName: 'fitlamp-gateway' });
    const redis = createProducerConnection(env.REDIS_URL);
    redis.on('error', (err) => logger.warn({ err: err.message }, 'redis connection error'));
    const queues = createQueues(redis, env.QUEUE_PREFIX);
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    const app = await buildGateway({ env, logger, db, redis, queues, registry });
    await app.listen({ port: env.PORT, host: env.HOST });
    return {
      logger,
      closers: [
        { name: 'http', close: () => app.close() },
        { name: 'queues', close: () => queues.close() },
        { name: 'postgres', close: () => db.destroy() },
        { name: 'redis', close: () => redis.quit() },
      ],
    };
  },
});
