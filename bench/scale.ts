// Section `scale` (issue 14 item 1): many participants at steady state on a simulated clock that
// runs at a multiple of real time. The Fitbit and Google Health simulators (one world, one clock)
// and the mindLAMP simulator run in this process; the scheduler's pass, the fetcher's processor,
// the lamp-writer's deliver workers and the gateway (for its Google Health webhook route) run as
// four processes of their own (bench/scale-service.ts) whose clocks follow the simulators', over a
// Postgres cluster and a Redis of the run's own, so each one's CPU time is read from /proc and
// Redis's peak memory is this run's.
//
// Google Health participants get webhooks as in production: a subscriber (AUTOMATIC, the
// gateway's secret) is created at the simulator before anyone enrols, the simulator notifies the
// gateway 5 simulated seconds after each device sync (on the simulated clock: 5 ÷ speed-up real
// seconds), and the fetcher polls them WEBHOOK_POLL_MULTIPLIER (4) times less often while
// notifications arrive (services/fetcher/src/poll-interval.ts).
//
// Enrolment goes around the consent pages: the OAuth code is granted by the simulators' auto-consent
// and exchanged by the providers' real code, then the connection is stored through @fitlamp/db, as
// the gateway stores it. The device's recent syncs (which adaptive polling learns its rhythm from)
// are seeded from the simulator's world, as days of polling would have left them. The first sync of
// every participant (today so far: BACKFILL_DAYS=1) runs with the clock standing still (the
// warm-up), and the polls' phases are then spread over their interval, as enrolment over weeks
// would have spread them; only then is anything measured.
//
// A sync "fell behind" when it started more than 60 simulated seconds after the moment the
// scheduler planned it for: the moment its job was enqueued plus the delay the scheduler gave it
// (the spread), read from the BullMQ job. That is the queue's lag. The scheduler's own lag
// (a pass every SCHEDULER_TICK_SECONDS, then a spread of up to 4 passes) is by design and shown apart.
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import { createDb, migrateToLatest, recordTimeZone, scheduleStreams } from '@fitlamp/db';
import { createTokenCipher, parseEncryptionKey } from '@fitlamp/crypto';
import { createFitbitProvider } from '@fitlamp/fitbit';
import { createGoogleHealthProvider } from '@fitlamp/google-health';
import { startPostgresServer, startRedisServer, subscribeGatewayWebhooks } from '@fitlamp/harness';
import { STREAMS, type Provider } from '@fitlamp/provider';
import { createQueues } from '@fitlamp/queues';
import { createFitbitSimulator, createGoogleHealthSimulator, createLampSimulator, findUser, lastSync, syncUser, type Clock, type WorldUser } from '@fitlamp/simulators';
import { connectSimulatedParticipant } from '@fitlamp/testing';
import type { ScaleCommand, ScaleServiceConfig, ScaleServiceReport } from './scale-service.ts';
import { readCpuMs } from './throughput.ts';

export interface ScaleOptions {
  participants: number;
  /** Speed-ups tried in the search, fastest first, each for `searchMinutes` simulated minutes. */
  speeds: number[];
  searchMinutes: number;
  /** The long run, at the fastest speed-up of the search at which no sync fell behind. */
  hours: number;
  /** The long run at this speed-up instead (a time budget); its fell-behind count then says how the machine copes there. */
  finalSpeed?: number;
  /** SYNC_INTERVAL_SECONDS [900] and POLL_MAX_INTERVAL_SECONDS [21600]: the services' defaults. */
  pollSeconds: number;
  pollMaxSeconds: number;
  fetcherConcurrency: number;
  writerConcurrency: number;
  /** Connections made at once per provider during enrolment [8]. */
  enrolConcurrency?: number;
  startAt: string;
  /** Called once the warm-up is done and before anything is measured (e.g. to take the heavy lock). */
  beforeMeasuring?: () => Promise<void>;
  /** Raise this process, the services and Postgres to priority 0 before measuring (after a niced warm-up). */
  normalPriority?: boolean;
  log: (line: string) => void;
}

