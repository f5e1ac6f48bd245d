import { randomBytes } from 'node:crypto';
import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { createPkcePair, createTokenCipher, parseEncryptionKey, type TokenCipher } from '@fitlamp/crypto';
import { claimBatch, connectionTokenPlace, findDayTotals, markBatchDelivered, findDueParticipants, recordTimeZone, saveConnectedTokens, scheduleStreams, upsertParticipant } from '@fitlamp/db';
import { createFitbitProvider } from '@fitlamp/fitbit';
import { STREAMS, addDays, daysBetween, localDayAt, type Provider } from '@fitlamp/provider';
import { createQueues, queueCatalog, type QueueSet, type SyncPayload } from '@fitlamp/queues';
import { createLogger } from '@fitlamp/runtime';
import { createFitbitSimulator, findUser, moveUser, syncUser, viewDay, viewDevices, type FitbitSimulator } from '@fitlamp/simulators';
import { createTestDatabase, outboxEvents, testRedisUrl, uniquePrefix, waitFor, type TestDatabase } from '@fitlamp/testing';
import { createFetcherMetrics, createSyncProcessor, type SyncDeps, type SyncSummary } from './sync.worker.ts';
import { getAccessToken } from './tokens.ts';

const CLIENT_ID = 'FETCHTEST';
const CLIENT_SECRET = 'fetcher-test-secret';
const REDIRECT = 'http://127.0.0.1:9/oauth/fitbit/callback';
const NOW = '2026-11-20T17:00:00Z';
const P = 'U0000000042';

interface Harness {
  t: TestDatabase;
  sim: FitbitSimulator;
  provider: Provider;
  cipher: TokenCipher;
  queues: QueueSet;
  redis: Redis;
  deps: SyncDeps;
  userId: string;
  run(participantId?: string): Promise<SyncSummary>;
  close(): Promise<void>;
}

/** A connected participant: consent through the simulator, tokens stored encrypted, zone recorded. */
async function connect(h: Pick<Harness, 't' | 'sim' | 'provider' | 'cipher'>, participantId: string, userId: string) {
  h.sim.state.autoConsent = { decision: 'allow', userId, scopes: undefined };
  const { verifier, challenge } = createPkcePair();
  const url = h.provider.authorizationUrl({ redirectUri: REDIRECT, state: 's', codeChallenge: challenge, scopes: h.provider.scopesFor(STREAMS) });
  const res = await fetch(url, { redirect: 'manual' });
  const code = new URL(res.headers.get('location')!).searchParams.get('code')!;
  const grant = await h.provider.exchangeCode({ code, codeVerifier: verifier, redirectUri: REDIRECT });
  await upsertParticipant(h.t.db, participantId);
  await saveConnectedTokens(h.t.db, {
    participantId,
    provider: 'fitbit',
    providerUserId: grant.providerUserId!,
    accessTokenEnc: h.cipher.encrypt(grant.accessToken, connectionTokenPlace(participantId, 'access_token_enc')),
    refreshTokenEnc: h.cipher.encrypt(grant.refreshToken!, connectionTokenPlace(participantId, 'refresh_token_enc')),
    keyId: h.cipher.activeKeyId,
    accessTokenExpiresAt: new Date(grant.accessTokenExpiresAt),
    refreshTokenExpiresAt: null,
    scopes: grant.scopes,
  });
  const user = findUser(h.sim.world, userId)!;
  await recordTimeZone(h.t.db, participantId, user.zoneHistory[0]!.zone, 'fitbit', new Date(0));
  await scheduleStreams(h.t.db, participantId, STREAMS);
  return grant;
}

