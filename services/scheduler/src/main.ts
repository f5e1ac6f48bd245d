import { Registry, collectDefaultMetrics, Counter } from 'prom-client';
import { createDb, pingDatabase } from '@fitlamp/db';
import { createQueues, registerQueueMetrics, shardLayoutOf } from '@fitlamp/queues';
import { createLogger, createProducerConnection, redisTargetOf, runService, startOpsServer } from '@fitlamp/runtime';
import { loadSchedulerEnv } from './env.ts';
import { runTick } from './tick.ts';
import { startTickLoop } from './tick-loop.ts';

await runService({
  name: 'scheduler',
  async start() {
    const env = loadSchedulerEnv(process.env);
    const logger = createLogger({ name: 'scheduler', level: env.LOG_LEVEL });
    // One connection holds the tick lock through each interval; a tick uses up to two more.
    const db = createDb(env.DATABASE_URL, { max: 4, applicationName: 'fitlamp-scheduler' });
    const redis = createProducerConnection(redisTargetOf(env));
    redis.on('error', (err) => logger.warn({ err: err.message }, 'redis connection error'));
    const queues = createQueues(redis, env.QUEUE_PREFIX, shardLayoutOf(env));
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    registerQueueMetrics(registry, queues);
    const ticks = new Counter({
      name: 'fitlamp_scheduler_ticks_total',
      help: 'Scheduler tick attempts by outcome: ok (this replica ticked), skipped (another replica holds the lock), error',
      labelNames: ['outcome'],
      registers: [registry],
    });

    const tickMs = env.SCHEDULER_TICK_SECONDS * 1000;
    const loop = startTickLoop({
      db,
      intervalMs: tickMs,
      logger,
      tick: () =>
        runTick({
          db,
          queues,
          logger,
          spreadMs: Math.min(tickMs * 4, env.SYNC_INTERVAL_SECONDS * 100),
          sweepAfterMs: env.UNDELIVERED_SWEEP_SECONDS * 1000,
          // The fetcher schedules in provider time (its clock); so does the comparison.
          ...(env.CLOCK_OFFSET_MS ? { now: () => Date.now() + env.CLOCK_OFFSET_MS } : {}),
        }),
      onTick: (outcome) => ticks.inc({ outcome: outcome.kind }),
    });

    const ops = await startOpsServer({
      host: env.HOST,
      port: env.PORT,
      registry,
      logger,
      checks: [
        { name: 'postgres', check: () => pingDatabase(db) },
        { name: 'redis', check: () => redis.ping() },
      ],
    });
    logger.info({ ops: ops.url, tickSeconds: env.SCHEDULER_TICK_SECONDS }, 'scheduler ready');
    return {
      logger,
      shutdownTimeoutMs: env.SHUTDOWN_TIMEOUT_MS,
      closers: [
        { name: 'ticks', close: () => loop.stop() },
        { name: 'queues', close: () => queues.close() },
        { name: 'ops', close: () => new Promise((resolve) => ops.close(resolve)) },
        { name: 'postgres', close: () => db.destroy() },
        { name: 'redis', close: () => redis.quit() },
      ],
    };
  },
});