export interface ScalePhase {
  speed: number;
  simSeconds: number;
  realSeconds: number;
  participantDays: number;
  providerRequests: number;
  requestsPerParticipantDay: number;
  requestsByProvider: Record<string, number>;
  syncs: number;
  /** Syncs that started more than 60 simulated s after their planned moment. */
  fellBehind: number;
  lateP50Seconds: number;
  lateP95Seconds: number;
  lateMaxSeconds: number;
  deliveries: number;
  deliveriesLate: number;
  deliveryLateP95Seconds: number;
  retries: number;
  failed: Record<string, number>;
  /** CPU seconds per participant-day, by service, and Postgres (every process of the run's cluster). */
  cpuSecondsPerParticipantDay: Record<string, number>;
  /** Cores in use on average over the phase (real time). */
  cores: Record<string, number>;
  tickP50Ms: number;
  tickP95Ms: number;
  ticks: number;
  dueParticipantsPerTick: number;
  peakQueueDepth: { sync: number; deliver: number };
  /** Provider requests per participant-day of that provider's participants (Fitbit: polling; Google Health: webhooks and polling). */
  requestsPerParticipantDayByProvider: Record<string, number>;
  /** Provider requests by endpoint (the simulators' names), per provider. */
  requestsByEndpoint: Record<string, Record<string, number>>;
  /** Google Health notifications the gateway received, by its outcome (accepted, duplicate, unknown_user, …). */
  notifications: Record<string, number>;
  /** All of them, per Google Health participant-day. */
  notificationsPerGoogleParticipantDay: number;
}

export interface ScaleResult {
  participants: number;
  mix: Record<string, number>;
  pollSeconds: number;
  pollMaxSeconds: number;
  fetcherConcurrency: number;
  writerConcurrency: number;
  enrolSeconds: number;
  /** Connections made at once per provider during enrolment. */
  enrolConcurrency: number;
  warmupSeconds: number;
  /** The simulator notifies a device sync this long after it (simulated seconds). */
  notifyAfterSeconds: number;
  search: ScalePhase[];
  /** The largest speed-up of the search at which no sync fell behind (0 if none). */
  chosenSpeed: number;
  final?: ScalePhase;
  databaseBytes: number;
  emptyDatabaseBytes: number;
  bytesPerParticipant: number;
  redisPeakBytes: number;
  redisUsedBytes: number;
  load: { before: number[]; after: number[] };
}

const FITBIT = { clientId: 'SCALESIM', clientSecret: 'scale-fitbit-secret' };
const GOOGLE = { clientId: 'scale.apps.googleusercontent.com', clientSecret: 'scale-google-secret' };
const REDIRECT = 'http://127.0.0.1:9/oauth/callback';
/** The Google Health simulator notifies a device sync this long after it (issue 14 item 4). */
const NOTIFY_AFTER_MS = 5_000;
const PRESETS = ['new-york', 'traveler', 'sydney', 'kolkata'] as const;
/** What each preset stands for here. */
export const PRESET_HABITS: Record<string, string> = {
  'new-york': 'watch syncing every 15 min',
  traveler: 'watch syncing hourly',
  sydney: 'watch syncing every 4 h',
  kolkata: 'watch synced by its phone app when opened, every 2-4 h',
};

