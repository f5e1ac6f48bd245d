import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import { googleWebhookEnvelope, signGoogleWebhookBody } from '@fitlamp/simulators';
import { completeConsent, startConsent, testRedisUrl, storedToken } from '@fitlamp/testing';
import { MIGRATED_REASON_PREFIX } from './reconsent.ts';
import { connectThrough, issueLink, startTestGateway, type TestGateway } from '../test/gateway.ts';

// Google Health through the gateway: consent and callback, migration from the legacy API, and
// webhooks, against the Google Health and Fitbit simulators (one shared world), Postgres, Redis.

const G = 'https://www.googleapis.com/auth/googlehealth.';
const ALL_SCOPES = [
  `${G}activity_and_fitness.readonly`,
  `${G}health_metrics_and_measurements.readonly`,
  `${G}settings.readonly`,
  `${G}sleep.readonly`,
].sort();

async function connectionOf(gw: TestGateway, participantId: string, provider: 'fitbit' | 'google-health') {
  return gw.db
    .selectFrom('provider_connections')
    .selectAll()
    .where('participant_id', '=', participantId)
    .where('provider', '=', provider)
    .executeTakeFirst();
}

describe('Google Health: connect, migration, webhooks (gateway, simulators, Postgres, Redis)', () => {
  let gw: TestGateway;
  let redis: Redis;
  beforeAll(async () => {
    gw = await startTestGateway({
      participants: ['G1', 'G2', 'G3', 'G4', 'G5', 'G6', 'G7', 'G8'],
      fitbitUsers: [
        { id: 'AAAAA1', preset: 'new-york', autoSyncMinutes: 0 },
        { id: 'BBBBB2', preset: 'sydney', autoSyncMinutes: 0 },
        { id: 'CCCCC3', preset: 'kolkata', autoSyncMinutes: 0 },
        { id: 'DDDDD4', preset: 'new-york', autoSyncMinutes: 0 },
        { id: 'EEEEE5', preset: 'sydney', autoSyncMinutes: 0 },
        { id: 'FFFFF6', preset: 'kolkata', autoSyncMinutes: 0 },
      ],
      google: true,
    });
    redis = new Redis(testRedisUrl);
  });
  afterAll(async () => {
    redis?.disconnect();
    await gw?.close();
  });

  describe('connect', () => {
    it('sends the participant to Google with offline access, forced consent, PKCE S256 and only .readonly scopes', async () => {
      const link = await issueLink(gw, 'G1', { provider: 'google-health' });
      expect(link).toMatch(new RegExp(`^${gw.base}/connect/google-health\\?t=`));
      const page = await fetch(link);
      expect(page.status).toBe(200);
      const text = await page.text();
      expect(text).toContain('Google Health');
      expect(text).toContain('<form method="post" action="/connect/google-health">');
      expect(page.headers.get('content-security-policy')).toMatch(new RegExp(`form-action 'self'[^;]* ${new URL(gw.googleUrl!).origin}`));

      const location = new URL((await startConsent(link)).authorizeUrl);
      expect(location.origin + location.pathname).toBe(gw.env.GOOGLE_AUTHORIZE_URL);
      const q = location.searchParams;
      expect(q.get('access_type')).toBe('offline');
      expect(q.get('prompt')).toBe('consent');
      expect(q.get('response_type')).toBe('code');
      expect(q.get('code_challenge_method')).toBe('S256');
      expect(q.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(q.get('redirect_uri')).toBe(`${gw.base}/oauth/google-health/callback`);
      const scopes = q.get('scope')!.split(' ').sort();
      expect(scopes).toEqual(ALL_SCOPES);
      expect(scopes.join(' ')).not.toContain('cloud-platform');
      const state = await gw.db.selectFrom('oauth_states').selectAll().where('participant_id', '=', 'G1').executeTakeFirstOrThrow();
      expect(state.provider).toBe('google-health');
      expect(JSON.stringify(state)).not.toContain(q.get('state')!);
    });

    it('connects: identity (healthUserId, legacy Fitbit id) and zone stored, tokens encrypted, cursors due, one sync job', async () => {
      const result = await connectThrough(gw, 'google-health', 'G1', { decision: 'allow', user: 'AAAAA1' });
      expect(result.status).toBe(200);
      expect(result.text).toContain('Google Health connected — you can close this window.');
      expect(result.text).not.toContain('id="missing"');
      const row = (await connectionOf(gw, 'G1', 'google-health'))!;
      expect(row).toMatchObject({ status: 'connected', provider_user_id: gw.google!.healthUserId('AAAAA1'), legacy_user_id: 'AAAAA1', key_id: 'test1' });
      expect(row.scopes.sort()).toEqual(ALL_SCOPES);
      expect(row.refresh_token_enc).toMatch(/^v2\.test1\./);
      expect(storedToken(gw.cipher, row, 'refresh_token_enc').length).toBeGreaterThan(10);
      const zones = await gw.db.selectFrom('participant_time_zones').selectAll().where('participant_id', '=', 'G1').execute();
      expect(zones.map((z) => [z.zone, z.source])).toEqual([['America/New_York', 'google-health-profile']]);
      const cursors = await gw.db.selectFrom('sync_cursors').select('stream').where('participant_id', '=', 'G1').execute();
      expect(cursors.length).toBe(11);
      expect((await gw.queues.getJob('sync', 'G1'))?.data).toEqual({ participantId: 'G1', reason: 'connected' });
    });

    it('reports partial consent on the success page and schedules only what was granted', async () => {
      const scopes = [`${G}activity_and_fitness.readonly`, `${G}settings.readonly`];
      const result = await connectThrough(gw, 'google-health', 'G2', { decision: 'allow', user: 'BBBBB2', scopes });
      expect(result.status).toBe(200);
      expect(result.text).toContain('Google Health connected');
      const missing = /<div class="box warn" id="missing">([\s\S]*?)<\/div>/.exec(result.text)![1]!;
      for (const label of ['Heart rate', 'Sleep: times and stages']) expect(missing).toContain(`<li>${label}</li>`);
      expect(missing).not.toContain('Steps');
      expect(missing).toMatch(/href="[^"]+\/connect\/google-health\?t=[^"]+" id="retry"/);
      const cursors = (await gw.db.selectFrom('sync_cursors').select('stream').where('participant_id', '=', 'G2').execute()).map((c) => c.stream);
      expect(cursors).toContain('steps');
      expect(cursors).not.toContain('sleep');
      expect(cursors).not.toContain('heart_rate');
    });

    it('answers Cancel with the friendly page, a replayed callback with 400, and a Fitbit link does not open the Google flow', async () => {
      const denied = await connectThrough(gw, 'google-health', 'G3', { decision: 'deny' });
      expect(denied.status).toBe(200);
      expect(denied.text).toContain('Google Health was not connected');
      expect(await connectionOf(gw, 'G3', 'google-health')).toBeUndefined();
      expect((await fetch(denied.callbackUrl, { headers: { cookie: denied.cookie } })).status).toBe(400);
      const fitbitLink = new URL(await issueLink(gw, 'G3'));
      const crossed = await fetch(`${gw.base}/connect/google-health?t=${fitbitLink.searchParams.get('t')}`);
      expect(crossed.status).toBe(400);
      expect(await crossed.text()).toContain('This link is not valid');
    });
  });

  describe('migration from the legacy API', () => {
    it('links for everyone waiting, matched by participant or legacyUserId, legacy tokens revoked and deleted, states listed', async () => {
      // G4 and G5 are legacy participants; G6 stays on the legacy API (still working for them).
      for (const [p, user] of [['G4', 'CCCCC3'], ['G5', 'DDDDD4'], ['G6', 'EEEEE5']] as const) {
        expect((await connectThrough(gw, 'fitbit', p, { decision: 'allow', user })).status).toBe(200);
      }
      // The fetcher marks a participant whose calls answer 410 (tested in the fetcher); here by hand.
      await gw.db
        .updateTable('provider_connections')
        .set({ status: 'needs_reconsent', status_reason: 'Fitbit API answered 410 Gone' })
        .where('participant_id', 'in', ['G4', 'G5'])
        .execute();

      const list = async (query = '') => {
        const res = await fetch(`${gw.base}/admin/participants${query}`, { headers: gw.admin });
        expect(res.status).toBe(200);
        return ((await res.json()) as { participants: Array<{ participantId: string; provider: string | null; migration: string | null; status: string }> }).participants;
      };
      const migrationOf = async (id: string) => (await list()).find((p) => p.participantId === id)!.migration;
      expect(await migrationOf('G4')).toBe('waiting');
      expect(await migrationOf('G6')).toBe('legacy_only');
      expect(await migrationOf('G1')).toBeNull();
      expect((await list('?migration=waiting')).map((p) => p.participantId).sort()).toEqual(['G4', 'G5']);

      const bulk = await fetch(`${gw.base}/admin/enrollments`, {
        method: 'POST',
        headers: { ...gw.admin, 'content-type': 'application/json' },
        body: JSON.stringify({ provider: 'google-health', status: 'needs_reconsent' }),
      });
      expect(bulk.status).toBe(201);
      const { links, failed } = (await bulk.json()) as { links: Array<{ participantId: string; url: string }>; failed: unknown[] };
      expect(failed).toEqual([]);
      expect(links.map((l) => l.participantId)).toEqual(['G4', 'G5']);
      for (const l of links) expect(l.url).toMatch(/\/connect\/google-health\?t=/);
      const badBulk = await fetch(`${gw.base}/admin/enrollments`, {
        method: 'POST',
        headers: { ...gw.admin, 'content-type': 'application/json' },
        body: JSON.stringify({ provider: 'google-health', status: 'connected' }),
      });
      expect(badBulk.status).toBe(400);

      gw.fitbit.setGone(true);
      try {
        // G4 re-consents with their own Google account (same person, same participant).
        const g4 = links.find((l) => l.participantId === 'G4')!;
        const page = await completeConsent(g4.url, { decision: 'allow', user: 'CCCCC3' });
        expect(page.status).toBe(200);
        const legacy4 = (await connectionOf(gw, 'G4', 'fitbit'))!;
        expect(legacy4.status).toBe('disconnected');
        expect(legacy4.status_reason).toMatch(new RegExp(`^${MIGRATED_REASON_PREFIX}`));
        expect([legacy4.access_token_enc, legacy4.refresh_token_enc]).toEqual([null, null]);
        expect((await connectionOf(gw, 'G4', 'google-health'))!.status).toBe('connected');

        // G7 (a new link) signs in with the Google account whose legacyUserId is G5's Fitbit user.
        const g7 = await connectThrough(gw, 'google-health', 'G7', { decision: 'allow', user: 'DDDDD4' });
        expect(g7.status).toBe(200);
        const legacy5 = (await connectionOf(gw, 'G5', 'fitbit'))!;
        expect(legacy5.status).toBe('disconnected');
        expect(legacy5.status_reason).toContain('through participant G7');
        expect(legacy5.refresh_token_enc).toBeNull();
      } finally {
        gw.fitbit.setGone(false);
      }
      expect(await migrationOf('G4')).toBe('migrated');
      expect(await migrationOf('G5')).toBe('migrated');
      expect(await migrationOf('G6')).toBe('legacy_only');
      expect((await list('?migration=waiting')).length).toBe(0);
    });

    it('revokes a legacy grant that still works', async () => {
      const before = gw.fitbit.state.activeRefresh.get('EEEEE5');
      expect(before).toBeDefined();
      expect((await connectThrough(gw, 'google-health', 'G6', { decision: 'allow', user: 'EEEEE5' })).status).toBe(200);
      const legacy = (await connectionOf(gw, 'G6', 'fitbit'))!;
      expect(legacy.status_reason).toMatch(/legacy tokens revoked and deleted$/);
      expect(gw.fitbit.state.activeRefresh.get('EEEEE5')).toBeUndefined();
    });
  });

  describe('webhooks', () => {
    const url = () => `${gw.base}/webhooks/google-health`;
    const secret = () => gw.env.GOOGLE_HEALTH_WEBHOOK_SECRET!;
    const control = async (path: string, body?: unknown) => {
      const res = await fetch(`${gw.googleUrl}/_control${path}`, {
        method: body === undefined ? 'GET' : 'POST',
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      expect(res.status).toBeLessThan(300);
      return res.json() as Promise<any>;
    };
    type Delivery = { id: number; state: string; duplicateOf?: number; body: unknown; attempts: Array<{ status?: number }> };
    const deliveries = async (): Promise<Delivery[]> => (await control('/webhooks/deliveries')).deliveries;
    const metric = async (outcome: string) => {
      // What the ops port's /metrics serves (main.ts): the gateway's registry.
      const text = await gw.registry.metrics();
      const m = new RegExp(`fitlamp_webhook_notifications_total\\{provider="google-health",outcome="${outcome}"\\} (\\d+)`).exec(text);
      return Number(m?.[1] ?? 0);
    };
    const clearSyncJobs = async () => {
      await Promise.all(gw.queues.sync.map((q) => q.drain(true)));
    };

    it('answers the verification handshake: 201 with the exact secret, 401 without or with another', async () => {
      const post = (headers: Record<string, string>) =>
        fetch(url(), { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: '{"type":"verification"}' });
      expect((await post({ authorization: secret() })).status).toBe(201);
      expect((await post({})).status).toBe(401);
      expect((await post({ authorization: `${secret()}x` })).status).toBe(401);

      // The simulator's subscriber creation runs the same handshake against the gateway.
      const res = await fetch(`${gw.googleUrl}/v4/projects/${gw.google!.state.webhooks.projectNumber}/subscribers?subscriberId=fitlamp-test`, {
        method: 'POST',
        headers: { authorization: `Bearer ${gw.google!.state.webhooks.serviceAccountToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          endpointUri: url(),
          subscriberConfigs: [{ dataTypes: ['steps', 'sleep', 'heart-rate', 'daily-resting-heart-rate'], subscriptionCreatePolicy: 'AUTOMATIC' }],
          endpointAuthorization: { secret: secret() },
        }),
      });
      expect(res.status).toBe(200);
    });

    it('turns a signed notification into a targeted sync of that participant, streams and local days, answering 204 fast', async () => {
      await clearSyncJobs();
      // A settled day the notification names loses its fetch watermark (durable, in Postgres).
      await gw.db
        .insertInto('day_ledger')
        .values({ participant_id: 'G1', stream: 'sleep', day: '2026-11-19', status: 'settled', synced_through: new Date('2026-11-20T12:00:00Z') })
        .onConflict((oc) => oc.columns(['participant_id', 'stream', 'day']).doUpdateSet({ status: 'settled', synced_through: new Date('2026-11-20T12:00:00Z') }))
        .execute();
      const before = (await deliveries()).length;
      await control('/webhooks/notify', { userId: 'AAAAA1', dataType: 'sleep', startTime: '2026-11-20T04:00:00Z', endTime: '2026-11-20T11:00:00Z' });
      const mine = (await deliveries()).slice(before);
      expect(mine.length).toBe(1);
      expect(mine[0]!.attempts.map((a) => a.status)).toEqual([204]);
      const job = await gw.queues.getJob('sync', 'G1');
      // 04:00–11:00 UTC is 23:00 on the 19th to 06:00 on the 20th in New York.
      expect(job?.data).toEqual({ participantId: 'G1', reason: 'webhook', streams: ['sleep'], days: ['2026-11-19', '2026-11-20'] });
      const day = await gw.db.selectFrom('day_ledger').select(['synced_through', 'reason']).where('participant_id', '=', 'G1').where('day', '=', '2026-11-19').executeTakeFirstOrThrow();
      expect(day).toEqual({ synced_through: null, reason: 'Google Health notified a change' });
      const row = await gw.db.selectFrom('provider_webhooks').selectAll().executeTakeFirstOrThrow();
      expect(Date.now() - row.last_verified_at.getTime()).toBeLessThan(10_000);
    });

    it('ignores duplicate deliveries', async () => {
      await clearSyncJobs();
      const before = (await deliveries()).length;
      const duplicatesBefore = await metric('duplicate');
      await control('/webhooks/duplicates', { count: 1 });
      await control('/webhooks/notify', { userId: 'AAAAA1', dataType: 'steps', startTime: '2026-11-21T15:00:00Z', endTime: '2026-11-21T15:05:00Z' });
      await gw.google!.flushWebhooks();
      const mine = (await deliveries()).slice(before);
      expect(mine.length).toBe(2);
      expect(mine[1]!.duplicateOf).toBe(mine[0]!.id);
      expect(mine.every((d) => d.attempts.at(-1)?.status === 204)).toBe(true);
      expect(await metric('duplicate')).toBe(duplicatesBefore + 1);
      // One job, from the first delivery; the duplicate added nothing (the job was consumed here to prove it).
      const job = await gw.queues.getJob('sync', 'G1');
      expect(job?.data.days).toEqual(['2026-11-21']);
      await clearSyncJobs();
      await control('/webhooks/duplicates', { deliveryId: mine[0]!.id });
      await gw.google!.flushWebhooks();
      expect(await gw.queues.getJob('sync', 'G1')).toBeUndefined();
      expect(await metric('duplicate')).toBe(duplicatesBefore + 2);
    });

    it('refuses bad signatures, malformed bodies and a wrong Authorization; answers unknown users 204; changing nothing', async () => {
      await clearSyncJobs();
      const stamp = async () => (await gw.db.selectFrom('provider_webhooks').select('last_verified_at').executeTakeFirstOrThrow()).last_verified_at.getTime();
      const stampBefore = await stamp();
      const before = (await deliveries()).length;

      await control('/webhooks/settings', { badSignature: true });
      await control('/webhooks/notify', { userId: 'AAAAA1', dataType: 'steps', startTime: '2026-11-21T16:00:00Z', endTime: '2026-11-21T16:05:00Z' });
      await control('/webhooks/settings', { badSignature: false });
      // FFFFF6 exists at Google but never connected to this study.
      await control('/webhooks/notify', { userId: 'FFFFF6', dataType: 'steps', startTime: '2026-11-21T16:00:00Z', endTime: '2026-11-21T16:05:00Z' });
      await control('/webhooks/notify', { userId: 'FFFFF6', dataType: 'steps', startTime: '2026-11-21T17:00:00Z', endTime: '2026-11-21T17:05:00Z' });
      const mine = (await deliveries()).slice(before);
      // Only 204 stops Google redelivering an unknown user's notifications for 7 days.
      expect(mine.map((d) => d.attempts[0]?.status)).toEqual([401, 204, 204]);
      expect(gw.logs.filter((l) => l.includes('a user no participant is connected with')).length).toBe(1);

      const unsigned = await fetch(url(), { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof mine[0]!.body === 'string' ? mine[0]!.body : JSON.stringify(mine[0]!.body) });
      expect(unsigned.status).toBe(401);
      const garbage = await fetch(url(), { method: 'POST', headers: { 'content-type': 'application/json', 'x-healthapi-signature': 'AQAAAAE=' }, body: '{"data":' });
      expect(garbage.status).toBe(400);
      const wrongAuth = await fetch(url(), { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer nope', 'x-healthapi-signature': 'AQAAAAEAAAAAAAAAAA==' }, body: '{}' });
      expect(wrongAuth.status).toBe(401);

      expect(await gw.queues.getJob('sync', 'G1')).toBeUndefined();
      expect(await gw.queues.count('sync')).toBe(0);
      expect(await stamp()).toBe(stampBefore);
    });

    it('leaves the notifications a failure stopped free for redelivery, and only those', async () => {
      await clearSyncJobs();
      const google = gw.google!;
      const user = (id: string) => google.world.users.find((u) => u.id === id)!;
      const at = (iso: string) => Date.parse(iso);
      const body = JSON.stringify([
        googleWebhookEnvelope(google.state, user('AAAAA1'), 'steps', 'UPSERT', [[at('2026-11-22T15:00:00Z'), at('2026-11-22T15:05:00Z')]]),
        googleWebhookEnvelope(google.state, user('BBBBB2'), 'steps', 'UPSERT', [[at('2026-11-22T01:00:00Z'), at('2026-11-22T01:05:00Z')]]),
      ]);
      const deliver = () =>
        fetch(url(), { method: 'POST', headers: { 'content-type': 'application/json', 'x-healthapi-signature': signGoogleWebhookBody(google.state.webhooks, body) }, body });
      // G2's durable work fails (Postgres refuses its ledger update); G1's succeeds.
      await gw.db.insertInto('day_ledger').values({ participant_id: 'G2', stream: 'steps', day: '2026-11-22', status: 'settled', synced_through: new Date() }).execute();
      await sql`create function refuse_g2() returns trigger language plpgsql as $$ begin if new.participant_id = 'G2' then raise exception 'refused for the test'; end if; return new; end $$`.execute(gw.db);
      await sql`create trigger refuse_g2 before update on day_ledger for each row execute function refuse_g2()`.execute(gw.db);
      try {
        const first = await deliver();
        expect(first.status).toBe(503);
        expect((await gw.queues.getJob('sync', 'G1'))?.data).toMatchObject({ reason: 'webhook', days: ['2026-11-22'] });
        expect(await gw.queues.getJob('sync', 'G2')).toBeUndefined();
      } finally {
        await sql`drop trigger refuse_g2 on day_ledger`.execute(gw.db);
        await sql`drop function refuse_g2()`.execute(gw.db);
      }
      await clearSyncJobs();
      // Google redelivers the same body: G1's notification is a duplicate now, G2's is handled.
      const again = await deliver();
      expect(again.status).toBe(204);
      expect(await gw.queues.getJob('sync', 'G1')).toBeUndefined();
      expect((await gw.queues.getJob('sync', 'G2'))?.data).toMatchObject({ reason: 'webhook', streams: ['steps'] });
    });

    it('keeps verifying across a signing-key rotation (the keyset is fetched again for a new key id)', async () => {
      await clearSyncJobs();
      await gw.google!.rotateSigningKey();
      // Unknown key ids refetch the keyset at most every 5 s.
      await new Promise((r) => setTimeout(r, 5_100));
      const before = (await deliveries()).length;
      await control('/webhooks/notify', { userId: 'BBBBB2', dataType: 'steps', startTime: '2026-11-21T01:00:00Z', endTime: '2026-11-21T01:05:00Z' });
      const mine = (await deliveries()).slice(before);
      expect(mine.map((d) => d.attempts[0]?.status)).toEqual([204]);
      expect((await gw.queues.getJob('sync', 'G2'))?.data).toMatchObject({ reason: 'webhook', streams: ['steps'] });
    });
  });
});
