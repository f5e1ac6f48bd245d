// One service of `pnpm bench --sections scale` as a process of its own (forked by bench/scale.ts),
// so that its CPU time is its own in /proc: the fetcher's processor, the lamp-writer's deliver
// workers, or the scheduler's pass, each with the code the service runs (bench/sim-pipeline.ts
// builds them as the efficiency and soak sections do) and a clock that follows the simulators':
// simulated = t0 + (real − r0) × speed. The parent changes the speed by message; at speed 0 the
// clock stands still (the warm-up). Not the services' main.ts: their clocks follow real time.
// The gateway is the service's own Fastify app (buildGateway, on the env main.ts loads), for its
// Google Health webhook route: it keeps no clock of its own (Postgres stamps the notifications).
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Job } from 'bullmq';
import { Registry } from 'prom-client';
import { createTokenCipher, parseEncryptionKey } from '@fitlamp/crypto';
import { createDb } from '@fitlamp/db';
import { createFitbitProvider } from '@fitlamp/fitbit';
import { createGoogleHealthProvider } from '@fitlamp/google-health';
import { createQueues, startShardWorkers, type SyncPayload } from '@fitlamp/queues';
import { createLogger } from '@fitlamp/runtime';
import { createLampClient } from '@fitlamp/lamp';
import { createProviders } from '../packages/provider-registry/src/index.ts';
import { buildGateway } from '../services/gateway/src/app.ts';
import { loadGatewayEnv } from '../services/gateway/src/env.ts';
import { runTick } from '../services/scheduler/src/tick.ts';
import { simSyncProcessor, startSimWriter } from './sim-pipeline.ts';

export interface ScaleServiceConfig {
  role: 'fetcher' | 'writer' | 'scheduler' | 'gateway';
  databaseUrl: string;
  redisUrl: string;
  prefix: string;
  encryptionKey: string;
  fitbit: { clientId: string; clientSecret: string; url: string };
  google: { clientId: string; clientSecret: string; url: string };
  lamp: { url: string; accessKey: string; secretKey: string };
  pollSeconds: number;
  pollMaxSeconds: number;
  backfillDays: number;
  refetchDays: number;
  /** SCHEDULER_TICK_SECONDS, in simulated seconds. */
  tickSeconds: number;
  /** UNDELIVERED_SWEEP_SECONDS (judged on the database's clock: real seconds). */
  sweepSeconds: number;
  concurrency: number;
  /** GOOGLE_HEALTH_WEBHOOK_SECRET (the gateway; the subscriber is created with it). */
  webhookSecret: string;
}

/** Messages from the parent. */
export type ScaleCommand = { type: 'clock'; t0: number; r0: number; speed: number } | { type: 'report' } | { type: 'stop' };

/** What a service reports for the phase since its last report. */
export interface ScaleServiceReport {
  role: ScaleServiceConfig['role'];
  /** Jobs started: how late each started after the moment it was planned for, in simulated ms (first attempts only). */
  lateMs: number[];
  /** Jobs started that were a retry of a failed attempt. */
  retries: number;
  failed: Record<string, number>;
  /** Scheduler passes: real ms each took, and what they found due. */
  tickMs: number[];
  due: number;
  /** Gateway: Google Health notifications received, by the route's outcome (accepted, duplicate, …). */
  notifications: Record<string, number>;
}

const config = JSON.parse(process.env.SCALE_SERVICE_CONFIG ?? 'null') as ScaleServiceConfig | null;
if (!config || !process.send) throw new Error('bench/scale-service.ts is forked by bench/scale.ts');
const send = (message: unknown) => process.send!(message);

let clock = { t0: 0, r0: Date.now(), speed: 0 };
const now = () => clock.t0 + (Date.now() - clock.r0) * clock.speed;
const report: ScaleServiceReport = { role: config.role, lateMs: [], retries: 0, failed: {}, tickMs: [], due: 0, notifications: {} };
/** Read when a report is asked for (the gateway's counters). */
let collect: () => Promise<void> = async () => {};
const reset = () => {
  report.lateMs = [];
  report.retries = 0;
  report.failed = {};
  report.tickMs = [];
  report.due = 0;
  report.notifications = {};
};

