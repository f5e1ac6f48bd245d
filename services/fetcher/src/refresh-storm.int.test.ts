import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenCipher, parseEncryptionKey } from '@fitlamp/crypto';
import { createDb, type Database } from '@fitlamp/db';
import { createFitbitProvider } from '@fitlamp/fitbit';
import { createFitbitSimulator, type FitbitSimulator } from '@fitlamp/simulators';
import { connectSimulatedParticipant, createTestDatabase, type TestDatabase } from '@fitlamp/testing';
import { sql, type Kysely } from 'kysely';
import { REFRESH_MARGIN_MS, getAccessToken, type TokenDeps } from './tokens.ts';

// A refresh storm: legacy Fitbit refresh tokens are single use, and the simulator's access tokens
// live 6 minutes, so a minute after each refresh the token is inside the 5-minute refresh margin. Eight
// fetchers (each with its own pool and HTTP client, as eight replicas would have) race for every
// participant's token at once, round after round. Exactly one refresh per participant and round
// may reach Fitbit; a second use of a spent refresh token would be refused by Fitbit and cost the
// participant their connection (counted by the simulator as a reuse).

const CLIENT_ID = 'STORMTEST';
const CLIENT_SECRET = 'storm-test-secret';
const REDIRECT = 'http://127.0.0.1:9/oauth/fitbit/callback';
const FETCHERS = 8;
const ROUNDS = 12;
const TOKEN_TTL_S = 360;
const participants = ['new-york', 'sydney', 'kolkata', 'traveler'].map((preset, i) => ({ id: `U00000009${i}`, user: `STORM${i}`, preset }));

describe('a refresh storm: eight fetchers racing for short-lived Fitbit tokens', () => {
  let t: TestDatabase;
  let sim: FitbitSimulator;
  const pools: Kysely<Database>[] = [];

  beforeAll(async () => {
    t = await createTestDatabase();
    sim = createFitbitSimulator({
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      redirectUris: [REDIRECT],
      appName: 'storm test',
      seed: 'storm',
      users: participants.map((p) => ({ id: p.user, preset: p.preset })),
      accessTokenTtlSeconds: TOKEN_TTL_S,
    });
  });
  afterAll(async () => {
    for (const pool of pools) await pool.destroy();
    await sim.app.close();
    await t.drop();
  });

  it('spends each single-use refresh token once, and every fetcher ends up with the live token', { timeout: 120_000 }, async () => {
    const url = (await sim.app.listen({ port: 0, host: '127.0.0.1' })).replace(/\/$/, '');
    const cipher = createTokenCipher(parseEncryptionKey(`t1:${randomBytes(32).toString('base64')}`));
    const providerConfig = { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, apiUrl: url, authorizeUrl: `${url}/oauth2/authorize` };
    const consent = createFitbitProvider(providerConfig);
    for (const p of participants) {
      const { grant } = await connectSimulatedParticipant(t.db, { sim, provider: consent, cipher, redirectUri: REDIRECT, participantId: p.id, userId: p.user });
      expect(grant.accessTokenExpiresAt - Date.now()).toBeLessThanOrEqual(TOKEN_TTL_S * 1000);
    }
    const fetchers: TokenDeps[] = Array.from({ length: FETCHERS }, () => {
      const db = createDb(t.url, { max: participants.length + 1 });
      pools.push(db);
      return { db, cipher, provider: createFitbitProvider(providerConfig) };
    });
    const before = { ...sim.counters() };

    for (let round = 0; round < ROUNDS; round++) {
      // A minute passes for the fetchers: every token now has less than the refresh margin left.
      // (The provider stamps expiries on the real clock, so the stored expiry moves, not the clock.)
      await t.db
        .updateTable('provider_connections')
        .set({ access_token_expires_at: sql`access_token_expires_at - ${TOKEN_TTL_S * 1000 - REFRESH_MARGIN_MS + 1_000} * interval '1 millisecond'` })
        .execute();
      const answers = await Promise.all(
        fetchers.flatMap((deps) =>
          participants.map(async (p) => {
            // Each fetcher read the connection before racing (a stale view is the point).
            const row = await deps.db.selectFrom('provider_connections').selectAll().where('participant_id', '=', p.id).executeTakeFirstOrThrow();
            return { participantId: p.id, ...(await getAccessToken(deps, row)) };
          }),
        ),
      );
      for (const p of participants) {
        const mine = answers.filter((a) => a.participantId === p.id);
        // One generation per round, and every fetcher holds its token: the one Fitbit accepts now.
        expect(new Set(mine.map((a) => a.version)), `${p.id} round ${round}`).toEqual(new Set([round + 2]));
        expect(new Set(mine.map((a) => a.accessToken)).size).toBe(1);
        const live = sim.state.accessTokens.get(mine[0]!.accessToken)!;
        expect(live.revoked || live.expiresAt <= sim.clock.now()).toBe(false);
      }
    }

    const after = sim.counters();
    // The storm really happened: one refresh per participant per round reached Fitbit, no more.
    expect(after.refreshTokensIssued - before.refreshTokensIssued).toBe(ROUNDS * participants.length);
    expect(after.refreshTokenReuse).toBe(0);
    const statuses = await t.db.selectFrom('provider_connections').select('status').execute();
    expect(statuses.map((s) => s.status)).toEqual(participants.map(() => 'connected'));
  });
});
