// fitlamp's pipeline in the bench process on a simulated clock, for the sections that cover days
// in minutes (efficiency, soak). The Fitbit simulator's clock is frozen and advanced in steps; the
// scheduler's pass (`runTick`), the fetcher's processor (`createSyncProcessor`) and, optionally,
// the lamp-writer's (`startDeliverWorker`, against an in-process mindLAMP simulator) run under real
// BullMQ workers over real Postgres and Redis with `now` = the simulator's clock. The services'
// own processes cannot be used: their clocks follow real time. With `provider: 'google-health'`
// the Google Health simulator (the same world and clock) serves the participants, and with
// `notifyAfterMs` it notifies the gateway (`buildGateway`, listening on a port of its own, its
// webhook route the product's) that long after each device sync; each step delivers the
// notifications due before it ticks.
import { randomBytes } from 'node:crypto';
import { Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { sql, type Kysely } from 'kysely';
import { Registry } from 'prom-client';
import { createTokenCipher, parseEncryptionKey, type TokenCipher } from '@fitlamp/crypto';
import { createDb, migrateToLatest, recordTimeZone, scheduleStreams, type Database } from '@fitlamp/db';
import { createFitbitProvider } from '@fitlamp/fitbit';
import { createGoogleHealthProvider } from '@fitlamp/google-health';
import { startPostgresServer, subscribeGatewayWebhooks, type PostgresServer } from '@fitlamp/harness';
import { createLampClient } from '@fitlamp/lamp';
import { STREAMS, type Provider, type ProviderName } from '@fitlamp/provider';
import { createQueues, queueCatalog, type QueueSet, type SyncPayload } from '@fitlamp/queues';
import { createLogger, type Logger } from '@fitlamp/runtime';
import {
  createFitbitSimulator,
  createGoogleHealthSimulator,
  createLampSimulator,
  findUser,
  syncUser,
  type FitbitSimulator,
  type GoogleHealthSimulator,
  type LampSimulator,
  type WorldUser,
} from '@fitlamp/simulators';
import { connectSimulatedParticipant, createTestDatabase, googleSimulatorEnv, serviceTestEnv, testRedisUrl } from '@fitlamp/testing';
import { createFetcherMetrics, createSyncProcessor, type SyncSummary } from '../services/fetcher/src/sync.worker.ts';
import { createWriterMetrics, startDeliverWorker } from '../services/lamp-writer/src/deliver.worker.ts';
import { runTick } from '../services/scheduler/src/tick.ts';
import { buildGateway } from '../services/gateway/src/app.ts';
import { loadGatewayEnv } from '../services/gateway/src/env.ts';

export interface SimPipelineOptions {
  participants: number;
  /** SYNC_INTERVAL_SECONDS of the fetcher (the scheduler polls each participant this often). */
  pollSeconds: number;
  /** POLL_MAX_INTERVAL_SECONDS of the fetcher (the sync-rhythm back-off's ceiling) [21600, its default]. */
  pollMaxSeconds?: number;
  backfillDays: number;
  refetchDays: number;
  /** EVENT_RETENTION_DAYS of the fetcher: delivered events of older days leave Postgres (default 7). */
  eventRetentionDays?: number;
  startAt: string;
  seed: string;
  /** Run the lamp-writer's processor too, delivering into an in-process mindLAMP simulator. */
  deliver?: boolean;
  /** A Postgres cluster of the run's own (its WAL and size move only with this run), else a database on the machine's. */
  ownPostgres?: boolean;
  fetcherConcurrency?: number;
  /** Who serves the participants: the Fitbit simulator [default], or Google Health's on the same world and clock. */
  provider?: ProviderName;
  /**
   * Google Health only: the simulator notifies fitlamp's webhook route this long (simulated ms)
   * after each device sync; absent, no webhooks (polling alone).
   */
  notifyAfterMs?: number;
}

export interface SimParticipant {
  participantId: string;
  userId: string;
  preset: string;
}

export interface SimPipeline {
  db: Kysely<Database>;
  /** The Fitbit simulator: its world and clock are the run's, whoever serves the participants. */
  sim: FitbitSimulator;
  /** The simulator that serves the participants (`sim`, or the Google Health one); its counters count their requests. */
  api: FitbitSimulator | GoogleHealthSimulator;
  /** With webhooks: the Google Health simulator, whose deliveries are the notifications sent to fitlamp. */
  google?: GoogleHealthSimulator;
  lamp?: LampSimulator;
  queues: QueueSet;
  participants: SimParticipant[];
  userOf: Map<string, WorldUser>;
  now(): number;
  /** Every sync the fetcher ran: who and when (simulated). The caller may empty it. */
  polls: Array<{ participantId: string; at: number; reason: SyncPayload['reason'] }>;
  syncErrors: Record<string, number>;
  outcomes: Record<string, number>;
  /** The scheduler's pass on the simulated clock. */
  tick(): Promise<void>;
  /** Waits until no sync (and, when delivering, no delivery) job is waiting or running. */
  drain(): Promise<void>;
  /**
   * Advances the simulated clock by `ms`, lets the phone-synced (kolkata) watches sync when their
   * time comes, promotes delayed jobs, ticks and drains.
   */
  step(ms: number): Promise<void>;
  close(): Promise<void>;
}

const CLIENT_ID = 'BENCHSIM';
const CLIENT_SECRET = 'bench-sim-secret';
const REDIRECT = 'http://127.0.0.1:9/oauth/fitbit/callback';
const PRESETS = ['new-york', 'traveler', 'sydney', 'kolkata'];
const GOOGLE = { clientId: 'benchsim.apps.googleusercontent.com', clientSecret: 'bench-sim-google-secret' };
/**
 * An empty database for a bench run: on a Postgres cluster of its own (its WAL and size move only
 * with the run), else on the machine's. `drop()` removes it (with its cluster).
 */
export async function createBenchDatabase(ownPostgres: boolean): Promise<{ url: string; drop(): Promise<void> }> {
  if (!ownPostgres) {
    const t = await createTestDatabase({ migrated: false });
    return { url: t.url, drop: () => t.drop() };
  }
  const server: PostgresServer = await startPostgresServer();
  try {
    const admin = createDb(server.adminUrl, { max: 1 });
    await sql.raw('create database fitlamp_bench').execute(admin);
    await admin.destroy();
  } catch (error) {
    await server.stop();
    throw error;
  }
  return { url: server.databaseUrl('fitlamp_bench'), drop: () => server.stop() };
}

/**
 * The fetcher's processor as the bench sections run it: the service's settings (budget reserve,
 * profile check, metrics) with the section's poll interval, windows and clock.
 */
export function simSyncProcessor(d: {
  db: Kysely<Database>;
  cipher: TokenCipher;
  providers: Partial<Record<ProviderName, Provider>>;
  queues: QueueSet;
  logger: Logger;
  now: () => number;
  pollSeconds: number;
  pollMaxSeconds?: number;
  backfillDays: number;
  refetchDays: number;
  eventRetentionDays?: number;
}) {
  return createSyncProcessor({
    db: d.db,
    cipher: d.cipher,
    providers: d.providers,
    queues: d.queues,
    logger: d.logger,
    streams: STREAMS,
    backfillDays: d.backfillDays,
    refetchDays: d.refetchDays,
    eventRetentionDays: d.eventRetentionDays ?? 7,
    syncIntervalMs: d.pollSeconds * 1000,
    pollMaxIntervalMs: (d.pollMaxSeconds ?? 21_600) * 1000,
    budgetReserve: 5,
    profileCheckMs: 3_600_000,
    metrics: createFetcherMetrics(new Registry()),
    now: d.now,
  });
}

/** The lamp-writer's deliver workers with the service's defaults, delivering to a mindLAMP (simulator) at `lampUrl`. */
export function startSimWriter(d: {
  db: Kysely<Database>;
  lampUrl: string;
  accessKey: string;
  secretKey: string;
  logger: Logger;
  connection: Redis;
  prefix: string;
  layout: QueueSet['layout'];
  concurrency: number;
}) {
  const client = createLampClient({ baseUrl: d.lampUrl, accessKey: d.accessKey, secretKey: d.secretKey });
  const writer = startDeliverWorker(
    // The service's defaults: LAMP_BATCH_SIZE, LAMP_BATCH_MAX_BYTES, and the lease of 2 × LAMP_TIMEOUT_MS + 30 s.
    { db: d.db, lamp: client, logger: d.logger, batchSize: 1_000, maxBytes: 1_000_000, leaseMs: 90_000, metrics: createWriterMetrics(new Registry()) },
    { connection: d.connection, prefix: d.prefix, layout: d.layout, concurrency: d.concurrency },
  );
  return { writer, client };
}

export async function startSimPipeline(o: SimPipelineOptions): Promise<SimPipeline> {
  const undo: Array<() => Promise<unknown>> = [];
  const cleanup = async () => {
    for (const fn of undo.reverse()) await fn().catch(() => {});
    undo.length = 0;
  };
  try {
    const database = await createBenchDatabase(o.ownPostgres ?? false);
    undo.push(() => database.drop());
    const db = createDb(database.url, { max: 10, applicationName: 'fitlamp-bench-sim' });
    undo.push(() => db.destroy());
    await migrateToLatest(db);

    const participants: SimParticipant[] = Array.from({ length: o.participants }, (_, i) => ({
      participantId: `U${String(i + 1).padStart(10, '0')}`,
      userId: `FB${String(i + 1).padStart(4, '0')}`,
      preset: PRESETS[i % PRESETS.length]!,
    }));
    const sim = createFitbitSimulator({
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      redirectUris: [REDIRECT],
      appName: 'bench on a simulated clock',
      seed: o.seed,
      startAt: o.startAt,
      users: participants.map((p) => ({ id: p.userId, preset: p.preset })),
    });
    const simUrl = (await sim.app.listen({ port: 0, host: '127.0.0.1' })).replace(/\/$/, '');
    undo.push(() => sim.app.close());
    const providerName: ProviderName = o.provider ?? 'fitbit';
    if (o.notifyAfterMs !== undefined && providerName !== 'google-health') throw new Error('webhooks (notifyAfterMs) need provider google-health');
    let google: GoogleHealthSimulator | undefined;
    let provider: Provider;
    let googleUrl = '';
    if (providerName === 'google-health') {
      // One world, one clock: the same days as the Fitbit runs. Notifications only when a step flushes them.
      google = createGoogleHealthSimulator({
        ...GOOGLE,
        redirectUris: [REDIRECT],
        appName: 'bench on a simulated clock',
        world: sim.world,
        clock: sim.clock,
        webhooks: { deliveryIntervalMs: 0, notifyAfterMs: o.notifyAfterMs ?? 0 },
      });
      const g = google;
      googleUrl = (await g.app.listen({ port: 0, host: '127.0.0.1' })).replace(/\/$/, '');
      undo.push(() => g.app.close());
      provider = createGoogleHealthProvider({ ...GOOGLE, apiUrl: googleUrl, authorizeUrl: `${googleUrl}/o/oauth2/v2/auth`, tokenUrl: `${googleUrl}/token`, revokeUrl: `${googleUrl}/revoke` });
    } else {
      provider = createFitbitProvider({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, apiUrl: simUrl, authorizeUrl: `${simUrl}/oauth2/authorize` });
    }
    const api = google ?? sim;
    const cipher = createTokenCipher(parseEncryptionKey(`b1:${randomBytes(32).toString('base64')}`));
    const producer = new Redis(testRedisUrl, { maxRetriesPerRequest: null });
    const workerConnection = new Redis(testRedisUrl, { maxRetriesPerRequest: null });
    undo.push(async () => {
      producer.disconnect();
      workerConnection.disconnect();
    });
    const prefix = `fitlamp-bench-sim-${randomBytes(4).toString('hex')}`;
    const queues = createQueues(producer, prefix);
    undo.push(async () => {
      await Promise.all([...queues.sync, ...queues.deliver].map((q) => q.obliterate({ force: true }))).catch(() => {});
      await queues.close();
    });
    const logger = createLogger({ name: 'bench-sim', level: 'silent' });
    const now = () => sim.clock.now();
    const userOf = new Map(participants.map((p) => [p.participantId, findUser(sim.world, p.userId)!]));
    // Kolkata-preset watches sync only when the phone app opens: every 2-4 h here, seeded.
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const manualNext = new Map(participants.filter((p) => p.preset === 'kolkata').map((p) => [p.participantId, now() + rand() * 3 * 3_600_000]));

    for (const p of participants) {
      await connectSimulatedParticipant(db, { sim: api, provider, cipher, redirectUri: REDIRECT, participantId: p.participantId, userId: p.userId });
      // The zone the participant is in when they connect, as the gateway records it from the
      // profile (the traveller moved to Los Angeles before the run starts, not London).
      const zones = userOf.get(p.participantId)!.zoneHistory;
      await recordTimeZone(db, p.participantId, zones.filter((z) => z.from <= now()).at(-1)!.zone, providerName, new Date(0));
      await scheduleStreams(db, p.participantId, STREAMS);
      if (p.preset === 'kolkata') syncUser(sim.world, userOf.get(p.participantId)!, now() - 60_000);
    }
    // scheduleStreams made them due at the database's now(); the simulated day may be another.
    await db.updateTable('sync_cursors').set({ next_due_at: new Date(now()) }).execute();

    const polls: SimPipeline['polls'] = [];
    const syncErrors: Record<string, number> = {};
    const outcomes: Record<string, number> = {};
    const processor = simSyncProcessor({ db, cipher, providers: { [providerName]: provider }, queues, logger, now, ...o });
    const worker = new Worker<SyncPayload, SyncSummary>(
      queueCatalog.sync.name,
      async (job: Job<SyncPayload>, token?: string) => {
        polls.push({ participantId: job.data.participantId, at: now(), reason: job.data.reason });
        return processor(job, token);
      },
      { connection: workerConnection, prefix, concurrency: o.fetcherConcurrency ?? 8 },
    );
    undo.push(() => worker.close());
    worker.on('failed', (_job, error) => {
      syncErrors[error.message.slice(0, 120)] = (syncErrors[error.message.slice(0, 120)] ?? 0) + 1;
    });
    worker.on('completed', (_job, summary) => {
      if (summary.outcome !== 'synced') outcomes[summary.outcome] = (outcomes[summary.outcome] ?? 0) + 1;
    });

    let lamp: LampSimulator | undefined;
    if (o.deliver) {
      const secretKey = randomBytes(12).toString('hex');
      const lampSim = createLampSimulator({
        credentials: [{ accessKey: 'bench@fitlamp', secretKey }],
        participants: participants.map((p) => ({ id: p.participantId, studyId: 'S0000000001' })),
      });
      lamp = lampSim;
      const lampUrl = await lampSim.app.listen({ port: 0, host: '127.0.0.1' });
      undo.push(() => lampSim.app.close());
      const deliverConnection = new Redis(testRedisUrl, { maxRetriesPerRequest: null });
      undo.push(async () => deliverConnection.disconnect());
      const { writer, client } = startSimWriter({ db, lampUrl, accessKey: 'bench@fitlamp', secretKey, logger, connection: deliverConnection, prefix, layout: queues.layout, concurrency: 4 });
      undo.push(() => client.close());
      undo.push(() => writer.close());
    }

    if (google && o.notifyAfterMs !== undefined) {
      // The gateway as production builds it (its webhook route verifies the keyset signature,
      // invalidates the named days and enqueues the targeted sync), subscribed for every data
      // type fitlamp reads, as the stack harness subscribes it.
      const env = loadGatewayEnv(
        serviceTestEnv({ DATABASE_URL: database.url, QUEUE_PREFIX: prefix, ...googleSimulatorEnv(googleUrl, { id: GOOGLE.clientId, secret: GOOGLE.clientSecret }) }),
      );
      const lampClient = createLampClient({ baseUrl: env.LAMP_API_URL, accessKey: env.LAMP_ACCESS_KEY, secretKey: env.LAMP_SECRET_KEY, timeoutMs: 1_000 });
      undo.push(() => lampClient.close());
      const gateway = await buildGateway({ env, logger, db, redis: producer, queues, registry: new Registry(), providers: { 'google-health': provider }, lamp: lampClient, cipher });
      const gatewayUrl = (await gateway.listen({ port: 0, host: '127.0.0.1' })).replace(/\/$/, '');
      undo.push(() => gateway.close());
      await subscribeGatewayWebhooks({ google, googleUrl, endpointUri: `${gatewayUrl}/webhooks/google-health`, secret: env.GOOGLE_HEALTH_WEBHOOK_SECRET!, subscriberId: 'fitlamp-bench' });
    }

    const drain = async () => {
      for (;;) {
        let running = 0;
        for (const q of o.deliver ? [...queues.sync, ...queues.deliver] : queues.sync) {
          const c = await q.getJobCounts('waiting', 'active', 'prioritized');
          running += (c.waiting ?? 0) + (c.active ?? 0) + (c.prioritized ?? 0);
        }
        // Delayed jobs (a retry's backoff, a spent budget) wait in real time; the next step
        // promotes them, and the processor decides again on the simulator's clock.
        if (running === 0) return;
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    const tick = async () => {
      await runTick({ db, queues, logger, spreadMs: 0, sweepAfterMs: 86_400_000 * 365, now });
    };
    return {
      db,
      sim,
      api,
      ...(google && o.notifyAfterMs !== undefined ? { google } : {}),
      ...(lamp ? { lamp } : {}),
      queues,
      participants,
      userOf,
      now,
      polls,
      syncErrors,
      outcomes,
      tick,
      drain,
      async step(ms) {
        sim.clock.advance(ms);
        for (const [participantId, at] of manualNext) {
          if (at <= now()) {
            syncUser(sim.world, userOf.get(participantId)!, at);
            manualNext.set(participantId, at + (2 + rand() * 2) * 3_600_000);
          }
        }
        // Notifications of the syncs at least notifyAfterMs old, delivered (and answered) before the tick.
        if (o.notifyAfterMs !== undefined) await google!.flushWebhooks();
        for (const q of o.deliver ? [...queues.sync, ...queues.deliver] : queues.sync) await q.promoteJobs();
        await tick();
        await drain();
      },
      close: cleanup,
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}