async function harness(options: { preset?: string; rateLimitPerHour?: number; backfillDays?: number; eventRetentionDays?: number; pollMaxIntervalMs?: number } = {}): Promise<Harness> {
  const t = await createTestDatabase();
  const sim = createFitbitSimulator({
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    redirectUris: [REDIRECT],
    appName: 'fetcher test',
    seed: 'fetcher-int',
    startAt: NOW,
    users: [{ preset: options.preset ?? 'new-york' }],
    ...(options.rateLimitPerHour ? { rateLimitPerHour: options.rateLimitPerHour } : {}),
  });
  const url = (await sim.app.listen({ port: 0, host: '127.0.0.1' })).replace(/\/$/, '');
  const provider = createFitbitProvider({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, apiUrl: url, authorizeUrl: `${url}/oauth2/authorize` });
  const cipher = createTokenCipher(parseEncryptionKey(`t1:${randomBytes(32).toString('base64')}`));
  const redis = new Redis(testRedisUrl, { maxRetriesPerRequest: 2 });
  const queues = createQueues(redis, uniquePrefix('fetch'));
  const userId = sim.world.users[0]!.id;
  await connect({ t, sim, provider, cipher }, P, userId);
  const deps: SyncDeps = {
    db: t.db,
    cipher,
    providers: { fitbit: provider },
    queues,
    logger: createLogger({ name: 'fetcher-test', level: 'silent' }),
    streams: STREAMS,
    // Today and the 6 complete days before it: a 7-day window.
    backfillDays: options.backfillDays ?? 6,
    refetchDays: 3,
    eventRetentionDays: options.eventRetentionDays ?? 7,
    syncIntervalMs: 900_000,
    ...(options.pollMaxIntervalMs ? { pollMaxIntervalMs: options.pollMaxIntervalMs } : {}),
    budgetReserve: 5,
    profileCheckMs: 3_600_000,
    metrics: createFetcherMetrics(new Registry()),
    now: () => sim.clock.now(),
  };
  const processor = createSyncProcessor(deps);
  return {
    t,
    sim,
    provider,
    cipher,
    queues,
    redis,
    deps,
    userId,
    run: (participantId = P) => processor({ id: `sync-${participantId}`, data: { participantId, reason: 'manual' } } as Job<SyncPayload>),
    async close() {
      await queues.close();
      redis.disconnect();
      await sim.app.close();
      await t.drop();
    },
  };
}

const ledger = (h: Harness) =>
  h.t.db.selectFrom('day_ledger').selectAll().where('participant_id', '=', P).orderBy('stream').orderBy('day').execute();

