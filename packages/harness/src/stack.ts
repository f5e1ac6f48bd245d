import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, createWriteStream, readFileSync, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import { createDb, migrateToLatest, type Database } from '@fitlamp/db';
import { STREAMS, daysBetween, syncWindow, type StreamName } from '@fitlamp/provider';
import {
  createFitbitSimulator,
  createGoogleHealthSimulator,
  createLampSimulator,
  type FitbitSimulator,
  type GoogleHealthSimulator,
  type LampSimulator,
  type UserSpec,
} from '@fitlamp/simulators';
import {
  adminDatabaseUrl,
  completeConsent,
  buildIfStale,
  databaseUrl,
  googleSimulatorEnv,
  requestEnrollmentLink,
  startProcess,
  testRedisUrl,
  type ServiceProcess,
} from '@fitlamp/testing';
import { subscribeGatewayWebhooks } from './google-webhooks.ts';
import { startPostgresServer, type PostgresServer } from './postgres-server.ts';
import { freePort, startRedisServer, type RedisServer } from './redis-server.ts';

/**
 * The whole of fitlamp on one machine, for the demo, the end-to-end tests and the benchmarks:
 * a fresh database, the four services as real processes, and the Fitbit and mindLAMP
 * simulators in this process. Nothing is shared with other runs (own database, own queue
 * prefix, optionally an own redis-server).
 */

export interface StackParticipant {
  /** mindLAMP participant id. */
  id: string;
  /** The simulated Fitbit account this participant connects (give it an `id`). */
  user: UserSpec & { id: string };
  /**
   * Which API the participant connects through [fitbit]: `google-health` consents at the Google
   * Health simulator, which serves the same world (the same person, the same data).
   */
  provider?: 'fitbit' | 'google-health';
}

export interface StackOptions {
  participants: StackParticipant[];
  /**
   * Run the Google Health simulator (sharing the Fitbit simulator's world and clock), enable the
   * `google-health` provider and subscribe the gateway's webhook endpoint. Default: when a
   * participant's `provider` is `google-health`.
   */
  google?: boolean;
  /** The Google Health simulator notifies a device sync this long after it [0: within its 500 ms delivery pass]. */
  googleNotifyAfterMs?: number;
  backfillDays: number;
  refetchDays?: number;
  fetcherReplicas?: number;
  writerReplicas?: number;
  /** Start the simulators' clock here (it ticks); the fetcher's clock is shifted to match. */
  simStartAt?: string;
  /** Run an own redis-server (needed to FLUSHALL safely); else the machine's with a unique prefix. */
  ownRedis?: boolean;
  /** With `ownRedis`: keep an append-only file, so `restartRedis()` comes back with the queues. */
  redisAof?: boolean;
  /**
   * Run an own Postgres cluster (temp dir, free port) instead of a database on the machine's, so
   * the run may restart Postgres or terminate connections without touching anyone else's.
   */
  ownPostgres?: boolean;
  /** Lifetime of the Fitbit simulator's access tokens (default 8 h); short ones make refreshes frequent. */
  accessTokenTtlSeconds?: number;
  syncIntervalSeconds?: number;
  schedulerTickSeconds?: number;
  sweepSeconds?: number;
  /** Latency added to every Fitbit data request, like the real API's. */
  providerLatencyMs?: number;
  /** Extra environment for every service. */
  env?: Record<string, string>;
  /** Write each service's output to files here (else kept in memory only). */
  logDir?: string;
  seed?: string;
  /** Fitbit requests per user per hour (default 150). */
  rateLimitPerHour?: number;
  /** Extra environment per service, over `env` (e.g. `FETCHER_CONCURRENCY` for the fetchers only). */
  serviceEnv?: Partial<Record<ServiceName, Record<string, string>>>;
  /**
   * Write a V8 CPU profile (`.cpuprofile`, as `--cpu-prof` would) of these services into `cpuProfileDir/<name>-<n>/` when
   * they exit (after `stop()`).
   */
  cpuProfile?: ServiceName[];
  cpuProfileDir?: string;
  /**
   * Run the services' built JavaScript (`services/<name>/dist/main.js` on plain node, built first
   * when stale), as production does, instead of their TypeScript source through tsx [false].
   */
  built?: boolean;
}