/** A clock at `speed` × real time from `t0`; speed 0 stands still. */
function speedClock(startAt: number) {
  let anchor = { t0: startAt, r0: Date.now(), speed: 0 };
  const now = () => anchor.t0 + (Date.now() - anchor.r0) * anchor.speed;
  // `rate`: the Google simulator plans its notifications on this clock (simulated ms per real ms).
  const clock: Clock & { rate(): number } = {
    rate: () => anchor.speed,
    now,
    set(ms) {
      anchor = { ...anchor, t0: ms, r0: Date.now() };
    },
    advance(ms) {
      anchor = { ...anchor, t0: now() + ms, r0: Date.now() };
    },
    freeze(frozen) {
      anchor = { t0: now(), r0: Date.now(), speed: frozen ? 0 : 1 };
    },
    isFrozen: () => anchor.speed === 0,
  };
  return {
    clock,
    setSpeed(speed: number) {
      anchor = { t0: now(), r0: Date.now(), speed };
      return anchor;
    },
  };
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/**
 * CPU of a Postgres cluster: the postmaster and every process it started (backends, checkpointer,
 * WAL writer, autovacuum). Sampled: each call adds what each process used since the last call
 * (a process's whole time the first time it is seen), so processes that exit meanwhile are not
 * subtracted; what a process used between its last sample and its exit is lost.
 */
/** Processes whose parent is `parent` (Linux /proc). */
function childrenOf(parent: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === parent) pids.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

function clusterCpuSampler(dataDir: string) {
  const postmaster = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const seen = new Map<number, number>();
  let total = 0;
  return () => {
    const pids = [postmaster, ...childrenOf(postmaster)];
    for (const pid of pids) {
      const ms = readCpuMs(pid);
      if (ms === null) continue;
      total += ms - (seen.get(pid) ?? 0);
      seen.set(pid, ms);
    }
    return total;
  };
}

/** Requests by endpoint over every user. */
function byEndpoint(counters: Record<string, Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const perUser of Object.values(counters)) for (const [endpoint, n] of Object.entries(perUser)) out[endpoint] = (out[endpoint] ?? 0) + n;
  return out;
}

function sumRequests(counters: Record<string, Record<string, number>>): number {
  let n = 0;
  for (const byEndpoint of Object.values(counters)) for (const c of Object.values(byEndpoint)) n += c;
  return n;
}