const db = createDb(config.databaseUrl, { max: config.role === 'scheduler' ? 3 : 10, applicationName: `fitlamp-scale-${config.role}` });
const producer = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
const connection = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
const queues = createQueues(producer, config.prefix);
const logger = createLogger({ name: `scale-${config.role}`, level: 'silent' });

/** A job's lateness: when it started against the moment it was planned for (enqueued + delay), both real, × speed. */
function lateness(job: Job): number | null {
  if (job.attemptsMade > 0) {
    report.retries += 1;
    return null;
  }
  if (clock.speed === 0) return null;
  const planned = job.timestamp + (job.opts.delay ?? 0);
  // Planned before this phase's clock began: late by the phase change, not by the service.
  if (planned < clock.r0) return null;
  return Math.max(0, Date.now() - planned) * clock.speed;
}

let closers: Array<() => Promise<unknown>> = [];
let gatewayUrl: string | undefined;
if (config.role === 'fetcher') {
  const cipher = createTokenCipher(parseEncryptionKey(config.encryptionKey));
  const providers = {
    fitbit: createFitbitProvider({ clientId: config.fitbit.clientId, clientSecret: config.fitbit.clientSecret, apiUrl: config.fitbit.url, authorizeUrl: `${config.fitbit.url}/oauth2/authorize` }),
    'google-health': createGoogleHealthProvider({
      clientId: config.google.clientId,
      clientSecret: config.google.clientSecret,
      apiUrl: config.google.url,
      authorizeUrl: `${config.google.url}/o/oauth2/v2/auth`,
      tokenUrl: `${config.google.url}/token`,
      revokeUrl: `${config.google.url}/revoke`,
    }),
  };
  const processor = simSyncProcessor({ db, cipher, providers, queues, logger, now, ...config });
  const workers = startShardWorkers<'sync', unknown>(
    'sync',
    async (job: Job<SyncPayload>, token?: string) => {
      const late = lateness(job);
      if (late !== null) report.lateMs.push(late);
      return processor(job, token);
    },
    { connection, prefix: config.prefix, layout: queues.layout, concurrency: config.concurrency },
    (worker) =>
      worker.on('failed', (_job, error) => {
        const key = error.message.slice(0, 120);
        report.failed[key] = (report.failed[key] ?? 0) + 1;
      }),
  );
  closers = [() => workers.close()];
} else if (config.role === 'writer') {
  const { writer, client } = startSimWriter({ db, lampUrl: config.lamp.url, accessKey: config.lamp.accessKey, secretKey: config.lamp.secretKey, logger, connection, prefix: config.prefix, layout: queues.layout, concurrency: config.concurrency });
  for (const worker of writer.workers) {
    worker.on('active', (job) => {
      const late = lateness(job);
      if (late !== null) report.lateMs.push(late);
    });
    worker.on('failed', (_job, error) => {
      const key = error.message.slice(0, 120);
      report.failed[key] = (report.failed[key] ?? 0) + 1;
    });
  }
  closers = [() => writer.close(), () => client.close()];
} else if (config.role === 'gateway') {
  // The gateway as main.ts builds it, on the environment it loads: the webhook route (and the
  // rest of the app, idle here) with its Authorization, signature, dedup and enqueue.
  const env = loadGatewayEnv({
    NODE_ENV: 'development',
    LOG_LEVEL: 'silent',
    DATABASE_URL: config.databaseUrl,
    REDIS_URL: config.redisUrl,
    QUEUE_PREFIX: config.prefix,
    HOST: '127.0.0.1',
    PORT: '0',
    PUBLIC_BASE_URL: 'http://127.0.0.1:9',
    ADMIN_TOKEN: randomBytes(24).toString('base64url'),
    ENROLLMENT_SECRET: randomBytes(32).toString('base64url'),
    TOKEN_ENCRYPTION_KEY: config.encryptionKey,
    LAMP_API_URL: config.lamp.url,
    LAMP_ACCESS_KEY: config.lamp.accessKey,
    LAMP_SECRET_KEY: config.lamp.secretKey,
    FITBIT_CLIENT_ID: config.fitbit.clientId,
    FITBIT_CLIENT_SECRET: config.fitbit.clientSecret,
    FITBIT_API_URL: config.fitbit.url,
    FITBIT_AUTHORIZE_URL: `${config.fitbit.url}/oauth2/authorize`,
    GOOGLE_CLIENT_ID: config.google.clientId,
    GOOGLE_CLIENT_SECRET: config.google.clientSecret,
    GOOGLE_AUTHORIZE_URL: `${config.google.url}/o/oauth2/v2/auth`,
    GOOGLE_TOKEN_URL: `${config.google.url}/token`,
    GOOGLE_REVOKE_URL: `${config.google.url}/revoke`,
    GOOGLE_HEALTH_API_URL: config.google.url,
    GOOGLE_HEALTH_WEBHOOK_SECRET: config.webhookSecret,
    GOOGLE_HEALTH_WEBHOOK_KEYSET_URL: `${config.google.url}/googlehealthapi/webhooks/webhooks_public_keyset.json`,
  });
  const registry = new Registry();
  const lamp = createLampClient({ baseUrl: env.LAMP_API_URL, accessKey: env.LAMP_ACCESS_KEY, secretKey: env.LAMP_SECRET_KEY, timeoutMs: 10_000 });
  const cipher = createTokenCipher(parseEncryptionKey(env.TOKEN_ENCRYPTION_KEY));
  const app = await buildGateway({ env, logger, db, redis: producer, queues, registry, providers: createProviders(env), lamp, cipher });
  const url = (await app.listen({ port: 0, host: '127.0.0.1' })).replace(/\/$/, '');
  // fitlamp_webhook_notifications_total counts from the start; a report gives what came since the last.
  const seen = new Map<string, number>();
  collect = async () => {
    const metric = await registry.getSingleMetric('fitlamp_webhook_notifications_total')?.get();
    for (const v of metric?.values ?? []) {
      const outcome = String(v.labels.outcome);
      report.notifications[outcome] = v.value - (seen.get(outcome) ?? 0);
      seen.set(outcome, v.value);
    }
  };
  gatewayUrl = url;
  closers = [() => app.close(), () => lamp.close()];
} else {
  // The scheduler's pass once per SCHEDULER_TICK_SECONDS of simulated time, its jobs spread as the
  // service spreads them (min(4 ticks, SYNC_INTERVAL × 100 ms), simulated). One replica: no lock.
  // At speed 0 (the warm-up) it passes every tick of real time with no spread.
  let stopped = false;
  const loop = async () => {
    while (!stopped) {
      const speed = clock.speed;
      const started = Date.now();
      try {
        const result = await runTick({
          db,
          queues,
          logger,
          spreadMs: speed === 0 ? 0 : Math.min(config.tickSeconds * 4_000, config.pollSeconds * 100) / speed,
          sweepAfterMs: config.sweepSeconds * 1000,
          now,
        });
        if (speed !== 0) {
          report.tickMs.push(Date.now() - started);
          report.due += result.dueParticipants;
        }
      } catch (error) {
        const key = (error as Error).message.slice(0, 120);
        report.failed[key] = (report.failed[key] ?? 0) + 1;
      }
      // At speed 0 a pass every SCHEDULER_TICK_SECONDS of real time, as in production: each pass
      // enqueues every due participant again (a no-op per queued job, but one Redis call each), and
      // passes every second kept the scheduler and Redis busier than the fetcher during a
      // 10,000-participant warm-up.
      const interval = speed === 0 ? config.tickSeconds * 1000 : (config.tickSeconds * 1000) / speed;
      await new Promise((r) => setTimeout(r, Math.max(0, started + interval - Date.now())));
    }
  };
  const running = loop();
  closers = [
    async () => {
      stopped = true;
      await running;
    },
  ];
}

process.on('message', async (message: ScaleCommand) => {
  if (message.type === 'clock') {
    clock = { t0: message.t0, r0: message.r0, speed: message.speed };
    send({ type: 'clock-set' });
  } else if (message.type === 'report') {
    await collect();
    send({ type: 'report', report });
    reset();
  } else if (message.type === 'stop') {
    for (const close of closers) await close().catch(() => {});
    await queues.close().catch(() => {});
    producer.disconnect();
    connection.disconnect();
    await db.destroy();
    process.exit(0);
  }
});
send({ type: 'ready', ...(gatewayUrl ? { url: gatewayUrl } : {}) });
