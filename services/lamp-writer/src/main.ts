import { Registry, collectDefaultMetrics } from 'prom-client';
import { createDb, pingDatabase } from '@fitlamp/db';
import { createLampClient } from '@fitlamp/lamp';
import { createQueues, parseConsumedShards, registerQueueMetrics, shardLayoutOf } from '@fitlamp/queues';
import {
  createLogger,
  createProducerConnection,
  createWorkerConnection,
  redisTargetOf,
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
    const producer = createProducerConnection(redisTargetOf(env));
    const workerConnection = createWorkerConnection(redisTargetOf(env));
    for (const c of [producer, workerConnection]) c.on('error', (err) => logger.warn({ err: err.message }, 'redis connection error'));
    const layout = shardLayoutOf(env);
    const consumed = parseConsumedShards(env.QUEUE_SHARDS_CONSUMED, env.QUEUE_SHARDS);
    const queues = createQueues(producer, env.QUEUE_PREFIX, layout);
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    registerQueueMetrics(registry, queues);
    const worker = startDeliverWorker(
      { db, lamp, logger, batchSize: env.LAMP_BATCH_SIZE, maxBytes: env.LAMP_BATCH_MAX_BYTES, leaseMs: env.LAMP_WRITER_LEASE_MS, settleMs: env.LAMP_SETTLE_MS, metrics: createWriterMetrics(registry), ...(env.ARCHIVE_DIR ? { archiveDir: env.ARCHIVE_DIR } : {}) },
      { connection: workerConnection, prefix: env.QUEUE_PREFIX, layout, consumed, concurrency: env.LAMP_WRITER_CONCURRENCY },
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
