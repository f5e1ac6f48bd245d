import { Registry, collectDefaultMetrics } from 'prom-client';
import { createDb, pingDatabase } from '@fitlamp/db';
import { createLampClient } from '@fitlamp/lamp';
import { createQueues, registerQueueMetrics } from '@fitlamp/queues';
import {
  createLogger,
  createProducerConnection,
  createWorkerConnection,
  runService,
  startOpsServer,
} from '@fitlamp/runtime';
import { createWriterMetrics, startDeliverWorker } from './deliver.worker.ts';
import { loadLampWriterEnv } from './env.ts';

await runService({
  name: 'lamp-writer',
  async start() {
    const env = loadLampWriterEnv(process.env);
    const logger = createLogger({ name: 'lamp-writer', level: env.LOG_LEVEL });
    const db = createDb(env.DATABASE_URL, { max: env.LAMP_WRITER_CONCURRENCY + 2, applicationName: 'fitlamp-lamp-writer' });
    const lamp = createLampClient({
      baseUrl: env.LAMP_API_URL,
      accessKey: env.LAMP_ACCESS_KEY,
      secretKey: env.LAMP_SECRET_KEY,
      timeoutMs: env.LAMP_TIMEOUT_MS,
    });
    const producer = createProducerConnection(env.REDIS_URL);
    const workerConnection = createWorkerConnection(env.REDIS_URL);
    for (const c of [producer, workerConnection]) c.on('error', (err) => logger.warn({ err: err.message }, 'redis connection error'));
    const queues = createQueues(producer, env.QUEUE_PREFIX);
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    registerQueueMetrics(registry, queues.all);
    const worker = startDeliverWorker(
      { db, lamp, logger, batchSize: env.LAMP_BATCH_SIZE, maxBytes: env.LAMP_BATCH_MAX_BYTES, metrics: createWriterMetrics(registry) },
      { connection: workerConnection, prefix: env.QUEUE_PREFIX, concurrency: env.LAMP_WRITER_CONCURRENCY },
    );
    const ops = await startOpsServer({
      host: env.HOST,
      port: env.PORT,
      registry,
      logger,
      checks: [
        { name: 'postgres', check: () => pingDatabase(db) },
        { name: 'redis', check: () => producer.ping() },
      ],
    });
    logger.info({ ops: ops.url }, 'lamp-writer ready');
    return {
      logger,
      shutdownTimeoutMs: env.SHUTDOWN_TIMEOUT_MS,
      closers: [
        { name: 'worker', close: () => worker.close() },
        { name: 'queues', close: () => queues.close() },
        { name: 'ops', close: () => new Promise((resolve) => ops.close(resolve)) },
        { name: 'lamp', close: () => lamp.close() },
        { name: 'postgres', close: () => db.destroy() },
        { name: 'redis', close: async () => void (await Promise.all([producer.quit(), workerConnection.quit()])) },
      ],
    };
  },
});
