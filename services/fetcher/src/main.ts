import { Registry, collectDefaultMetrics } from 'prom-client';
import { createTokenCipher, parseEncryptionKey } from '@fitlamp/crypto';
import { createDb, pingDatabase } from '@fitlamp/db';
import { createProviders, streamsFromEnv } from '@fitlamp/provider-registry';
import { createQueues, parseConsumedShards, registerQueueMetrics, shardLayoutOf } from '@fitlamp/queues';
import {
  createLogger,
  createProducerConnection,
  createWorkerConnection,
  redisTargetOf,
  runService,
  startOpsServer,
} from '@fitlamp/runtime';
import { loadFetcherEnv } from './env.ts';
import { createFetcherMetrics, startSyncWorker } from './sync.worker.ts';

await runService({
  name: 'fetcher',
  async start() {
    const env = loadFetcherEnv(process.env);
    const logger = createLogger({ name: 'fetcher', level: env.LOG_LEVEL });
    const cipher = createTokenCipher(
      parseEncryptionKey(env.TOKEN_ENCRYPTION_KEY),
      env.TOKEN_ENCRYPTION_KEY_PREVIOUS
        ? [parseEncryptionKey(env.TOKEN_ENCRYPTION_KEY_PREVIOUS, 'TOKEN_ENCRYPTION_KEY_PREVIOUS')]
        : [],
    );
    const providers = createProviders(env);
    const streams = streamsFromEnv(env);
    const db = createDb(env.DATABASE_URL, { max: env.FETCHER_CONCURRENCY + 2, applicationName: 'fitlamp-fetcher' });
    const producer = createProducerConnection(redisTargetOf(env));
    const workerConnection = createWorkerConnection(redisTargetOf(env));
    for (const c of [producer, workerConnection]) c.on('error', (err) => logger.warn({ err: err.message }, 'redis connection error'));
    const layout = shardLayoutOf(env);
    const consumed = parseConsumedShards(env.QUEUE_SHARDS_CONSUMED, env.QUEUE_SHARDS);
    const queues = createQueues(producer, env.QUEUE_PREFIX, layout);
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    registerQueueMetrics(registry, queues);

    const worker = startSyncWorker(
      {
        db,
        cipher,
        providers,
        queues,
        logger,
        streams,
        backfillDays: env.BACKFILL_DAYS,
        refetchDays: env.REFETCH_DAYS,
        eventRetentionDays: env.EVENT_RETENTION_DAYS,
        syncIntervalMs: env.SYNC_INTERVAL_SECONDS * 1000,
        webhookPollMultiplier: env.WEBHOOK_POLL_MULTIPLIER,
        pollMaxIntervalMs: env.POLL_MAX_INTERVAL_SECONDS * 1000,
        budgetReserve: env.RATE_BUDGET_RESERVE,
        profileCheckMs: env.PROFILE_CHECK_SECONDS * 1000,
        ...(env.CLOCK_OFFSET_MS ? { now: () => Date.now() + env.CLOCK_OFFSET_MS } : {}),
        metrics: createFetcherMetrics(registry),
      },
      { connection: workerConnection, prefix: env.QUEUE_PREFIX, layout, consumed, concurrency: env.FETCHER_CONCURRENCY },
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
    logger.info({ ops: ops.url, providers: Object.keys(providers), streams }, 'fetcher ready');
    return {
      logger,
      shutdownTimeoutMs: env.SHUTDOWN_TIMEOUT_MS,
      closers: [
        // Worker first: close() waits for in-flight syncs to finish their current step.
        { name: 'worker', close: () => worker.close() },
        { name: 'queues', close: () => queues.close() },
        { name: 'ops', close: () => new Promise((resolve) => ops.close(resolve)) },
        { name: 'postgres', close: () => db.destroy() },
        { name: 'redis', close: async () => void (await Promise.all([producer.quit(), workerConnection.quit()])) },
      ],
    };
  },
});