describe('fetcher sync against the Fitbit simulator', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('backfills every stream, stores records matching the simulated truth, and gives every day a status', async () => {
    h = await harness();
    const summary = await h.run();
    expect(summary.outcome).toBe('synced');
    const user = findUser(h.sim.world, h.userId)!;
    const zones = [{ zone: 'America/New_York', validFrom: 0 }];
    const today = localDayAt(zones, h.sim.clock.now());
    // Steps: each settled day's total equals the world's truth, in UTC minutes.
    for (let i = 1; i < 7; i++) {
      const day = addDays(today, -i);
      const truth = viewDay(h.sim.world, user, day, h.sim.clock.now());
      const expected = truth.day!.steps.reduce((a, b) => a + b, 0);
      const rows = (await outboxEvents(h.t.db, P)).filter((e) => e.stream === 'steps' && e.day === day);
      expect(rows.reduce((n, r) => n + Number(r.data.value), 0), day).toBe(expected);
      for (const r of rows) {
        expect(Number(r.timestamp)).toBeGreaterThanOrEqual(truth.start);
        expect(Number(r.timestamp)).toBeLessThan(truth.end);
      }
    }
    const rows = await ledger(h);
    const dataStreams = STREAMS.filter((s) => s !== 'device');
    for (const stream of dataStreams) {
      const days = rows.filter((r) => r.stream === stream).map((r) => r.day);
      expect(days, stream).toEqual(Array.from({ length: 7 }, (_, i) => addDays(today, i - 6)));
    }
    // Yesterday is complete (the device synced today); today is partial.
    expect(rows.find((r) => r.stream === 'steps' && r.day === addDays(today, -1))?.status).toBe('settled');
    expect(rows.find((r) => r.stream === 'steps' && r.day === today)?.status).toBe('partial');
    // The device's last sync and battery, as the simulated device reported them, for the overview.
    const [device] = viewDevices(h.sim.world, user, h.sim.clock.now());
    const connection = await h.t.db.selectFrom('provider_connections').select(['device_last_sync_at', 'device_battery_level']).where('participant_id', '=', P).executeTakeFirstOrThrow();
    expect(connection.device_last_sync_at?.getTime()).toBe(Math.floor(device!.lastSyncAt! / 1000) * 1000);
    expect(connection.device_battery_level).toBe(device!.batteryLevel);
    // Delivery was asked for.
    expect(await h.queues.getJob('deliver', 'U0000000042')).toBeDefined();
    // 7 days: intraday steps and heart rate one request a day, the other streams one range each,
    // plus the profile and the device list.
    const perEndpoint = h.sim.counters().requests[h.userId]!;
    expect(perEndpoint['activity-intraday']).toBe(7);
    expect(perEndpoint['heart-intraday']).toBe(7);
    for (const range of ['sleep-range', 'spo2', 'hrv', 'br', 'temp-skin', 'azm-timeseries', 'heart-timeseries', 'activities-list']) {
      expect(perEndpoint[range], range).toBe(1);
    }
    expect(summary.requests).toBe(24);
  });

  it('spends no data requests while the device has not synced again, and only recent days after it does', async () => {
    h = await harness({ preset: 'kolkata' });
    // Kolkata syncs only when told to: sync now, backfill, then nothing changes.
    await fetch(`${h.sim.app.listeningOrigin}/_control/sync`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ userId: h.userId }),
    });
    // Sleep is processed a minute after a sync (reference §7.3): fetch once it is ready.
    h.sim.clock.advance(2 * 60_000);
    const first = await h.run();
    expect(first.inserted).toBeGreaterThan(0);
    h.sim.clock.advance(20 * 60_000);
    const idle = await h.run();
    // Only the device list: no day is due until the device syncs again.
    expect(idle.requests).toBe(1);
    expect(idle.inserted).toBe(0);

    h.sim.clock.advance(60 * 60_000);
    await fetch(`${h.sim.app.listeningOrigin}/_control/sync`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ userId: h.userId }),
    });
    h.sim.clock.advance(2 * 60_000);
    const before = await ledger(h);
    const after = await h.run();
    expect(after.requests).toBeGreaterThan(1);
    const rows = await ledger(h);
    const refetched = rows.filter((r) => {
      const was = before.find((b) => b.stream === r.stream && b.day === r.day);
      return was && r.fetch_count > was.fetch_count;
    });
    const zones = [{ zone: 'Asia/Kolkata', validFrom: 0 }];
    const refetchFrom = addDays(localDayAt(zones, h.sim.clock.now()), -2);
    expect(refetched.length).toBeGreaterThan(0);
    expect(refetched.every((r) => r.day >= refetchFrom), 'only days in the re-fetch window').toBe(true);
  });

  it('a device sync that revises delivered minutes queues corrections: the step sums sent equal the provider\'s, minute by minute and per UTC hour', async () => {
    const k = (h = await harness({ preset: 'kolkata' }));
    const sync = () =>
      fetch(`${k.sim.app.listeningOrigin}/_control/sync`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ userId: k.userId }) });
    await sync();
    k.sim.clock.advance(2 * 60_000);
    await k.run();
    // Everything reaches mindLAMP (as the lamp-writer would mark it).
    const deliverAll = async () => {
      for (let claimed = await claimBatch(k.t.db, P, 1_000, 5_000_000); claimed; claimed = await claimBatch(k.t.db, P, 1_000, 5_000_000)) {
        await markBatchDelivered(k.t.db, claimed.batch);
      }
    };
    await deliverAll();
    // What mindLAMP's sums make of the steps sent (every event, corrections included), against the provider's now.
    const compare = async (withCorrections: boolean) => {
      const user = findUser(k.sim.world, k.userId)!;
      const now = k.sim.clock.now();
      const zones = [{ zone: 'Asia/Kolkata', validFrom: 0 }];
      const truth = new Map<number, number>();
      // The last 6 days (the clock may cross midnight between syncs: the window moves with it).
      const days = daysBetween(addDays(localDayAt(zones, now), -5), localDayAt(zones, now)).map((day) => viewDay(k.sim.world, user, day, now));
      for (const view of days) {
        for (let m = 0; view.day && m < view.visibleMinutes; m++) if ((view.day.steps[m] ?? 0) > 0) truth.set(view.start + m * 60_000, view.day.steps[m]!);
      }
      const sent = new Map<number, number>();
      for (const e of await outboxEvents(k.t.db, P)) {
        if (e.timestamp < days[0]!.start || e.timestamp >= days.at(-1)!.end) continue;
        if (e.stream !== 'steps' || (!withCorrections && e.data.correction === true)) continue;
        sent.set(e.timestamp, (sent.get(e.timestamp) ?? 0) + (e.data.value as number));
      }
      let minutes = 0;
      const hours = new Map<number, number>();
      for (const t of new Set([...truth.keys(), ...sent.keys()])) {
        const diff = (truth.get(t) ?? 0) - (sent.get(t) ?? 0);
        if (diff !== 0) minutes++;
        hours.set(Math.floor(t / 3_600_000), (hours.get(Math.floor(t / 3_600_000)) ?? 0) + diff);
      }
      return { minutes, hours: [...hours.values()].filter((d) => d !== 0).length, steps: [...hours.values()].reduce((a, b) => a + b, 0) };
    };
    expect(await compare(true)).toEqual({ minutes: 0, hours: 0, steps: 0 });

    // The watch syncs again an hour later: the sync recomputes the recent days it still revises.
    k.sim.clock.advance(60 * 60_000);
    await sync();
    k.sim.clock.advance(2 * 60_000);
    await k.run();
    const without = await compare(false);
    console.log(`without corrections: ${without.minutes} minutes and ${without.hours} UTC hours differ, ${without.steps} steps missing`);
    expect(without.minutes).toBeGreaterThan(0);
    expect(without.hours).toBeGreaterThan(0);
    expect(await compare(true)).toEqual({ minutes: 0, hours: 0, steps: 0 });
    await deliverAll();
    // A third sync revises again: only the new differences are queued, and the sums still match.
    k.sim.clock.advance(60 * 60_000);
    await sync();
    k.sim.clock.advance(2 * 60_000);
    await k.run();
    await deliverAll();
    expect(await compare(true)).toEqual({ minutes: 0, hours: 0, steps: 0 });
    const corrections = (await outboxEvents(k.t.db, P)).filter((e) => e.data.correction === true);
    expect(corrections.length).toBeGreaterThan(0);
    expect(new Set(corrections.map((e) => e.stream))).toEqual(new Set(['steps']));
    expect(corrections.some((e) => e.data.revision === 2)).toBe(true);
    // No correction twice: one per minute and revision.
    expect(new Set(corrections.map((e) => `${e.timestamp}|${e.data.revision as number}`)).size).toBe(corrections.length);
    const steps = (await ledger(k)).filter((r) => r.stream === 'steps');
    expect(steps.reduce((n, r) => n + r.correction_delta, 0)).toBe(corrections.reduce((n, e) => n + (e.data.value as number), 0));
  });

  it('refreshes an expired token exactly once with eight fetchers racing', async () => {
    h = await harness();
    await h.t.db.updateTable('provider_connections').set({ access_token_expires_at: new Date(0) }).execute();
    const refreshesBefore = h.sim.counters().refreshTokensIssued;
    const stale = await h.t.db.selectFrom('provider_connections').selectAll().executeTakeFirstOrThrow();
    // Eight fetchers, each holding the same stale row, each deciding it must refresh.
    const tokens = await Promise.all(
      Array.from({ length: 8 }, () => getAccessToken({ db: h!.t.db, cipher: h!.cipher, provider: h!.provider }, stale)),
    );
    expect(new Set(tokens.map((t) => t.accessToken)).size).toBe(1);
    expect(tokens.every((t) => t.version === 2)).toBe(true);
    // The refreshed token works.
    expect((await h.run()).outcome).toBe('synced');
    const counters = h.sim.counters();
    expect(counters.refreshTokensIssued - refreshesBefore).toBe(1);
    expect(counters.refreshTokenReuse).toBe(0);
    expect(counters.refreshReplays).toBe(0);
    const row = await h.t.db.selectFrom('provider_connections').select(['token_version', 'status']).executeTakeFirstOrThrow();
    expect(row).toEqual({ token_version: 2, status: 'connected' });
  });

  it('on 401 refreshes once and retries; a dead refresh token marks the participant reconnect_needed', async () => {
    h = await harness();
    await h.t.db.updateTable('provider_connections').set({ access_token_enc: h.cipher.encrypt('not-a-valid-token', connectionTokenPlace(P, 'access_token_enc')) }).execute();
    expect((await h.run()).outcome).toBe('synced');
    expect((await h.t.db.selectFrom('provider_connections').select('token_version').executeTakeFirstOrThrow()).token_version).toBe(2);

    await h.t.db
      .updateTable('provider_connections')
      .set({ access_token_enc: h.cipher.encrypt('not-a-valid-token', connectionTokenPlace(P, 'access_token_enc')), refresh_token_enc: h.cipher.encrypt('revoked-refresh-token', connectionTokenPlace(P, 'refresh_token_enc')) })
      .execute();
    const lost = await h.run();
    expect(lost.outcome).toBe('connection_lost');
    const row = await h.t.db.selectFrom('provider_connections').select(['status', 'status_reason']).executeTakeFirstOrThrow();
    expect(row.status).toBe('reconnect_needed');
    expect(row.status_reason).toMatch(/reconnect/);
    // Not connected any more: later jobs do nothing.
    expect((await h.run()).outcome).toBe('skipped');
  });

  it('marks a participant whose API answers 410 Gone as needs_reconsent and keeps what was stored', async () => {
    h = await harness();
    await h.run();
    const stored = (await outboxEvents(h.t.db)).length;
    expect(stored).toBeGreaterThan(0);
    h.sim.setGone(true);
    h.sim.clock.advance(3_600_000);
    const summary = await h.run();
    expect(summary.outcome).toBe('connection_lost');
    const row = await h.t.db.selectFrom('provider_connections').select(['status', 'status_reason']).executeTakeFirstOrThrow();
    expect(row.status).toBe('needs_reconsent');
    expect(row.status_reason).toMatch(/410/);
    expect((await outboxEvents(h.t.db)).length).toBe(stored);
  });

  it('after a sync, compacts delivered events of days older than the retention window and keeps their totals', async () => {
    h = await harness({ backfillDays: 9, eventRetentionDays: 4 });
    await h.run();
    const zones = [{ zone: 'America/New_York', validFrom: 0 }];
    const today = localDayAt(zones, h.sim.clock.now());
    const cutoff = addDays(today, -4);
    const before = await outboxEvents(h.t.db, P);
    expect(before.some((e) => e.day < cutoff)).toBe(true);
    // Undelivered events are never compacted, however old.
    await h.run();
    expect((await outboxEvents(h.t.db, P)).length).toBe(before.length);
    // The lamp-writer delivered everything; the next sync compacts what is older than the window.
    await h.t.db.updateTable('event_chunks').set({ status: 'delivered' }).execute();
    h.sim.clock.advance(30 * 60_000);
    await h.run();
    const after = await outboxEvents(h.t.db, P);
    expect(after.filter((e) => e.day < cutoff)).toEqual([]);
    expect(after.some((e) => e.day >= cutoff)).toBe(true);
    const oldDay = addDays(today, -7);
    const totals = await findDayTotals(h.t.db, { participantIds: [P], from: oldDay, to: oldDay });
    const expectedSteps = before.filter((e) => e.day === oldDay && e.stream === 'steps').reduce((n, e) => n + Number(e.data.value), 0);
    const wear = before.filter((e) => e.day === oldDay && e.stream === 'heart_rate').length;
    expect(totals).toEqual([{ participantId: P, day: oldDay, wearMinutes: wear, steps: expectedSteps, sleepMinutes: expect.any(Number) }]);
    expect(expectedSteps).toBeGreaterThan(0);
    const ledgerRow = (await ledger(h)).find((l) => l.stream === 'steps' && l.day === oldDay)!;
    expect(ledgerRow).toMatchObject({ status: 'settled', day_total: expectedSteps });
    expect(ledgerRow.events_compacted_at).not.toBeNull();
  });

  it('falls back to daily resolution when intraday is refused, and remembers it', async () => {
    h = await harness();
    h.sim.setIntradayAccess(false);
    const summary = await h.run();
    expect(summary.outcome).toBe('synced');
    const row = await h.t.db.selectFrom('provider_connections').select('intraday_access').executeTakeFirstOrThrow();
    expect(row.intraday_access).toBe(false);
    const steps = (await outboxEvents(h.t.db)).filter((e) => e.stream === 'steps');
    expect(steps.length).toBeGreaterThan(0);
    // Daily totals span the day.
    expect(steps.every((s) => Number(s.duration) >= 23 * 3_600_000)).toBe(true);
    // One refused intraday call, then daily series only.
    const perEndpoint = h.sim.counters().requests[h.userId] ?? {};
    expect(perEndpoint['activity-intraday'] ?? 0).toBe(1);
    expect(perEndpoint['heart-intraday'] ?? 0).toBe(0);
    expect(perEndpoint['activity-timeseries']).toBeGreaterThan(0);
  });

  it('losing intraday access later never adds daily totals on top of days that hold minutes', async () => {
    h = await harness();
    await h.run();
    const minuteDays = new Set(
      (await outboxEvents(h.t.db)).filter((e) => e.stream === 'steps').map((r) => r.day),
    );
    expect(minuteDays.size).toBeGreaterThan(0);
    h.sim.setIntradayAccess(false);
    // The watch syncs again: recent days are due, and intraday is now refused.
    h.sim.clock.advance(30 * 60_000);
    expect((await h.run()).outcome).toBe('synced');
    const dailyTotals = (await outboxEvents(h.t.db)).filter((e) => e.stream === 'steps' && e.key.endsWith('|day'));
    expect(dailyTotals.filter((r) => minuteDays.has(r.day))).toEqual([]);
  });

  it('with the hourly budget spent, fetches today first and delays the job until the reset instead of failing it', async () => {
    h = await harness({ rateLimitPerHour: 12, backfillDays: 13 });
    const prefix = uniquePrefix('budget');
    const connection = new Redis(testRedisUrl, { maxRetriesPerRequest: null });
    const queue = new Queue<SyncPayload>(queueCatalog.sync.name, { connection: h.redis, prefix });
    const processor = createSyncProcessor(h.deps);
    const worker = new Worker<SyncPayload, SyncSummary>(queueCatalog.sync.name, processor, { connection, prefix });
    try {
      await queue.add(queueCatalog.sync.jobName, { participantId: P, reason: 'connected' }, { jobId: `sync-${P}` });
      let job = await queue.getJob(`sync-${P}`);
      for (let i = 0; i < 100 && !(await job?.isDelayed()); i++) {
        await new Promise((r) => setTimeout(r, 50));
        job = await queue.getJob(`sync-${P}`);
      }
      expect(await job!.isDelayed()).toBe(true);
      expect(await job!.isFailed()).toBe(false);
      // Delayed until the simulator's top of the hour (BullMQ keeps the run time in the score).
      const untilTopOfHour = Math.floor(h.sim.clock.now() / 3_600_000) * 3_600_000 + 3_600_000 - h.sim.clock.now();
      const score = Number(await h.redis.zscore(`${prefix}:${queueCatalog.sync.name}:delayed`, `sync-${P}`));
      const delayedFor = Math.floor(score / 0x1000) - Date.now();
      expect(delayedFor).toBeGreaterThan(untilTopOfHour - 10_000);
      expect(delayedFor).toBeLessThan(untilTopOfHour + 31_000);
      const rows = await ledger(h);
      const zones = [{ zone: 'America/New_York', validFrom: 0 }];
      const today = localDayAt(zones, h.sim.clock.now());
      const fetchedToday = rows.filter((r) => r.day === today && r.fetch_count > 0).map((r) => r.stream);
      expect(fetchedToday).toEqual(expect.arrayContaining(['steps', 'heart_rate']));
      const waiting = rows.filter((r) => r.status === 'not_synced' && /rate limited/.test(r.reason ?? ''));
      expect(waiting.length).toBeGreaterThan(0);
      expect(waiting.every((r) => r.day < today)).toBe(true);
      const conn = await h.t.db.selectFrom('provider_connections').select(['rate_limit_remaining', 'rate_limit_reset_at']).executeTakeFirstOrThrow();
      expect(conn.rate_limit_remaining).toBeLessThanOrEqual(5);
      expect(h.sim.counters().rateLimited).toBe(0);
    } finally {
      await worker.close();
      await queue.close();
      connection.disconnect();
    }
  });

  it('after a provider outage, fetches every failed day at the next poll: no backoff holds the participant', { timeout: 180_000 }, async () => {
    h = await harness();
    const prefix = uniquePrefix('outage');
    const connection = new Redis(testRedisUrl, { maxRetriesPerRequest: null });
    const queue = new Queue<SyncPayload>(queueCatalog.sync.name, { connection: h.redis, prefix });
    const worker = new Worker<SyncPayload, SyncSummary>(queueCatalog.sync.name, createSyncProcessor(h.deps), { connection, prefix });
    const failed: Array<{ attemptsMade: number; error: string }> = [];
    worker.on('failed', (job, error) => void failed.push({ attemptsMade: job!.attemptsMade, error: error.message }));
    try {
      // The outage: the device list and heart rate answer 503. A job with the catalog's options
      // (5 attempts, exponential backoff from 30 s) fails once and frees the participant's job id.
      h.sim.addFault({ path: '/1/user/-/devices.json', kind: 'error', status: 503, count: 1 });
      await queue.add(queueCatalog.sync.jobName, { participantId: P, reason: 'scheduled' }, { ...queueCatalog.sync.options, jobId: `sync-${P}` });
      await waitFor('the sync job to fail', () => failed.length > 0, 20_000);
      expect(failed).toEqual([{ attemptsMade: 1, error: expect.stringMatching(/503|unavailable/i) }]);
      expect(await queue.getJob(`sync-${P}`)).toBeUndefined();
      // Due again one poll interval from the failure, not after the backoff's 30 + 60 + 120 s + ….
      const cursors = await h.t.db.selectFrom('sync_cursors').select(['next_due_at', 'last_error']).where('participant_id', '=', P).execute();
      const interval = h.deps.syncIntervalMs;
      for (const c of cursors) {
        // 80-90% of an interval: the tick and the sync itself still fit inside one interval.
        expect(c.next_due_at.getTime() - h.sim.clock.now()).toBeGreaterThanOrEqual(interval * 0.8 - 1_000);
        expect(c.next_due_at.getTime() - h.sim.clock.now()).toBeLessThanOrEqual(interval * 0.9);
        expect(c.last_error).toMatch(/503|unavailable/i);
      }

      // Still out for heart rate at the next sync: those days fail, the rest settle, the job completes.
      h.sim.addFault({ path: '/1/user/-/activities/heart', kind: 'error', status: 503, count: 1_000 });
      const partial = await h.run();
      expect(partial.outcome).toBe('partial_failure');
      const failedDays = (await ledger(h)).filter((r) => r.status === 'failed').map((r) => `${r.stream} ${r.day}`);
      expect(failedDays.length).toBeGreaterThan(0);
      const due = await h.t.db.selectFrom('sync_cursors').select('next_due_at').where('participant_id', '=', P).execute();
      for (const c of due) expect(c.next_due_at.getTime() - h.sim.clock.now()).toBeLessThanOrEqual(interval * 0.9);

      // The outage ends. One poll interval later the participant is due, and that one sync fetches
      // every day that failed.
      h.sim.clearFaults();
      h.sim.clock.advance(interval);
      expect(await findDueParticipants(h.t.db, new Date(h.sim.clock.now()))).toContain(P);
      expect((await h.run()).outcome).toBe('synced');
      const after = await ledger(h);
      expect(after.filter((r) => r.status === 'failed')).toEqual([]);
      for (const day of failedDays) {
        const [stream, date] = day.split(' ');
        expect(after.find((r) => r.stream === stream && r.day === date)?.status, day).toMatch(/^(settled|partial|empty)$/);
      }
    } finally {
      await worker.close();
      await queue.close();
      connection.disconnect();
    }
  });

  it('learns the device sync rhythm and schedules the next poll just after the next expected sync', async () => {
    // Sydney's watch syncs every 4 h. Polls follow the scheduler: each runs when the participant is due.
    h = await harness({ preset: 'sydney', pollMaxIntervalMs: 6 * 3_600_000, backfillDays: 1 });
    const HOUR = 3_600_000;
    const cursor = async () =>
      h!.t.db.selectFrom('sync_cursors').select('next_due_at').where('participant_id', '=', P).where('stream', '=', 'steps').executeTakeFirstOrThrow();
    const connection = async () =>
      h!.t.db.selectFrom('provider_connections').select(['device_last_sync_at', 'device_sync_times']).where('participant_id', '=', P).executeTakeFirstOrThrow();
    const poll = async () => {
      const due = (await cursor()).next_due_at.getTime();
      if (due > h!.sim.clock.now()) {
        // Just before the due time the scheduler leaves the participant alone; at it, picks it up.
        h!.sim.clock.set(due - 1_000);
        expect(await findDueParticipants(h!.t.db, new Date(h!.sim.clock.now()))).not.toContain(P);
        h!.sim.clock.set(due);
        expect(await findDueParticipants(h!.t.db, new Date(h!.sim.clock.now()))).toContain(P);
      }
      expect((await h!.run()).outcome).toBe('synced');
      const at = h!.sim.clock.now();
      return { at, due: (await cursor()).next_due_at.getTime(), lastSync: (await connection()).device_last_sync_at!.getTime() };
    };

    // One sync seen: no rhythm yet, the usual 15 minutes (with jitter).
    const first = await poll();
    expect(first.due - first.at).toBeLessThanOrEqual(990_000);
    expect((await connection()).device_sync_times.map((d) => new Date(d).getTime())).toEqual([first.lastSync]);
    // Two earlier syncs on the watch's grid, as earlier polls would have seen them.
    const seeded = [first.lastSync - 8 * HOUR, first.lastSync - 4 * HOUR, first.lastSync].map((t) => new Date(t));
    await h.t.db.updateTable('provider_connections').set({ device_sync_times: seeded }).where('participant_id', '=', P).execute();

    let previous = await poll();
    for (let i = 0; i < 3; i++) {
      // Due one minute after the next expected sync (4 h after the last), plus at most 10 % of
      // the interval of jitter; never before it.
      const expected = previous.lastSync + 4 * HOUR + 60_000;
      expect(previous.due).toBeGreaterThanOrEqual(expected);
      expect(previous.due).toBeLessThanOrEqual(expected + 90_000);
      const next = await poll();
      // The poll at the due time found the sync it waited for.
      expect(next.at).toBe(previous.due);
      expect(next.lastSync).toBe(previous.lastSync + 4 * HOUR);
      previous = next;
    }
    const stored = (await connection()).device_sync_times.map((d) => new Date(d).getTime());
    expect(stored).toEqual([...seeded.map((d) => d.getTime()), ...[1, 2, 3].map((k) => first.lastSync + k * 4 * HOUR)]);
  });

  it('reads the profile only after a new device sync, at most hourly', async () => {
    // Kolkata's watch syncs only when the phone app opens.
    h = await harness({ preset: 'kolkata', backfillDays: 1 });
    const HOUR = 3_600_000;
    const user = findUser(h.sim.world, h.userId)!;
    const counts = () => ({ ...h!.sim.counters().requests[h!.userId] });
    syncUser(h.sim.world, user, h.sim.clock.now());
    h.sim.clock.advance(2 * 60_000);
    expect((await h.run()).outcome).toBe('synced');
    expect(counts().profile).toBe(1);

    // Three hours without a sync: every poll asks for the device list alone, never the profile.
    for (let i = 0; i < 3; i++) {
      h.sim.clock.advance(HOUR);
      const idle = await h.run();
      expect(idle.requests).toBe(1);
    }
    expect(counts().profile).toBe(1);
    expect(counts().devices).toBe(4);

    // The participant flies to Berlin and the watch syncs there: the poll after it reads the
    // profile and learns the new zone.
    const syncedAt = h.sim.clock.now() - 30 * 60_000;
    moveUser(h.sim.world, user, 'Europe/Berlin', syncedAt - 60 * 60_000);
    syncUser(h.sim.world, user, syncedAt);
    expect((await h.run()).outcome).toBe('synced');
    expect(counts().profile).toBe(2);
    expect(counts().devices).toBe(5);
    const zones = await h.t.db.selectFrom('participant_time_zones').select('zone').where('participant_id', '=', P).execute();
    expect(zones.map((z) => z.zone)).toContain('Europe/Berlin');

    // Within the hour after a check, a new sync is fetched without another profile read.
    h.sim.clock.advance(20 * 60_000);
    syncUser(h.sim.world, user, h.sim.clock.now() - 60_000);
    expect((await h.run()).outcome).toBe('synced');
    expect(counts().profile).toBe(2);
  });
});
