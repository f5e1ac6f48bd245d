import { sql } from 'kysely';
import { Registry, collectDefaultMetrics, Counter } from 'prom-client';
import { createDb } from '@fitlamp/db';
import { createQueues, registerQueueMetrics } from '@fitlamp/queues';
import { createLogger, createProducerConnection, runService, startOpsServer } from '@fitlamp/runtime';
import { loadSchedulerEnv } from './env.ts';
import { runTick } from './tick.ts';

await runService({
  name: 'scheduler',
  async start() {
    const env = loadSchedulerEnv(process.env);
    const logger = createLogger({ name: 'scheduler', level: env.LOG_LEVEL });
    const db = createDb(env.DATABASE_URL, { max: 3, applicationName: 'fitlamp-scheduler' });
    const redis = createProducerConnection(env.REDIS_URL);
    redis.on('error', (err) => logger.warn({ err: err.message }, 'redis connection error'));
    const queues = createQueues(redis, env.QUEUE_PREFIX);
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    registerQueueMetrics(registry, queues.all);
    const ticks = new Counter({
      name: 'fitlamp_scheduler_ticks_total',
      help: 'Scheduler passes by outcome',
      labelNames: ['outcome'],
      registers: [registry],
    });

    const tickMs = env.SCHEDULER_TICK_SECONDS * 1000;
    let current: Promise<unknown> = Promise.resolve();
    let stopped = false;
    const tick = () => {
      current = runTick({
        db,
        queues,
        logger,
        spreadMs: Math.min(tickMs * 4, env.SYNC_INTERVAL_SECONDS * 100),
        sweepAfterMs: env.UNDELIVERED_SWEEP_SECONDS * 1000,
        // The fetcher schedules in provider time (its clock); so does the comparison.
        ...(env.CLOCK_OFFSET_MS ? { now: () => Date.now() + env.CLOCK_OFFSET_MS } : {}),
      }).then(
        () => ticks.inc({ outcome: 'ok' }),
        (err: Error) => {
          ticks.inc({ outcome: 'error' });
          logger.warn({ err: err.message }, 'tick failed; will try again');
        },
      );
      return current;
    };
    const loop = async () => {
      while (!stopped) {
        await tick();
        await new Promise((resolve) => setTimeout(resolve, tickMs).unref());
      }
    };
    void loop();

    const ops = await startOpsServer({
      host: env.HOST,
      port: env.PORT,
      registry,
      checks: [
        { name: 'postgres', check: () => sql`select 1`.execute(db) },
        { name: 'redis', check: () => redis.ping() },
      ],
    });
    logger.info({ ops: ops.url, tickSeconds: env.SCHEDULER_TICK_SECONDS }, 'scheduler ready');
    return {
      logger,
      shutdownTimeoutMs: env.SHUTDOWN_TIMEOUT_MS,
      closers: [
        {
          name: 'ticks',
          close: async () => {
            stopped = true;
            await current;
          },
        },
        { name: 'queues', close: () => queues.close() },
        { name: 'ops', close: () => new Promise((resolve) => ops.close(resolve)) },
        { name: 'postgres', close: () => db.destroy() },
        { name: 'redis', close: () => redis.quit() },
      ],
    };
  },
});
