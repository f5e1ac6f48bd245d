// Section 2, API efficiency in steady state. Two simulated days cannot take two real days, so the
// simulator's clock is frozen and advanced in steps; the scheduler's pass (`runTick`) and the
// fetcher's processor (`createSyncProcessor`, under a real BullMQ worker) run in this process with
// `now` = the simulator's clock, and each step waits until the sync queue is empty. Provider
// requests are counted by the simulator per user and endpoint; the minimum is computed from the
// simulator's world: per poll, the stream-days whose content changed since that participant's
// previous poll (one request each).
import { randomBytes } from 'node:crypto';
import { Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { createPkcePair, createTokenCipher, parseEncryptionKey } from '@fitlamp/crypto';
import { connectionTokenPlace, createDb, migrateToLatest, recordTimeZone, saveConnectedTokens, scheduleStreams, upsertParticipant } from '@fitlamp/db';
import { createFitbitProvider } from '@fitlamp/fitbit';
import { STREAMS, type StreamName } from '@fitlamp/provider';
import { createQueues, queueCatalog, type SyncPayload } from '@fitlamp/queues';
import { createLogger } from '@fitlamp/runtime';
import { createFitbitSimulator, findUser, syncUser, viewDay, viewNight, type WorldUser } from '@fitlamp/simulators';
import { createTestDatabase, testRedisUrl } from '@fitlamp/testing';
import { createFetcherMetrics, createSyncProcessor, type SyncSummary } from '../services/fetcher/src/sync.worker.ts';
import { runTick } from '../services/scheduler/src/tick.ts';

export interface SteadyOptions {
  participants: number;
  simDays: number;
  /** SYNC_INTERVAL_SECONDS of the fetcher (the scheduler polls each participant this often). */
  pollSeconds: number;
  /** Simulated time per step (the scheduler's tick, in simulated time). */
  stepSeconds: number;
  backfillDays: number;
  refetchDays: number;
  startAt: string;
  log: (line: string) => void;
}

export interface SteadyResult {
  participants: number;
  simDays: number;
  pollSeconds: number;
  participantDays: number;
  polls: number;
  requests: number;
  minimum: number;
  requestsPerParticipantDay: number;
  minimumPerParticipantDay: number;
  ratio: number;
  byEndpoint: Record<string, number>;
  /** Changed stream-days (the minimum) by stream. */
  minimumByStream: Record<string, number>;
  byPreset: Record<string, { participants: number; syncsPerDay: number; requests: number; minimum: number; ratio: number }>;
  rateLimited: number;
  /** Failed syncs by error (retried by BullMQ) and syncs that ended other than `synced`. */
  syncErrors: Record<string, number>;
  outcomes: Record<string, number>;
  realSeconds: number;
}

const CLIENT_ID = 'BENCHSTEADY';
const CLIENT_SECRET = 'bench-steady-secret';
const REDIRECT = 'http://127.0.0.1:9/oauth/fitbit/callback';
const DATA_STREAMS = STREAMS.filter((s) => s !== 'device');

function localDate(user: WorldUser, t: number): string {
  let zone = user.zoneHistory[0]!.zone;
  for (const span of user.zoneHistory) if (span.from <= t) zone = span.zone;
  return new Intl.DateTimeFormat('en-CA', { timeZone: zone }).format(t);
}

function addDays(day: string, n: number): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + n * 86_400_000).toISOString().slice(0, 10);
}

/**
 * What the provider would answer for one stream-day at `t`, reduced to a fingerprint: equal
 * fingerprints mean an unchanged answer, so a request for that day would be wasted.
 */
