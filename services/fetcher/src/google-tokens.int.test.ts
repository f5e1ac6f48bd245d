import { randomBytes } from 'node:crypto';
import { DelayedError, Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { createPkcePair, createTokenCipher, parseEncryptionKey } from '@fitlamp/crypto';
import { connectionTokenPlace, saveConnectedTokens, upsertParticipant } from '@fitlamp/db';
import { createGoogleHealthProvider } from '@fitlamp/google-health';
import { STREAMS } from '@fitlamp/provider';
import { createQueues, queueCatalog, type SyncPayload } from '@fitlamp/queues';
import { createLogger } from '@fitlamp/runtime';
import { createGoogleHealthSimulator, type GoogleHealthSimulator } from '@fitlamp/simulators';
import { createTestDatabase, testRedisUrl, uniquePrefix, type TestDatabase, storedToken } from '@fitlamp/testing';
import { pollIntervalMs } from './poll-interval.ts';
import { createFetcherMetrics, createSyncProcessor, type SyncSummary } from './sync.worker.ts';
import { ConnectionLostError, getAccessToken } from './tokens.ts';

// Google Health in the fetcher, against the Google Health simulator and real Postgres:
// a refresh without refresh_token keeps the stored one; a Testing-mode refresh token past its
// 7 days marks the participant reconnect_needed, saying why; a 429 delays the sync job.

const REDIRECT = 'http://127.0.0.1:9/oauth/google-health/callback';
const P = 'U0000000077';

describe('Google Health tokens (fetcher, Google simulator in Testing mode, Postgres)', () => {
  let t: TestDatabase | undefined;
  let sim: GoogleHealthSimulator | undefined;
  afterEach(async () => {
    await sim?.app.close();
    await t?.drop();
  });

  async function setup(options: { rateLimitPerMinute?: number; retryAfterHeader?: boolean } = {}) {
    t = await createTestDatabase();
    sim = createGoogleHealthSimulator({
      clientId: 'g.apps.googleusercontent.com',
      clientSecret: 'g-secret',
      redirectUris: [REDIRECT],
      appName: 'fitlamp test',
      startAt: '2026-11-20T17:00:00Z',
      testingMode: true,
      users: [{ id: 'NYC001', preset: 'new-york' }],
      webhooks: { deliveryIntervalMs: 0 },
      ...options,
    });
    const url = (await sim.app.listen({ port: 0, host: '127.0.0.1' })).replace(/\/$/, '');
    const provider = createGoogleHealthProvider({
      clientId: 'g.apps.googleusercontent.com',
      clientSecret: 'g-secret',
      authorizeUrl: `${url}/o/oauth2/v2/auth`,
      tokenUrl: `${url}/token`,
      revokeUrl: `${url}/revoke`,
      apiUrl: url,
    });
    const key = parseEncryptionKey(`t1:${randomBytes(32).toString('base64')}`);
    const cipher = createTokenCipher(key);
    sim.state.autoConsent = { decision: 'allow', userId: 'NYC001', scopes: undefined };
    const { verifier, challenge } = createPkcePair();
    const res = await fetch(provider.authorizationUrl({ redirectUri: REDIRECT, state: 'state-state-state', codeChallenge: challenge, scopes: provider.scopesFor(STREAMS) }), { redirect: 'manual' });
    const code = new URL(res.headers.get('location')!).searchParams.get('code')!;
    // The simulator's clock is frozen at startAt; tokens expire in its time.
    const now = () => sim!.clock.now();
    const grant = await provider.exchangeCode({ code, codeVerifier: verifier, redirectUri: REDIRECT });
    expect(grant.refreshTokenExpiresAt).toBeDefined();
    await upsertParticipant(t.db, P);
    const row = await saveConnectedTokens(t.db, {
      participantId: P,
      provider: 'google-health',
      providerUserId: sim.healthUserId('NYC001'),
      accessTokenEnc: cipher.encrypt(grant.accessToken, connectionTokenPlace(P, 'access_token_enc')),
      refreshTokenEnc: cipher.encrypt(grant.refreshToken!, connectionTokenPlace(P, 'refresh_token_enc')),
      keyId: cipher.activeKeyId,
      accessTokenExpiresAt: new Date(grant.accessTokenExpiresAt),
      refreshTokenExpiresAt: new Date(grant.refreshTokenExpiresAt!),
      scopes: grant.scopes,
    });
    return { db: t.db, provider, cipher, key, now, row, grant };
  }

  it('refreshes without a new refresh token and keeps the stored one', async () => {
    const h = await setup();
    const access = await getAccessToken({ db: h.db, cipher: h.cipher, provider: h.provider, now: h.now }, h.row, { force: true });
    expect(access.version).toBe(2);
    const row = await h.db.selectFrom('provider_connections').selectAll().executeTakeFirstOrThrow();
    expect(storedToken(h.cipher, row, 'refresh_token_enc')).toBe(h.grant.refreshToken);
    expect(storedToken(h.cipher, row, 'access_token_enc')).toBe(access.accessToken);
    expect(access.accessToken).not.toBe(h.grant.accessToken);
    expect(row.status).toBe('connected');
  });

  it('re-encrypts the kept refresh token under the active key in the same update, so key_id is true of both', async () => {
    const h = await setup();
    const t2 = parseEncryptionKey(`t2:${randomBytes(32).toString('base64')}`);
    const next = createTokenCipher(t2, [h.key]);
    const access = await getAccessToken({ db: h.db, cipher: next, provider: h.provider, now: h.now }, h.row, { force: true });
    const row = await h.db.selectFrom('provider_connections').selectAll().executeTakeFirstOrThrow();
    expect(row.key_id).toBe('t2');
    expect(next.keyIdOf(row.access_token_enc!)).toBe('t2');
    expect(next.keyIdOf(row.refresh_token_enc!)).toBe('t2');
    // Readable without the old key: the old key can go.
    const onlyNew = createTokenCipher(t2);
    expect(storedToken(onlyNew, row, 'refresh_token_enc')).toBe(h.grant.refreshToken);
    expect(storedToken(onlyNew, row, 'access_token_enc')).toBe(access.accessToken);
  });

  it('marks reconnect_needed, naming the 7-day Testing-mode limit, once the refresh token has expired', async () => {
    const h = await setup();
    // The provider stamps expiries in real time; the simulator runs at its own date: restate the
    // stored expiry in the simulator's time (7 days after consent).
    await h.db.updateTable('provider_connections').set({ refresh_token_expires_at: new Date(h.now() + 7 * 86_400_000 - 1000) }).execute();
    sim!.clock.advance(8 * 86_400_000);
    const error = await getAccessToken({ db: h.db, cipher: h.cipher, provider: h.provider, now: h.now }, h.row, { force: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectionLostError);
    const row = await h.db.selectFrom('provider_connections').select(['status', 'status_reason', 'refresh_token_enc']).executeTakeFirstOrThrow();
    expect(row.status).toBe('reconnect_needed');
    expect(row.status_reason).toMatch(/refresh token expired on 2026-11-27T.*Testing mode gets 7-day refresh tokens.*must reconnect/);
  });

  it('marks reconnect_needed when a newer generation’s refresh token is dead, even if the caller saw an older one', async () => {
    const h = await setup();
    const deps = { db: h.db, cipher: h.cipher, provider: h.provider, now: h.now };
    expect((await getAccessToken(deps, h.row, { force: true })).version).toBe(2);
    // Generation 2's access token has expired and its refresh token was revoked at Google.
    const current = await h.db.selectFrom('provider_connections').selectAll().executeTakeFirstOrThrow();
    await h.provider.revokeToken(storedToken(h.cipher, current, 'refresh_token_enc'));
    await h.db.updateTable('provider_connections').set({ access_token_expires_at: new Date(h.now() - 1000) }).execute();
    // A fetcher that read generation 1 before asks: the lock holder refreshes generation 2's token.
    const error = await getAccessToken(deps, h.row, { force: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectionLostError);
    const row = await h.db.selectFrom('provider_connections').select(['status', 'token_version']).executeTakeFirstOrThrow();
    expect(row).toEqual({ status: 'reconnect_needed', token_version: 2 });
  });

  it('polls less often while webhooks are healthy, and as usual once they fall silent', async () => {
    const h = await setup();
    expect(await pollIntervalMs(h.db, 'google-health', { baseMs: 60_000 })).toBe(60_000);
    await h.db.insertInto('provider_webhooks').values({ provider: 'google-health', last_verified_at: new Date(), notifications: 1 }).execute();
    expect(await pollIntervalMs(h.db, 'google-health', { baseMs: 60_000 })).toBe(240_000);
    expect(await pollIntervalMs(h.db, 'fitbit', { baseMs: 60_000 })).toBe(60_000);
    expect(await pollIntervalMs(h.db, 'google-health', { baseMs: 60_000, multiplier: 1 })).toBe(60_000);
    await h.db.updateTable('provider_webhooks').set({ last_verified_at: new Date(Date.now() - 2 * 3_600_000) }).execute();
    expect(await pollIntervalMs(h.db, 'google-health', { baseMs: 60_000 })).toBe(60_000);
  });

  it('delays the sync job by as long as Google’s Retry-After says, counted on the clock the fetcher runs on', async () => {
    // The simulator, and so the fetcher's clock, runs at 2026-11-20, not at the machine's date.
    const h = await setup({ rateLimitPerMinute: 3, retryAfterHeader: true });
    const prefix = uniquePrefix('google-429');
    const redis = new Redis(testRedisUrl, { maxRetriesPerRequest: 2 });
    const connection = new Redis(testRedisUrl, { maxRetriesPerRequest: null });
    const queues = createQueues(redis, prefix);
    const processor = createSyncProcessor({
      db: h.db,
      cipher: h.cipher,
      providers: { 'google-health': h.provider },
      queues,
      logger: createLogger({ name: 'fetcher-test', level: 'silent' }),
      streams: STREAMS,
      backfillDays: 6,
      refetchDays: 3,
      eventRetentionDays: 7,
      syncIntervalMs: 900_000,
      budgetReserve: 5,
      profileCheckMs: 3_600_000,
      metrics: createFetcherMetrics(new Registry()),
      now: h.now,
    });
    const queue = new Queue<SyncPayload>(queueCatalog.sync.name, { connection: redis, prefix });
    // Processed by hand, so that the processor's own answer is seen: the job is delayed, not failed.
    const worker = new Worker<SyncPayload, SyncSummary>(queueCatalog.sync.name, null, { connection, prefix });
    try {
      await queue.add(queueCatalog.sync.jobName, { participantId: P, reason: 'connected' }, { jobId: `sync-${P}` });
      const job = await worker.getNextJob('lock-token');
      await expect(processor(job!, 'lock-token')).rejects.toBeInstanceOf(DelayedError);
      expect(await queue.getJobState(`sync-${P}`)).toBe('delayed');
      expect(sim!.counters().rateLimited).toBe(1);
      // Three requests at the frozen instant, then 429 with Retry-After: 60.
      const conn = await h.db.selectFrom('provider_connections').select(['rate_limit_remaining', 'rate_limit_reset_at']).executeTakeFirstOrThrow();
      expect(conn.rate_limit_reset_at?.toISOString()).toBe(new Date(h.now() + 60_000).toISOString());
      // BullMQ keeps the run time (machine time) in the score: 60 s from now, plus at most 7 s of jitter.
      const score = Number(await redis.zscore(`${prefix}:${queueCatalog.sync.name}:delayed`, `sync-${P}`));
      const delayedFor = Math.floor(score / 0x1000) - Date.now();
      expect(delayedFor).toBeGreaterThan(50_000);
      expect(delayedFor).toBeLessThanOrEqual(67_000);
    } finally {
      await worker.close();
      await queue.close();
      await queues.close();
      redis.disconnect();
      connection.disconnect();
    }
  });
});