export async function runScale(o: ScaleOptions): Promise<ScaleResult> {
  const undo: Array<() => Promise<unknown>> = [];
  const cleanup = async () => {
    for (const fn of undo.reverse()) await fn().catch(() => {});
  };
  const loadBefore = (await import('node:os')).loadavg();
  try {
    const pg = await startPostgresServer();
    undo.push(() => pg.stop());
    const admin = createDb(pg.adminUrl, { max: 1 });
    await sql.raw('create database fitlamp_scale').execute(admin);
    await admin.destroy();
    const databaseUrl = pg.databaseUrl('fitlamp_scale');
    const db = createDb(databaseUrl, { max: 10, applicationName: 'fitlamp-scale-bench' });
    undo.push(() => db.destroy());
    await migrateToLatest(db);
    const emptyDatabaseBytes = Number((await sql<{ n: string }>`select pg_database_size(current_database()) as n`.execute(db)).rows[0]!.n);
    const redisServer = await startRedisServer();
    undo.push(() => redisServer.stop());
    const redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
    undo.push(async () => redis.disconnect());
    const prefix = 'fitlamp-scale';
    const queues = createQueues(redis, prefix);
    undo.push(() => queues.close());

    const start = Date.parse(o.startAt);
    const { clock, setSpeed } = speedClock(start);
    // Participant i: preset i mod 4, provider alternating every 4 (so each preset has both).
    const participants = Array.from({ length: o.participants }, (_, i) => ({
      participantId: `P${String(i + 1).padStart(9, '0')}`,
      userId: `S${i.toString(36).toUpperCase().padStart(5, '0')}`,
      preset: PRESETS[i % 4]!,
      provider: Math.floor(i / 4) % 2 === 0 ? ('fitbit' as const) : ('google-health' as const),
    }));
    const fitbitSim = createFitbitSimulator({ ...FITBIT, redirectUris: [REDIRECT], appName: 'scale bench', seed: 'scale', clock, users: participants.map((p) => ({ id: p.userId, preset: p.preset })) });
    const googleSim = createGoogleHealthSimulator({ ...GOOGLE, redirectUris: [REDIRECT], appName: 'scale bench', world: fitbitSim.world, clock, webhooks: { notifyAfterMs: NOTIFY_AFTER_MS, deliveryIntervalMs: 1000, keepSettled: false } });
    const fitbitUrl = (await fitbitSim.app.listen({ port: 0, host: '127.0.0.1' })).replace(/\/$/, '');
    undo.push(() => fitbitSim.app.close());
    const googleUrl = (await googleSim.app.listen({ port: 0, host: '127.0.0.1' })).replace(/\/$/, '');
    undo.push(() => googleSim.app.close());
    const lampKey = randomBytes(12).toString('hex');
    const lampSim = createLampSimulator({ credentials: [{ accessKey: 'scale@fitlamp', secretKey: lampKey }], participants: participants.map((p) => ({ id: p.participantId, studyId: 'S0000000001' })) });
    const lampUrl = (await lampSim.app.listen({ port: 0, host: '127.0.0.1' })).replace(/\/$/, '');
    undo.push(() => lampSim.app.close());

    const providers: Record<'fitbit' | 'google-health', Provider> = {
      fitbit: createFitbitProvider({ ...FITBIT, apiUrl: fitbitUrl, authorizeUrl: `${fitbitUrl}/oauth2/authorize` }),
      'google-health': createGoogleHealthProvider({ ...GOOGLE, apiUrl: googleUrl, authorizeUrl: `${googleUrl}/o/oauth2/v2/auth`, tokenUrl: `${googleUrl}/token`, revokeUrl: `${googleUrl}/revoke` }),
    };
    const encryptionKey = `b1:${randomBytes(32).toString('base64')}`;
    const cipher = createTokenCipher(parseEncryptionKey(encryptionKey));
    const userOf = new Map<string, WorldUser>(participants.map((p) => [p.participantId, findUser(fitbitSim.world, p.userId)!]));

    // Phone-synced watches: the app opens every 2-4 h (seeded), as in the efficiency section.
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const manualNext = new Map<string, number>();
    for (const p of participants.filter((x) => x.preset === 'kolkata')) {
      // A history of app openings before the start, so the rhythm is there to learn; the next one
      // is recorded ahead (the world shows a sync only from its instant on), so that the Google
      // simulator plans its notification for the exact simulated moment.
      const user = userOf.get(p.participantId)!;
      let at = start - 14 * 3_600_000 + rand() * 3 * 3_600_000;
      while (at < start) {
        syncUser(fitbitSim.world, user, at);
        at += (2 + rand() * 2) * 3_600_000;
      }
      syncUser(fitbitSim.world, user, at);
      manualNext.set(p.participantId, at);
    }

    const webhookSecret = `Bearer ${randomBytes(24).toString('base64url')}`;
    const base: Omit<ScaleServiceConfig, 'role' | 'concurrency'> = {
      databaseUrl,
      redisUrl: redisServer.url,
      prefix,
      encryptionKey,
      fitbit: { ...FITBIT, url: fitbitUrl },
      google: { ...GOOGLE, url: googleUrl },
      lamp: { url: lampUrl, accessKey: 'scale@fitlamp', secretKey: lampKey },
      pollSeconds: o.pollSeconds,
      pollMaxSeconds: o.pollMaxSeconds,
      backfillDays: 1,
      refetchDays: 3,
      tickSeconds: 15,
      sweepSeconds: 300,
      webhookSecret,
    };
    const services = new Map<string, ChildProcess>();
    const waiting = new Map<string, (m: { type: string; report?: ScaleServiceReport; url?: string }) => void>();
    const startService = (role: ScaleServiceConfig['role'], concurrency: number) => {
      const child = fork(new URL('./scale-service.ts', import.meta.url).pathname, [], {
        execArgv: ['--import', 'tsx'],
        env: { ...process.env, SCALE_SERVICE_CONFIG: JSON.stringify({ ...base, role, concurrency }) },
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      services.set(role, child);
      const ready = new Promise<{ url?: string }>((resolve) => waiting.set(`${role}:ready`, resolve));
      child.on('message', (m: { type: string; report?: ScaleServiceReport; url?: string }) => {
        const w = waiting.get(`${role}:${m.type}`);
        if (w) {
          waiting.delete(`${role}:${m.type}`);
          w(m);
        }
      });
      undo.push(async () => {
        if (child.exitCode !== null) return;
        const exited = new Promise((r) => child.once('exit', r));
        child.send({ type: 'stop' } satisfies ScaleCommand);
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      });
      return ready;
    };

    // The gateway first, and the subscriber at the simulator before anyone enrols, as in production.
    const gatewayUrl = (await startService('gateway', 1)).url!;
    await subscribeGatewayWebhooks({ google: googleSim, googleUrl, endpointUri: `${gatewayUrl}/webhooks/google-health`, secret: webhookSecret, subscriberId: 'fitlamp-scale' });

    // Enrolment: several connections at a time per simulator, each as connectSimulatedParticipant
    // makes it (auto-consent for the account login_hint names, the providers' code exchange).
    const enrolConcurrency = o.enrolConcurrency ?? 8;
    const enrolStarted = Date.now();
    let enrolled = 0;
    const enrolOne = async (p: (typeof participants)[number]) => {
      const provider = providers[p.provider];
      const sim = p.provider === 'fitbit' ? fitbitSim : googleSim;
      const { connection } = await connectSimulatedParticipant(db, { sim, provider, cipher, redirectUri: REDIRECT, participantId: p.participantId, userId: p.userId });
      const user = userOf.get(p.participantId)!;
      await recordTimeZone(db, p.participantId, user.zoneHistory[0]!.zone, p.provider, new Date(0));
      await scheduleStreams(db, p.participantId, STREAMS);
      // The device's last syncs, as polling over the days before would have recorded them.
      const syncs: number[] = [];
      let t = clock.now();
      for (let k = 0; k < 6; k += 1) {
        const last = lastSync(fitbitSim.world, user, t);
        if (last === null) break;
        syncs.unshift(last);
        t = last - 1;
      }
      if (syncs.length > 0) {
        await db
          .updateTable('provider_connections')
          .set({ device_sync_times: syncs.map((s) => new Date(s)), device_last_sync_at: new Date(syncs.at(-1)!) })
          .where('id', '=', connection.id)
          .execute();
      }
      enrolled += 1;
      if (enrolled % 1000 === 0) o.log(`    enrolled ${enrolled}/${participants.length} (${((Date.now() - enrolStarted) / 1000).toFixed(0)} s)`);
    };
    for (const sim of [fitbitSim, googleSim]) sim.state.autoConsent = { decision: 'allow', userId: undefined, scopes: undefined };
    await Promise.all(
      (['fitbit', 'google-health'] as const).map(async (provider) => {
        const queue = participants.filter((x) => x.provider === provider);
        let nextIndex = 0;
        await Promise.all(
          Array.from({ length: enrolConcurrency }, async () => {
            while (nextIndex < queue.length) await enrolOne(queue[nextIndex++]!);
          }),
        );
      }),
    );
    for (const sim of [fitbitSim, googleSim]) sim.state.autoConsent = undefined;
    await db.updateTable('sync_cursors').set({ next_due_at: new Date(clock.now()) }).execute();
    const enrolSeconds = (Date.now() - enrolStarted) / 1000;
    o.log(`    ${participants.length} participants enrolled in ${enrolSeconds.toFixed(0)} s (${enrolConcurrency} at a time per provider)`);

    // The other services.
    await Promise.all(([['scheduler', 1], ['fetcher', o.fetcherConcurrency], ['writer', o.writerConcurrency]] as const).map(([role, concurrency]) => startService(role, concurrency)));
    const ask = (role: string, command: ScaleCommand, reply: string) =>
      new Promise<{ type: string; report?: ScaleServiceReport }>((resolve) => {
        waiting.set(`${role}:${reply}`, resolve);
        services.get(role)!.send(command);
      });
    const setAllSpeeds = async (speed: number) => {
      const anchor = setSpeed(speed);
      await Promise.all([...services.keys()].map((role) => ask(role, { type: 'clock', ...anchor }, 'clock-set')));
      // The simulator's timer re-plans its next notification at the new speed.
      googleSim.state.webhooks.wake?.();
    };
    const depth = async () => {
      const count = async (qs: ReadonlyArray<{ getJobCounts: (typeof queues.sync)[number]['getJobCounts'] }>) => {
        let n = 0;
        for (const q of qs) {
          const c = await q.getJobCounts('waiting', 'active', 'prioritized', 'delayed');
          n += (c.waiting ?? 0) + (c.active ?? 0) + (c.prioritized ?? 0) + (c.delayed ?? 0);
        }
        return n;
      };
      return { sync: await count(queues.sync), deliver: await count(queues.deliver) };
    };
    const drain = async () => {
      for (;;) {
        const d = await depth();
        if (d.sync + d.deliver === 0) return;
        await new Promise((r) => setTimeout(r, 500));
      }
    };

    // Warm-up: every participant's first sync, the clock standing still.
    const warmStarted = Date.now();
    await setAllSpeeds(0);
    await new Promise((r) => setTimeout(r, 3000));
    for (;;) {
      const d = await depth();
      // A connection the loaded machine could not open in time is asked again on the next round.
      const due = await sql<{ n: string }>`select count(*) as n from sync_cursors where next_due_at <= ${new Date(clock.now())}`
        .execute(db)
        .then((r) => Number(r.rows[0]!.n))
        .catch(() => -1);
      if (d.sync + d.deliver === 0 && due === 0) break;
      o.log(`    warm-up: ${due} cursors due, queues sync ${d.sync} deliver ${d.deliver} (${((Date.now() - warmStarted) / 1000).toFixed(0)} s)`);
      // Nothing here reads what mindLAMP stored, and 10,000 participants' day so far is about 20M
      // events: kept, they filled this process's 4 GiB heap before the warm-up was half done.
      lampSim.reset();
      await new Promise((r) => setTimeout(r, 10_000));
    }
    // Enrolment over weeks would have spread the polls' phases: spread them over their wait.
    await sql`update sync_cursors set next_due_at = ${new Date(clock.now())}::timestamptz + random() * (next_due_at - ${new Date(clock.now())}::timestamptz)`.execute(db);
    lampSim.reset();
    const warmupSeconds = (Date.now() - warmStarted) / 1000;
    o.log(`    warm-up (first sync of everyone, today so far) done in ${warmupSeconds.toFixed(0)} s`);

    const clusterCpuMs = clusterCpuSampler(pg.dataDir);
    await o.beforeMeasuring?.();
    // The warm-up may run niced (it measures nothing); what is measured runs at normal priority:
    // this process, the services, and the run's Postgres.
    if (o.normalPriority) {
      const postmaster = Number(readFileSync(join(pg.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
      const pids = [process.pid, ...[...services.values()].map((c) => c.pid!), postmaster, ...childrenOf(postmaster)];
      for (const pid of pids) {
        try {
          setPriority(pid, 0);
        } catch {
          // Not allowed (not root) or gone: measured at the priority it has.
        }
      }
    }
    clusterCpuMs();
    const runPhase = async (speed: number, simSeconds: number): Promise<ScalePhase> => {
      for (const role of services.keys()) await ask(role, { type: 'report' }, 'report');
      const cpu0 = new Map([...services].map(([role, child]) => [role, readCpuMs(child.pid!) ?? 0]));
      const pg0 = clusterCpuMs();
      const bench0 = process.cpuUsage();
      const requests0 = { fitbit: sumRequests(fitbitSim.counters().requests), google: sumRequests(googleSim.counters().requests) };
      const endpoints0 = { fitbit: byEndpoint(fitbitSim.counters().requests), 'google-health': byEndpoint(googleSim.counters().requests) };
      const peak = { sync: 0, deliver: 0 };
      const realStart = Date.now();
      await setAllSpeeds(speed);
      const endAt = clock.now() + simSeconds * 1000;
      while (clock.now() < endAt) {
        for (const [participantId, at] of manualNext) {
          if (at <= clock.now()) {
            // The next opening, recorded ahead; recordSync plans its notification (Google participants).
            const next = at + (2 + rand() * 2) * 3_600_000;
            googleSim.recordSync(userOf.get(participantId)!.id, next);
            manualNext.set(participantId, next);
          }
        }
        const d = await depth();
        peak.sync = Math.max(peak.sync, d.sync);
        peak.deliver = Math.max(peak.deliver, d.deliver);
        clusterCpuMs();
        await new Promise((r) => setTimeout(r, 1000));
      }
      const simDone = (clock.now() - (endAt - simSeconds * 1000)) / 1000;
      const realSeconds = (Date.now() - realStart) / 1000;
      await setAllSpeeds(0);
      const cpu = Object.fromEntries([...services].map(([role, child]) => [role, ((readCpuMs(child.pid!) ?? 0) - cpu0.get(role)!) / 1000]));
      cpu.postgres = (clusterCpuMs() - pg0) / 1000;
      const b = process.cpuUsage(bench0);
      cpu['simulators (bench process)'] = (b.user + b.system) / 1e6;
      const reports = new Map<string, ScaleServiceReport>();
      for (const role of services.keys()) reports.set(role, (await ask(role, { type: 'report' }, 'report')).report!);
      const requestsByProvider = {
        fitbit: sumRequests(fitbitSim.counters().requests) - requests0.fitbit,
        'google-health': sumRequests(googleSim.counters().requests) - requests0.google,
      };
      const providerRequests = requestsByProvider.fitbit + requestsByProvider['google-health'];
      const participantDays = (participants.length * simDone) / 86_400;
      const daysOf = (provider: string) => (participants.filter((p) => p.provider === provider).length * simDone) / 86_400;
      const notifications = reports.get('gateway')!.notifications;
      const notificationCount = Object.values(notifications).reduce((a, n) => a + n, 0);
      const fetcher = reports.get('fetcher')!;
      const writer = reports.get('writer')!;
      const scheduler = reports.get('scheduler')!;
      // What was left in the queues when the clock stopped finishes (not counted) before the next phase.
      await drain();
      lampSim.reset();
      return {
        speed,
        simSeconds: simDone,
        realSeconds,
        participantDays,
        providerRequests,
        requestsPerParticipantDay: providerRequests / participantDays,
        requestsByProvider,
        syncs: fetcher.lateMs.length,
        fellBehind: fetcher.lateMs.filter((ms) => ms > 60_000).length,
        lateP50Seconds: percentile(fetcher.lateMs, 50) / 1000,
        lateP95Seconds: percentile(fetcher.lateMs, 95) / 1000,
        lateMaxSeconds: Math.max(0, ...fetcher.lateMs) / 1000,
        deliveries: writer.lateMs.length,
        deliveriesLate: writer.lateMs.filter((ms) => ms > 60_000).length,
        deliveryLateP95Seconds: percentile(writer.lateMs, 95) / 1000,
        retries: fetcher.retries + writer.retries,
        failed: { ...fetcher.failed, ...writer.failed, ...scheduler.failed },
        cpuSecondsPerParticipantDay: Object.fromEntries(Object.entries(cpu).map(([k, s]) => [k, s / participantDays])),
        cores: Object.fromEntries(Object.entries(cpu).map(([k, s]) => [k, s / realSeconds])),
        tickP50Ms: percentile(scheduler.tickMs, 50),
        tickP95Ms: percentile(scheduler.tickMs, 95),
        ticks: scheduler.tickMs.length,
        dueParticipantsPerTick: scheduler.tickMs.length ? scheduler.due / scheduler.tickMs.length : 0,
        peakQueueDepth: peak,
        requestsPerParticipantDayByProvider: Object.fromEntries(Object.entries(requestsByProvider).map(([k, n]) => [k, daysOf(k) > 0 ? n / daysOf(k) : 0])),
        requestsByEndpoint: Object.fromEntries(
          (['fitbit', 'google-health'] as const).map((provider) => {
            const now = byEndpoint((provider === 'fitbit' ? fitbitSim : googleSim).counters().requests);
            return [provider, Object.fromEntries(Object.entries(now).map(([k, n]) => [k, n - (endpoints0[provider][k] ?? 0)]).filter(([, n]) => (n as number) > 0))];
          }),
        ),
        notifications,
        notificationsPerGoogleParticipantDay: daysOf('google-health') > 0 ? notificationCount / daysOf('google-health') : 0,
      };
    };
    const describe = (p: ScalePhase) =>
      `${p.speed}×: ${(p.simSeconds / 60).toFixed(0)} sim min in ${p.realSeconds.toFixed(0)} s; ${p.syncs} syncs, ${p.fellBehind} fell behind (late p95 ${p.lateP95Seconds.toFixed(1)} s, max ${p.lateMaxSeconds.toFixed(1)} s); ` +
      `${p.requestsPerParticipantDay.toFixed(0)} requests/participant-day (${Object.entries(p.requestsPerParticipantDayByProvider).map(([k, n]) => `${k} ${n.toFixed(0)}`).join(', ')}); ` +
      `${p.notificationsPerGoogleParticipantDay.toFixed(0)} notifications/Google participant-day ${JSON.stringify(p.notifications)}; cores ${Object.entries(p.cores).map(([k, c]) => `${k} ${c.toFixed(2)}`).join(', ')}; ` +
      `CPU-s/participant-day ${Object.entries(p.cpuSecondsPerParticipantDay).map(([k, c]) => `${k} ${c.toFixed(3)}`).join(', ')}; ` +
      `tick p50 ${p.tickP50Ms.toFixed(0)} ms p95 ${p.tickP95Ms.toFixed(0)} ms; peak queues sync ${p.peakQueueDepth.sync} deliver ${p.peakQueueDepth.deliver}; failed ${JSON.stringify(p.failed)}`;

    const search: ScalePhase[] = [];
    let chosenSpeed = 0;
    for (const speed of o.speeds) {
      const phase = await runPhase(speed, o.searchMinutes * 60);
      search.push(phase);
      o.log(`    search ${describe(phase)}`);
      o.log(`      requests by endpoint: ${JSON.stringify(phase.requestsByEndpoint)}`);
      if (phase.fellBehind === 0) {
        chosenSpeed = speed;
        break;
      }
    }
    let final: ScalePhase | undefined;
    if (o.hours > 0) {
      const speed = o.finalSpeed ?? (chosenSpeed || o.speeds.at(-1)!);
      final = await runPhase(speed, o.hours * 3600);
      o.log(`    final ${describe(final)}`);
    }
    const databaseBytes = Number((await sql<{ n: string }>`select pg_database_size(current_database()) as n`.execute(db)).rows[0]!.n);
    const info = await redis.info('memory');
    const field = (name: string) => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(info)?.[1] ?? 0);
    const mix: Record<string, number> = {};
    for (const p of participants) mix[`${p.provider} ${p.preset}`] = (mix[`${p.provider} ${p.preset}`] ?? 0) + 1;
    return {
      participants: participants.length,
      mix,
      pollSeconds: o.pollSeconds,
      pollMaxSeconds: o.pollMaxSeconds,
      fetcherConcurrency: o.fetcherConcurrency,
      writerConcurrency: o.writerConcurrency,
      enrolSeconds,
      enrolConcurrency,
      warmupSeconds,
      notifyAfterSeconds: NOTIFY_AFTER_MS / 1000,
      search,
      chosenSpeed,
      ...(final ? { final } : {}),
      databaseBytes,
      emptyDatabaseBytes,
      bytesPerParticipant: (databaseBytes - emptyDatabaseBytes) / participants.length,
      redisPeakBytes: field('used_memory_peak'),
      redisUsedBytes: field('used_memory'),
      load: { before: loadBefore, after: (await import('node:os')).loadavg() },
    };
  } finally {
    await cleanup();
  }
}