function fingerprint(world: Parameters<typeof viewDay>[0], user: WorldUser, stream: StreamName, day: string, t: number): string {
  if (stream === 'sleep' || stream === 'spo2' || stream === 'hrv' || stream === 'breathing_rate' || stream === 'skin_temperature') {
    const night = viewNight(world, user, day, t);
    if (stream === 'sleep') return JSON.stringify(night.sessions.map((s) => [s.session.id, s.state, s.session.start, s.session.end]));
    const field = ({ spo2: 'spo2', hrv: 'hrv', breathing_rate: 'breathingRate', skin_temperature: 'skinTempRelative' } as const)[stream];
    return JSON.stringify(night.summary?.[field] ?? null);
  }
  const view = viewDay(world, user, day, t);
  if (!view.day) return '';
  const visible = view.visibleMinutes;
  const d = view.day;
  switch (stream) {
    case 'steps':
      return `${visible}|${d.steps.slice(0, visible).join(',')}`;
    case 'heart_rate':
      return `${visible}|${d.generation}|${d.heartRate.slice(0, visible).join(',')}`;
    case 'active_zone_minutes':
      return `${visible}|${d.zone.slice(0, visible).join(',')}`;
    case 'resting_heart_rate':
      return view.complete ? String(d.restingHeartRate) : '';
    case 'exercise':
      return JSON.stringify(d.exercises.filter((e) => e.end <= view.start + visible * 60_000));
    default:
      return `${visible}|${d.generation}`;
  }
}