/** What the kernel says about one service process (Linux `/proc`); null fields once it has exited. */
export interface ServiceResources {
  name: ServiceName;
  replica: number;
  pid: number;
  /** Resident set size now, bytes. */
  rssBytes: number | null;
  /** Peak resident set size since start (VmHWM), bytes. */
  peakRssBytes: number | null;
  /** CPU time used since start (user + system), ms. */
  cpuMs: number | null;
}

export interface StackProgress {
  connected: number;
  /** Participant × stream × day cells of the backfill window that have a final status. */
  daysDone: number;
  daysExpected: number;
  failedDays: number;
  undelivered: number;
  openBatches: number;
  delivered: number;
}

export type ServiceName = 'gateway' | 'scheduler' | 'fetcher' | 'lamp-writer';

export interface Stack {
  db: Kysely<Database>;
  databaseUrl: string;
  /** Superuser URL of the Postgres server the stack's database is on (its own with `ownPostgres`). */
  adminDatabaseUrl: string;
  redisUrl: string;
  queuePrefix: string;
  /** The own Postgres cluster (`ownPostgres`). */
  postgres?: PostgresServer;
  /** The own redis-server (`ownRedis`). */
  redisServer?: RedisServer | undefined;
  /** Stops the own redis-server and starts it again on the same port (and AOF, with `redisAof`). */
  restartRedis(): Promise<void>;
  gatewayUrl: string;
  /** The gateway's ops server: /readyz and /metrics (OPS_PORT). */
  gatewayOpsUrl: string;
  adminToken: string;
  fitbit: FitbitSimulator;
  fitbitUrl: string;
  /** The Google Health simulator, when the stack runs one. */
  google?: GoogleHealthSimulator;
  googleUrl?: string;
  lamp: LampSimulator;
  lampUrl: string;
  processes: Record<ServiceName, ServiceProcess[]>;
  dataStreams: StreamName[];
  /**
   * Enrolls and connects a participant the way a person would, minus the browser, through
   * `provider` (default: the participant's own, else fitbit). Resolves with the enrollment link used.
   */
  connect(participant: StackParticipant, provider?: 'fitbit' | 'google-health'): Promise<string>;
  /** The environment every service was started with (secrets included), for tests that audit logs. */
  env: Readonly<Record<string, string>>;
  progress(): Promise<StackProgress>;
  /**
   * Resolves once every window day is fetched and every record delivered. Throws when nothing has
   * moved for `stallMs` [120 s] (a stuck pipeline, whatever the machine's speed), or at the
   * `timeoutMs` cap [15 min]. A slow machine only makes the wait longer; a stall fails it.
   */
  waitUntilCaughtUp(options?: { stallMs?: number; timeoutMs?: number; onProgress?: (p: StackProgress) => void }): Promise<StackProgress>;
  /** Starts another replica of a service (e.g. after killing one). */
  startService(name: ServiceName): Promise<ServiceProcess>;
  /** Memory and CPU of every service process started so far, read from `/proc` (Linux only). */
  resources(): ServiceResources[];
  stop(options?: { keepDatabase?: boolean }): Promise<void>;
}

const SERVICES: ServiceName[] = ['gateway', 'scheduler', 'fetcher', 'lamp-writer'];
const entry = (name: ServiceName, built: boolean) => (built ? `services/${name}/dist/main.js` : `services/${name}/src/main.ts`);

const CLIENT_ID = 'FITLAMPSTACK';

export async function startStack(options: StackOptions): Promise<Stack> {
  const started: Array<() => Promise<unknown>> = [];
  try {
    return await build(options, started);
  } catch (error) {
    for (const undo of started.reverse()) await undo().catch(() => {});
    throw error;
  }
}

async function build(options: StackOptions, cleanup: Array<() => Promise<unknown>>): Promise<Stack> {
  if (options.built) buildIfStale(SERVICES);
  const run = randomBytes(4).toString('hex');
  const dbName = `fitlamp_stack_${run}`;
  let postgres: PostgresServer | undefined;
  if (options.ownPostgres) {
    postgres = await startPostgresServer();
    // The whole cluster goes at stop(), database and all.
    cleanup.push(() => postgres!.stop());
  }
  const adminUrl = postgres?.adminUrl ?? adminDatabaseUrl;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`create database ${dbName}`);
  await admin.end();
  if (!postgres) cleanup.push(async () => dropDatabase(dbName));
  const dbUrl = postgres ? postgres.databaseUrl(dbName) : databaseUrl(dbName);
  const db = createDb(dbUrl, { max: 4, applicationName: 'fitlamp-stack' });
  cleanup.push(() => db.destroy());
  await migrateToLatest(db);

  let redis: RedisServer | undefined;
  let aofDir: string | undefined;
  if (options.ownRedis) {
    if (options.redisAof) {
      const dir = mkdtempSync(join(tmpdir(), 'fitlamp-redis-'));
      aofDir = dir;
      cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
    }
    redis = await startRedisServer(aofDir ? { aofDir } : {});
    // Whichever redis-server is running by then (restartRedis replaces it).
    cleanup.push(() => redis!.stop());
  }
  const redisUrl = redis?.url ?? testRedisUrl;
  const queuePrefix = `fitlamp-stack-${run}`;

  const lampAccessKey = 'researcher@fitlamp.demo';
  const lampSecretKey = randomBytes(12).toString('hex');
  const lamp = createLampSimulator({
    credentials: [{ accessKey: lampAccessKey, secretKey: lampSecretKey }],
    participants: options.participants.map((p) => ({ id: p.id, studyId: 'S0000000001' })),
  });
  const lampUrl = (await lamp.app.listen({ port: 0, host: '127.0.0.1' })).replace(/\/$/, '');
  cleanup.push(() => lamp.app.close());

  const gatewayPort = await freePort();
  const gatewayUrl = `http://127.0.0.1:${gatewayPort}`;
  const gatewayOpsPort = await freePort();
  const clientSecret = randomBytes(16).toString('hex');
  const simStart = options.simStartAt ? Date.parse(options.simStartAt) : undefined;
  const fitbit = createFitbitSimulator({
    clientId: CLIENT_ID,
    clientSecret,
    redirectUris: [`${gatewayUrl}/oauth/fitbit/callback`],
    appName: 'fitlamp demo study',
    seed: options.seed ?? 'fitlamp-stack',
    users: options.participants.map((p) => p.user),
    ...(simStart !== undefined ? { startAt: simStart } : {}),
    ...(options.rateLimitPerHour ? { rateLimitPerHour: options.rateLimitPerHour } : {}),
    ...(options.accessTokenTtlSeconds ? { accessTokenTtlSeconds: options.accessTokenTtlSeconds } : {}),
  });
  // The simulated world keeps time like the real one: ticking, from wherever it starts.
  fitbit.clock.freeze(false);
  const fitbitUrl = (await fitbit.app.listen({ port: 0, host: '127.0.0.1' })).replace(/\/$/, '');
  cleanup.push(() => fitbit.app.close());
  if (options.providerLatencyMs) fitbit.addFault({ path: '/1', kind: 'latency', latencyMs: options.providerLatencyMs });

  const withGoogle = options.google ?? options.participants.some((p) => p.provider === 'google-health');
  let google: GoogleHealthSimulator | undefined;
  let googleUrl: string | undefined;
  let googleEnv: Record<string, string> = {};
  if (withGoogle) {
    const googleClientId = 'fitlamp-stack.apps.googleusercontent.com';
    const googleSecret = randomBytes(16).toString('hex');
    // The same world and clock as the Fitbit simulator: one person, one set of days, two APIs.
    google = createGoogleHealthSimulator({
      clientId: googleClientId,
      clientSecret: googleSecret,
      redirectUris: [`${gatewayUrl}/oauth/google-health/callback`],
      appName: 'fitlamp demo study',
      world: fitbit.world,
      clock: fitbit.clock,
      webhooks: { deliveryIntervalMs: 500, ...(options.googleNotifyAfterMs ? { notifyAfterMs: options.googleNotifyAfterMs } : {}) },
    });
    googleUrl = (await google.app.listen({ port: 0, host: '127.0.0.1' })).replace(/\/$/, '');
    const sim = google;
    cleanup.push(() => sim.app.close());
    if (options.providerLatencyMs) google.addFault({ path: '/v4', kind: 'latency', latencyMs: options.providerLatencyMs });
    googleEnv = googleSimulatorEnv(googleUrl, { id: googleClientId, secret: googleSecret });
  }

  const adminToken = randomBytes(24).toString('base64url');
  const common: Record<string, string> = {
    NODE_ENV: 'development',
    LOG_LEVEL: 'info',
    DATABASE_URL: dbUrl,
    REDIS_URL: redisUrl,
    QUEUE_PREFIX: queuePrefix,
    HOST: '127.0.0.1',
    SHUTDOWN_TIMEOUT_MS: '10000',
    PUBLIC_BASE_URL: gatewayUrl,
    ADMIN_TOKEN: adminToken,
    ENROLLMENT_SECRET: randomBytes(32).toString('base64url'),
    TOKEN_ENCRYPTION_KEY: `stack:${randomBytes(32).toString('base64')}`,
    LAMP_API_URL: lampUrl,
    LAMP_ACCESS_KEY: lampAccessKey,
    LAMP_SECRET_KEY: lampSecretKey,
    FITBIT_CLIENT_ID: CLIENT_ID,
    FITBIT_CLIENT_SECRET: clientSecret,
    FITBIT_API_URL: fitbitUrl,
    FITBIT_AUTHORIZE_URL: `${fitbitUrl}/oauth2/authorize`,
    ...googleEnv,
    BACKFILL_DAYS: String(options.backfillDays),
    REFETCH_DAYS: String(options.refetchDays ?? 3),
    SYNC_INTERVAL_SECONDS: String(options.syncIntervalSeconds ?? 60),
    SCHEDULER_TICK_SECONDS: String(options.schedulerTickSeconds ?? 2),
    UNDELIVERED_SWEEP_SECONDS: String(options.sweepSeconds ?? 20),
    PUBLIC_RATE_LIMIT_PER_MINUTE: '10000',
    ...(simStart !== undefined ? { CLOCK_OFFSET_MS: String(fitbit.clock.now() - Date.now()) } : {}),
    ...options.env,
  };

  const processes: Record<ServiceName, ServiceProcess[]> = { gateway: [], scheduler: [], fetcher: [], 'lamp-writer': [] };
  const logs: WriteStream[] = [];
  if (options.logDir) mkdirSync(options.logDir, { recursive: true });
  const startService = async (name: ServiceName): Promise<ServiceProcess> => {
    const port = name === 'gateway' ? gatewayPort : await freePort();
    const env: Record<string, string> = { ...common, ...options.serviceEnv?.[name], PORT: String(port) };
    // The gateway's /readyz and /metrics have a port of their own.
    if (name === 'gateway') env.OPS_PORT = String(gatewayOpsPort);
    if (options.cpuProfile?.includes(name)) {
      const dir = join(options.cpuProfileDir ?? join(options.logDir ?? '.', 'cpu-profiles'), `${name}-${processes[name].length + 1}`);
      mkdirSync(dir, { recursive: true });
      // Node 20 refuses --cpu-prof in NODE_OPTIONS; a preload drives the same V8 profiler.
      env.NODE_OPTIONS = `${env.NODE_OPTIONS ?? ''} --import ${fileURLToPath(new URL('./cpu-profile.mjs', import.meta.url))}`.trim();
      env.FITLAMP_CPU_PROFILE_DIR = dir;
    }
    const proc = startProcess(entry(name, options.built ?? false), env);
    if (options.logDir) {
      const file = createWriteStream(join(options.logDir, `${name}-${processes[name].length + 1}.log`));
      logs.push(file);
      proc.proc.stdout!.pipe(file);
      proc.proc.stderr!.pipe(file);
    }
    processes[name].push(proc);
    // Generous: on a loaded machine seven processes compile and connect at once.
    await proc.waitForLine(/"msg":"started"/, 120_000);
    return proc;
  };
  cleanup.push(async () => {
    await Promise.all(Object.values(processes).flat().map((p) => p.stop('SIGTERM')));
    for (const file of logs) file.end();
  });
  await Promise.all([
    startService('gateway'),
    startService('scheduler'),
    ...Array.from({ length: options.fetcherReplicas ?? 1 }, () => startService('fetcher')),
    ...Array.from({ length: options.writerReplicas ?? 1 }, () => startService('lamp-writer')),
  ]);

  if (google) {
    // Subscribe the gateway's webhook endpoint (AUTOMATIC: every consenting user); the simulator
    // runs the verification handshake against the gateway first.
    await subscribeGatewayWebhooks({ google, googleUrl: googleUrl!, endpointUri: `${gatewayUrl}/webhooks/google-health`, secret: common.GOOGLE_HEALTH_WEBHOOK_SECRET!, subscriberId: 'fitlamp-stack' });
  }

  const dataStreams = STREAMS.filter((s) => s !== 'device');

  const progress = async (): Promise<StackProgress> => {
    const zones = await db.selectFrom('participant_time_zones').select(['participant_id', 'zone']).orderBy('valid_from').execute();
    const zoneOf = new Map(zones.map((z) => [z.participant_id, z.zone]));
    const connections = await db.selectFrom('provider_connections').select(['participant_id']).where('status', '=', 'connected').execute();
    // The product's window, on the product's clock (the simulators'): never a fixed date.
    const now = fitbit.clock.now();
    let daysExpected = 0;
    let daysDone = 0;
    for (const { participant_id } of connections) {
      const { first: from, today } = syncWindow([{ zone: zoneOf.get(participant_id) ?? 'UTC', validFrom: 0 }], now, options.backfillDays);
      daysExpected += dataStreams.length * daysBetween(from, today).length;
      const done = await db
        .selectFrom('day_ledger')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .where('participant_id', '=', participant_id)
        .where('day', '>=', from)
        .where('day', '<=', today)
        .where('stream', 'in', dataStreams)
        // Final for now: fetched, or nothing to fetch because the watch has not synced that day.
        .where((eb) =>
          eb.or([
            eb('status', 'in', ['settled', 'partial', 'empty']),
            eb.and([eb('status', '=', 'not_synced'), eb('reason', 'like', 'the device has%')]),
          ]),
        )
        .executeTakeFirstOrThrow();
      daysDone += Number(done.n);
    }
    const counts = await sql<{ failed: string; undelivered: string; open: string; delivered: string }>`
      select
        (select count(*) from day_ledger where status = 'failed') as failed,
        (select coalesce(sum(event_count), 0) from event_chunks where status in ('pending', 'sending')) as undelivered,
        (select count(*) from delivery_batches where status in ('sending', 'unknown')) as open,
        (select coalesce(sum(records_delivered), 0) from day_ledger) as delivered`.execute(db);
    const c = counts.rows[0]!;
    return {
      connected: connections.length,
      daysDone,
      daysExpected,
      failedDays: Number(c.failed),
      undelivered: Number(c.undelivered),
      openBatches: Number(c.open),
      delivered: Number(c.delivered),
    };
  };

  return {
    db,
    databaseUrl: dbUrl,
    adminDatabaseUrl: adminUrl,
    redisUrl,
    queuePrefix,
    ...(postgres ? { postgres } : {}),
    get redisServer() {
      return redis;
    },
    async restartRedis() {
      if (!redis) throw new Error('restartRedis needs ownRedis');
      await redis.stop();
      redis = await startRedisServer({ port: redis.port, ...(aofDir ? { aofDir } : {}) });
    },
    gatewayUrl,
    gatewayOpsUrl: `http://127.0.0.1:${gatewayOpsPort}`,
    adminToken,
    fitbit,
    fitbitUrl,
    ...(google ? { google, googleUrl: googleUrl! } : {}),
    lamp,
    lampUrl,
    processes,
    env: common,
    dataStreams,
    startService,
    progress,
    resources() {
      return (Object.entries(processes) as Array<[ServiceName, ServiceProcess[]]>).flatMap(([name, list]) =>
        list.map((p, i) => ({ name, replica: i + 1, pid: p.proc.pid!, ...readProcResources(p.proc.pid!) })),
      );
    },
    async connect(participant, provider = participant.provider ?? 'fitbit') {
      const link = await requestEnrollmentLink(gatewayUrl, adminToken, participant.id, { provider });
      const page = await completeConsent(link, { decision: 'allow', user: participant.user.id });
      const text = await page.text();
      if (page.status !== 200 || !text.includes('connected')) {
        throw new Error(`connecting ${participant.id} ended on ${page.status}: ${text.slice(0, 300)}`);
      }
      return link;
    },
    async waitUntilCaughtUp({ stallMs = 120_000, timeoutMs = 900_000, onProgress } = {}) {
      const deadline = Date.now() + timeoutMs;
      let last: StackProgress | undefined;
      let lastMove = Date.now();
      let why = `capped at ${timeoutMs} ms`;
      // Caught up twice in a row, a second apart: a sync finishing between two reads can still
      // enqueue a delivery.
      let streak = 0;
      while (Date.now() < deadline) {
        const previous = last;
        last = await progress();
        if (previous === undefined || JSON.stringify(previous) !== JSON.stringify(last)) lastMove = Date.now();
        if (Date.now() - lastMove > stallMs) {
          why = `stalled: no progress for ${stallMs} ms`;
          break;
        }
        onProgress?.(last);
        const done =
          last.connected === options.participants.length &&
          last.daysDone >= last.daysExpected &&
          last.failedDays === 0 &&
          last.undelivered === 0 &&
          last.openBatches === 0;
        streak = done ? streak + 1 : 0;
        if (streak >= 2) return last;
        await new Promise((r) => setTimeout(r, 1_000));
      }
      const gaps = await sql<{ participant_id: string; stream: string; status: string; reason: string | null; n: string }>`
        select participant_id, stream, status, reason, count(*) as n from day_ledger
        where status not in ('settled', 'partial', 'empty') group by 1, 2, 3, 4 order by 1, 2 limit 20`.execute(db);
      const connections = await db.selectFrom('provider_connections').select(['participant_id', 'status', 'status_reason', 'last_sync_at']).execute();
      const unsynced = connections.filter((c) => c.status !== 'connected' || !c.last_sync_at);
      throw new Error(
        `not caught up (${why}): ${JSON.stringify(last)}; open days: ${JSON.stringify(gaps.rows)}; ` +
          `connections not synced: ${JSON.stringify(unsynced)}`,
      );
    },
    async stop({ keepDatabase = false } = {}) {
      // An own cluster cannot outlive the stack: its database goes with it.
      if (keepDatabase && !postgres) cleanup.splice(0, 1);
      for (const undo of [...cleanup].reverse()) await undo().catch(() => {});
      cleanup.length = 0;
    },
  };
}

/** Reads VmRSS, VmHWM and utime+stime of a process; nulls if it is gone or this is not Linux. */
export function readProcResources(pid: number): Pick<ServiceResources, 'rssBytes' | 'peakRssBytes' | 'cpuMs'> {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => {
      const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
      return m ? Number(m[1]) * 1024 : null;
    };
    // Fields 14 and 15 of /proc/<pid>/stat, after the parenthesised command name, in clock ticks
    // (USER_HZ, 100 on Linux).
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return { rssBytes: kb('VmRSS'), peakRssBytes: kb('VmHWM'), cpuMs: ticks * 10 };
  } catch {
    return { rssBytes: null, peakRssBytes: null, cpuMs: null };
  }
}

async function dropDatabase(name: string): Promise<void> {
  const admin = new pg.Client({ connectionString: adminDatabaseUrl });
  await admin.connect();
  try {
    await admin.query(`drop database if exists ${name} with (force)`);
  } finally {
    await admin.end();
  }
}