export async function runSteady(o: SteadyOptions): Promise<SteadyResult> {
  const realStart = Date.now();
  const t = await createTestDatabase({ migrated: false });
  const db = createDb(t.url, { max: 10, applicationName: 'fitlamp-bench-steady' });
  await migrateToLatest(db);
  const presets = ['new-york', 'traveler', 'sydney', 'kolkata'];
  const ids = Array.from({ length: o.participants }, (_, i) => ({
    participantId: `U${String(i + 1).padStart(10, '0')}`,
    userId: `FB${String(i + 1).padStart(4, '0')}`,
    preset: presets[i % presets.length]!,
  }));
  const sim = createFitbitSimulator({
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    redirectUris: [REDIRECT],
    appName: 'bench steady state',
    seed: 'fitlamp-bench-steady',
    startAt: o.startAt,
    users: ids.map((p) => ({ id: p.userId, preset: p.preset })),
  });
  const url = (await sim.app.listen({ port: 0, host: '127.0.0.1' })).replace(/\/$/, '');
  const provider = createFitbitProvider({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, apiUrl: url, authorizeUrl: `${url}/oauth2/authorize` });
  const cipher = createTokenCipher(parseEncryptionKey(`b1:${randomBytes(32).toString('base64')}`));
  const producer = new Redis(testRedisUrl, { maxRetriesPerRequest: null });
  const workerConnection = new Redis(testRedisUrl, { maxRetriesPerRequest: null });
  const prefix = `fitlamp-bench-steady-${randomBytes(4).toString('hex')}`;
  const queues = createQueues(producer, prefix);
  const logger = createLogger({ name: 'bench-steady', level: 'silent' });
  const now = () => sim.clock.now();
  const userOf = new Map(ids.map((p) => [p.participantId, findUser(sim.world, p.userId)!]));
  // Kolkata-preset watches sync only when the phone app opens: every 2-4 h here, seeded.
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const manualNext = new Map(ids.filter((p) => p.preset === 'kolkata').map((p) => [p.participantId, now() + rand() * 3 * 3_600_000]));

  let worker: Worker<SyncPayload, SyncSummary> | undefined;
  try {
    for (const p of ids) {
      sim.state.autoConsent = { decision: 'allow', userId: p.userId, scopes: undefined };
      const { verifier, challenge } = createPkcePair();
      const authUrl = provider.authorizationUrl({ redirectUri: REDIRECT, state: 's', codeChallenge: challenge, scopes: provider.scopesFor(STREAMS) });
      const res = await fetch(authUrl, { redirect: 'manual' });
      const code = new URL(res.headers.get('location')!).searchParams.get('code')!;
      const grant = await provider.exchangeCode({ code, codeVerifier: verifier, redirectUri: REDIRECT });
      await upsertParticipant(db, p.participantId);
      await saveConnectedTokens(db, {
        participantId: p.participantId,
        provider: 'fitbit',
        providerUserId: grant.providerUserId!,
        accessTokenEnc: cipher.encrypt(grant.accessToken, connectionTokenPlace(p.participantId, 'access_token_enc')),
        refreshTokenEnc: cipher.encrypt(grant.refreshToken!, connectionTokenPlace(p.participantId, 'refresh_token_enc')),
        keyId: cipher.activeKeyId,
        accessTokenExpiresAt: new Date(grant.accessTokenExpiresAt),
        refreshTokenExpiresAt: null,
        scopes: grant.scopes,
      });
      await recordTimeZone(db, p.participantId, userOf.get(p.participantId)!.zoneHistory[0]!.zone, 'fitbit', new Date(0));
      await scheduleStreams(db, p.participantId, STREAMS);
      if (p.preset === 'kolkata') syncUser(sim.world, userOf.get(p.participantId)!, now() - 60_000);
    }
    sim.state.autoConsent = undefined;
    // scheduleStreams made them due at the database's now(); the simulated day may be another.
    await db.updateTable('sync_cursors').set({ next_due_at: new Date(now()) }).execute();

    const polls: Array<{ participantId: string; at: number }> = [];
    const syncErrors: Record<string, number> = {};
    const outcomes: Record<string, number> = {};
    const processor = createSyncProcessor({
      db,
      cipher,
      providers: { fitbit: provider },
      queues,
      logger,
      streams: STREAMS,
      backfillDays: o.backfillDays,
      refetchDays: o.refetchDays,
      syncIntervalMs: o.pollSeconds * 1000,
      budgetReserve: 5,
      profileCheckMs: 3_600_000,
      metrics: createFetcherMetrics(new Registry()),
      now,
    });
    worker = new Worker<SyncPayload, SyncSummary>(
      queueCatalog.sync.name,
      async (job: Job<SyncPayload>, token?: string) => {
        polls.push({ participantId: job.data.participantId, at: now() });
        return processor(job, token);
      },
      { connection: workerConnection, prefix, concurrency: 8 },
    );
    worker.on('failed', (_job, error) => {
      syncErrors[error.message.slice(0, 120)] = (syncErrors[error.message.slice(0, 120)] ?? 0) + 1;
    });
    worker.on('completed', (_job, summary) => {
      if (summary.outcome !== 'synced') outcomes[summary.outcome] = (outcomes[summary.outcome] ?? 0) + 1;
    });
    const drain = async () => {
      for (;;) {
        const c = await queues.sync.getJobCounts('waiting', 'active', 'prioritized', 'delayed');
        const running = (c.waiting ?? 0) + (c.active ?? 0) + (c.prioritized ?? 0);
        // Delayed jobs (a retry's backoff, a spent budget) wait in real time; the next step
        // promotes them, and the processor decides again on the simulator's clock.
        if (running === 0) return;
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    const tick = () => runTick({ db, queues, logger, spreadMs: 0, sweepAfterMs: 86_400_000 * 365, now });

    // Backfill first (not counted), then the steady state from a clean count.
    await tick();
    await drain();
    o.log(`    backfill of ${ids.length} participants done (${polls.length} syncs); steady state for ${o.simDays} simulated days`);
    const lastPoll = new Map<string, number>();
    for (const p of polls) lastPoll.set(p.participantId, p.at);
    polls.length = 0;
    sim.state.counters.requests = {};
    const rateLimited0 = sim.state.counters.rateLimited;

    const minimumByStream: Record<string, number> = {};
    const minimumByParticipant = new Map<string, number>();
    // The fingerprints seen at each participant's previous poll, so each is computed once.
    const seen = new Map<string, { at: number; prints: Map<string, string> }>();
    const countChanges = (participantId: string, from: number, to: number) => {
      const user = userOf.get(participantId)!;
      const today = localDate(user, to);
      const previous = seen.get(participantId);
      const prints = new Map<string, string>();
      let n = 0;
      for (let i = 0; i < o.backfillDays; i++) {
        const day = addDays(today, -i);
        for (const stream of DATA_STREAMS) {
          const key = `${stream}|${day}`;
          const before = (previous?.at === from ? previous.prints.get(key) : undefined) ?? fingerprint(sim.world, user, stream, day, from);
          const after = fingerprint(sim.world, user, stream, day, to);
          prints.set(key, after);
          if (before !== after) {
            n++;
            minimumByStream[stream] = (minimumByStream[stream] ?? 0) + 1;
          }
        }
      }
      seen.set(participantId, { at: to, prints });
      minimumByParticipant.set(participantId, (minimumByParticipant.get(participantId) ?? 0) + n);
    };

    const end = now() + o.simDays * 86_400_000;
    let step = 0;
    while (now() < end) {
      sim.clock.advance(o.stepSeconds * 1000);
      for (const [participantId, at] of manualNext) {
        if (at <= now()) {
          syncUser(sim.world, userOf.get(participantId)!, at);
          manualNext.set(participantId, at + (2 + rand() * 2) * 3_600_000);
        }
      }
      await queues.sync.promoteJobs();
      const before = polls.length;
      await tick();
      await drain();
      for (const p of polls.slice(before)) {
        countChanges(p.participantId, lastPoll.get(p.participantId)!, p.at);
        lastPoll.set(p.participantId, p.at);
      }
      if (++step % 180 === 0) o.log(`    ${((step * o.stepSeconds) / 3600).toFixed(0)} simulated hours, ${polls.length} polls`);
    }

    const byEndpoint: Record<string, number> = {};
    const byUser: Record<string, number> = {};
    for (const [userId, perEndpoint] of Object.entries(sim.state.counters.requests)) {
      for (const [endpoint, n] of Object.entries(perEndpoint)) {
        byEndpoint[endpoint] = (byEndpoint[endpoint] ?? 0) + n;
        byUser[userId] = (byUser[userId] ?? 0) + n;
      }
    }
    const requests = Object.values(byEndpoint).reduce((a, b) => a + b, 0);
    const minimum = [...minimumByParticipant.values()].reduce((a, b) => a + b, 0);
    const participantDays = ids.length * o.simDays;
    const byPreset: SteadyResult['byPreset'] = {};
    for (const p of ids) {
      const e = (byPreset[p.preset] ??= { participants: 0, syncsPerDay: 0, requests: 0, minimum: 0, ratio: 0 });
      e.participants++;
      e.requests += byUser[p.userId] ?? 0;
      e.minimum += minimumByParticipant.get(p.participantId) ?? 0;
      e.syncsPerDay = ({ 'new-york': 96, traveler: 24, sydney: 6, kolkata: 8 } as Record<string, number>)[p.preset] ?? 0;
    }
    for (const e of Object.values(byPreset)) e.ratio = e.minimum ? e.requests / e.minimum : 0;
    return {
      participants: ids.length,
      simDays: o.simDays,
      pollSeconds: o.pollSeconds,
      participantDays,
      polls: polls.length,
      requests,
      minimum,
      requestsPerParticipantDay: requests / participantDays,
      minimumPerParticipantDay: minimum / participantDays,
      ratio: minimum ? requests / minimum : 0,
      byEndpoint,
      minimumByStream,
      byPreset,
      rateLimited: sim.state.counters.rateLimited - rateLimited0,
      syncErrors,
      outcomes,
      realSeconds: (Date.now() - realStart) / 1000,
    };
  } finally {
    await worker?.close();
    await queues.sync.obliterate({ force: true }).catch(() => {});
    await queues.deliver.obliterate({ force: true }).catch(() => {});
    await queues.close();
    producer.disconnect();
    workerConnection.disconnect();
    await sim.app.close();
    await db.destroy();
    await t.drop();
  }
}
