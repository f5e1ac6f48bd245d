import { codeVerifierPlace } from '@fitlamp/db';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '@fitlamp/runtime';
import { answerProviderConsent, finishConsent, serviceTestEnv, startConsent, storedToken } from '@fitlamp/testing';
import { signEnrollment } from './enrollment.ts';
import { loadGatewayEnv } from './env.ts';
import { connectThrough, issueLink, startTestGateway, type TestGateway } from '../test/gateway.ts';

const ALL_STREAMS = [
  'active_zone_minutes',
  'breathing_rate',
  'device',
  'exercise',
  'heart_rate',
  'hrv',
  'resting_heart_rate',
  'skin_temperature',
  'sleep',
  'spo2',
  'steps',
];

async function connection(gw: TestGateway, participantId: string) {
  return gw.db.selectFrom('provider_connections').selectAll().where('participant_id', '=', participantId).executeTakeFirst();
}

async function cursors(gw: TestGateway, participantId: string): Promise<string[]> {
  const rows = await gw.db.selectFrom('sync_cursors').select('stream').where('participant_id', '=', participantId).orderBy('stream').execute();
  return rows.map((r) => r.stream);
}

describe('participant connection flow (gateway, Fitbit and mindLAMP simulators, Postgres, Redis)', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({
      participants: ['U1001', 'U1002', 'U1003', 'U1004', 'U1005', 'U1006', 'U1007', 'U1008'],
      fitbitUsers: [
        { id: 'AAAAA1', preset: 'new-york' },
        { id: 'BBBBB2', preset: 'sydney' },
        { id: 'CCCCC3', preset: 'kolkata' },
        { id: 'DDDDD4', preset: 'traveler' },
        { id: 'EEEEE5', preset: 'new-york' },
        { id: 'FFFFF6', preset: 'new-york' },
      ],
      // Many requests from one address; the limit itself is tested under "gateway options".
      env: { PUBLIC_RATE_LIMIT_PER_MINUTE: '1000' },
    });
  });
  afterAll(async () => {
    await gw?.close();
  });

  describe('enrollment', () => {
    it('issues a signed, expiring link for a participant mindLAMP knows', async () => {
      const before = Date.now();
      const res = await fetch(`${gw.base}/admin/enrollments`, {
        method: 'POST',
        headers: { ...gw.admin, 'content-type': 'application/json' },
        body: JSON.stringify({ participantId: 'U1001', provider: 'fitbit' }),
      });
      expect(res.status).toBe(201);
      const body = (await res.json()) as { url: string; expiresAt: string };
      expect(body.url).toMatch(new RegExp(`^${gw.base}/connect/fitbit\\?t=[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]{43}$`));
      const after = Date.now();
      // 14 days from the request (the link carries whole seconds).
      const expiresAt = Date.parse(body.expiresAt);
      expect(expiresAt).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 14 * 86_400_000);
      expect(expiresAt).toBeLessThanOrEqual(after + 14 * 86_400_000);
      expect(await gw.db.selectFrom('participants').select('id').where('id', '=', 'U1001').executeTakeFirst()).toBeDefined();

      const short = await fetch(`${gw.base}/admin/enrollments`, {
        method: 'POST',
        headers: { ...gw.admin, 'content-type': 'application/json' },
        body: JSON.stringify({ participantId: 'U1001', provider: 'fitbit', expiresInHours: 2 }),
      });
      const hours = (Date.parse(((await short.json()) as { expiresAt: string }).expiresAt) - Date.now()) / 3_600_000;
      expect(hours).toBeGreaterThan(1.9);
      expect(hours).toBeLessThanOrEqual(2);
    });

    it('refuses a participant mindLAMP does not know, storing nothing', async () => {
      const res = await fetch(`${gw.base}/admin/enrollments`, {
        method: 'POST',
        headers: { ...gw.admin, 'content-type': 'application/json' },
        body: JSON.stringify({ participantId: 'U9999', provider: 'fitbit' }),
      });
      expect(res.status).toBe(404);
      const body = (await res.json()) as { error: string; message: string };
      expect(body.error).toBe('participant_not_found');
      expect(body.message).toContain('U9999');
      expect(await gw.db.selectFrom('participants').select('id').where('id', '=', 'U9999').executeTakeFirst()).toBeUndefined();
    });

    it('says which field is wrong, and answers 503 while mindLAMP is down', async () => {
      const post = (body: unknown, headers: Record<string, string> = gw.admin) =>
        fetch(`${gw.base}/admin/enrollments`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      for (const bad of [{}, { participantId: 'U1001' }, { participantId: 'U 1', provider: 'fitbit' }, { participantId: 'U1001', provider: 'garmin' }, { participantId: 'U1001', provider: 'fitbit', expiresInHours: -1 }, { participantId: 'U1001', provider: 'fitbit', extra: 1 }]) {
        const res = await post(bad);
        expect(res.status).toBe(400);
        const body = (await res.json()) as { error: string; issues: unknown[] };
        expect(body.error).toBe('invalid_request');
        expect(body.issues.length).toBeGreaterThan(0);
      }
      const notJson = await fetch(`${gw.base}/admin/enrollments`, { method: 'POST', headers: { ...gw.admin, 'content-type': 'application/json' }, body: '{' });
      expect(notJson.status).toBe(400);
      expect(((await notJson.json()) as { error: string }).error).toBe('invalid_request');
      expect((await post({ participantId: 'U1001', provider: 'fitbit' }, {})).status).toBe(401);
      expect((await post({ participantId: 'U1001', provider: 'google-health' })).status).toBe(400);

      gw.lampSim.addFault({ route: 'Participant.view', times: 1, fault: { kind: 'status', status: 503 } });
      const down = await post({ participantId: 'U1002', provider: 'fitbit' });
      expect(down.status).toBe(503);
      expect(((await down.json()) as { error: string }).error).toBe('lamp_unavailable');
    });
  });

  describe('consent page', () => {
    it('shows what will be shared on a mobile-friendly page with security headers', async () => {
      const res = await fetch(await issueLink(gw, 'U1001'));
      expect(res.status).toBe(200);
      const page = await res.text();
      expect(page).toContain('<meta name="viewport" content="width=device-width, initial-scale=1">');
      expect(page).toContain('U1001');
      for (const label of ['Steps, minute by minute', 'Heart rate', 'Sleep: times and stages', 'Blood oxygen (SpO2)']) expect(page).toContain(label);
      expect(page).toContain('<form method="post" action="/connect/fitbit">');
      expect(page).not.toMatch(/<script|https?:\/\/(?!127\.0\.0\.1)/);
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp).toContain("default-src 'none'");
      expect(csp).toMatch(/style-src 'sha256-[A-Za-z0-9+/=]+'/);
      expect(csp).toContain(`form-action 'self' ${new URL(gw.env.FITBIT_AUTHORIZE_URL).origin}`);
      expect(csp).toContain("frame-ancestors 'none'");
      expect(res.headers.get('referrer-policy')).toBe('same-origin');
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('cache-control')).toBe('no-store');
    });

    it('refuses tampered, expired, unsigned and missing links with a page that says what to do', async () => {
      const link = new URL(await issueLink(gw, 'U1001'));
      const token = link.searchParams.get('t')!;
      const [payload, sig] = token.split('.') as [string, string];
      const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), p: 'U1002' })).toString('base64url');
      const expired = signEnrollment(gw.env.ENROLLMENT_SECRET, { participantId: 'U1001', provider: 'fitbit', expiresAt: Date.now() - 60_000 });
      const cases: Array<[string, number, RegExp]> = [
        [`t=${forged}.${sig}`, 400, /This link is not valid/],
        [`t=${payload}.${sig.slice(0, -2)}xx`, 400, /This link is not valid/],
        [`t=${expired}`, 410, /This link has expired/],
        ['user_id=U1001', 400, /This link is not valid/],
        ['', 400, /This link is not valid/],
      ];
      for (const [query, status, text] of cases) {
        const res = await fetch(`${gw.base}/connect/fitbit?${query}`);
        expect(res.status).toBe(status);
        expect(res.headers.get('content-type')).toMatch(/text\/html/);
        expect(await res.text()).toMatch(text);
      }
      const other = await fetch(`${gw.base}/connect/garmin?t=${token}`);
      expect(other.status).toBe(404);
      // The fitbit link does not open another provider's flow either.
      expect((await fetch(`${gw.base}/connect/google-health?t=${token}`)).status).toBe(404);
    });

    it('checks the participant in mindLAMP again before consent starts', async () => {
      const link = await issueLink(gw, 'U1007');
      const page = await fetch(link);
      expect(page.status).toBe(200);
      gw.lampSim.store.participants.delete('U1007');
      const form = new URLSearchParams({ t: new URL(link).searchParams.get('t')! });
      const res = await fetch(`${gw.base}/connect/fitbit`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString(), redirect: 'manual' });
      expect(res.status).toBe(404);
      expect(await res.text()).toContain('We could not find you in the study');
      expect(await gw.db.selectFrom('oauth_states').select('state_hash').where('participant_id', '=', 'U1007').execute()).toEqual([]);
    });

    it('starts consent with single-use state and PKCE S256, storing only the state hash and the encrypted verifier', async () => {
      const location = new URL((await startConsent(await issueLink(gw, 'U1001'))).authorizeUrl);
      expect(location.origin + location.pathname).toBe(gw.env.FITBIT_AUTHORIZE_URL);
      const q = location.searchParams;
      expect(q.get('code_challenge_method')).toBe('S256');
      expect(q.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(q.get('redirect_uri')).toBe(`${gw.base}/oauth/fitbit/callback`);
      // ≥ 128 random bits: 32 bytes, base64url.
      const state = q.get('state')!;
      expect(Buffer.from(state, 'base64url').length).toBeGreaterThanOrEqual(16);
      expect(q.get('scope')!.split(' ').sort()).toEqual(['activity', 'heartrate', 'oxygen_saturation', 'profile', 'respiratory_rate', 'settings', 'sleep', 'temperature']);
      const rows = await gw.db.selectFrom('oauth_states').selectAll().where('participant_id', '=', 'U1001').execute();
      const row = rows.at(-1)!;
      expect(JSON.stringify(rows)).not.toContain(state);
      expect(row.state_hash).toMatch(/^[0-9a-f]{64}$/);
      expect(row.code_verifier_enc).toMatch(/^v2\.test1\./);
      const ttl = row.expires_at.getTime() - row.created_at.getTime();
      expect(ttl).toBeGreaterThan(9.9 * 60_000);
      expect(ttl).toBeLessThanOrEqual(10 * 60_000 + 1000);
    });
  });

  describe('callback', () => {
    it('connects: tokens encrypted with key id and version, scopes, account, time zone, due cursors, one sync job', async () => {
      const result = await connectThrough(gw, 'fitbit', 'U1002', { decision: 'allow', user: 'AAAAA1' });
      expect(result.status).toBe(200);
      expect(result.text).toContain('Fitbit connected — you can close this window.');
      expect(result.text).not.toContain('id="missing"');
      const row = (await connection(gw, 'U1002'))!;
      expect(row).toMatchObject({ status: 'connected', provider_user_id: 'AAAAA1', key_id: 'test1', token_version: 1 });
      const issuedRefresh = gw.fitbit.state.activeRefresh.get('AAAAA1')!;
      expect(row.refresh_token_enc).not.toBe(issuedRefresh);
      expect(row.refresh_token_enc).not.toContain(issuedRefresh);
      expect(storedToken(gw.cipher, row, 'refresh_token_enc')).toBe(issuedRefresh);
      expect(gw.fitbit.state.accessTokens.get(storedToken(gw.cipher, row, 'access_token_enc'))?.userId).toBe('AAAAA1');
      expect(row.access_token_expires_at!.getTime() - Date.now()).toBeGreaterThan(7.9 * 3_600_000);
      expect(row.scopes.sort()).toEqual(['activity', 'heartrate', 'oxygen_saturation', 'profile', 'respiratory_rate', 'settings', 'sleep', 'temperature']);
      const zones = await gw.db.selectFrom('participant_time_zones').selectAll().where('participant_id', '=', 'U1002').execute();
      expect(zones.map((z) => [z.zone, z.source])).toEqual([['America/New_York', 'fitbit-profile']]);
      expect(await cursors(gw, 'U1002')).toEqual(ALL_STREAMS);
      const job = await gw.queues.getJob('sync', 'U1002');
      expect(job?.data).toEqual({ participantId: 'U1002', reason: 'connected' });
    });

    it('answers a replayed, unknown or expired state with a 400 page and stores nothing', async () => {
      const again = await connectThrough(gw, 'fitbit', 'U1002', { decision: 'allow', user: 'AAAAA1' });
      expect(again.status).toBe(200);
      const before = (await connection(gw, 'U1002'))!;
      const replay = await fetch(again.callbackUrl, { headers: { cookie: again.cookie } });
      expect(replay.status).toBe(400);
      expect(await replay.text()).toContain('This sign-in has expired or was already used');
      expect((await connection(gw, 'U1002'))!.token_version).toBe(before.token_version);

      const unknown = await fetch(`${gw.base}/oauth/fitbit/callback?code=abc&state=${'x'.repeat(43)}`);
      expect(unknown.status).toBe(400);
      expect((await fetch(`${gw.base}/oauth/fitbit/callback?code=abc`)).status).toBe(400);

      const start = await startConsent(await issueLink(gw, 'U1003'));
      await gw.db.updateTable('oauth_states').set({ expires_at: new Date(Date.now() - 1000) }).where('participant_id', '=', 'U1003').execute();
      const expired = await finishConsent(start, await answerProviderConsent(start.authorizeUrl, { decision: 'allow', user: 'BBBBB2' }));
      expect(expired.status).toBe(400);
      expect(await connection(gw, 'U1003')).toBeUndefined();
    });

    it('answers Deny with a friendly page and a working way to try again', async () => {
      const result = await connectThrough(gw, 'fitbit', 'U1003', { decision: 'deny' });
      expect(result.status).toBe(200);
      expect(result.text).toContain('Fitbit was not connected');
      expect(result.text).toContain('nothing was shared');
      expect(await connection(gw, 'U1003')).toBeUndefined();
      expect(await cursors(gw, 'U1003')).toEqual([]);
      const retry = /href="([^"]+)" id="retry"/.exec(result.text)![1]!.replace(/&amp;/g, '&');
      expect(retry.startsWith(`${gw.base}/connect/fitbit?t=`)).toBe(true);
      const again = await fetch(retry);
      expect(again.status).toBe(200);
      expect(await again.text()).toContain('U1003');
    });

    it('says which data will not be collected when the participant unticked scopes', async () => {
      const scopes = ['profile', 'activity', 'oxygen_saturation', 'respiratory_rate', 'settings', 'temperature'];
      const result = await connectThrough(gw, 'fitbit', 'U1003', { decision: 'allow', user: 'BBBBB2', scopes });
      expect(result.status).toBe(200);
      expect(result.text).toContain('Fitbit connected — you can close this window.');
      const missing = /<div class="box warn" id="missing">([\s\S]*?)<\/div>/.exec(result.text)![1]!;
      for (const label of ['Heart rate', 'Resting heart rate', 'Sleep: times and stages', 'Heart rate variability']) expect(missing).toContain(`<li>${label}</li>`);
      expect(missing).not.toContain('Steps');
      expect((await connection(gw, 'U1003'))!.scopes.sort()).toEqual([...scopes].sort());
      expect(await cursors(gw, 'U1003')).toEqual(ALL_STREAMS.filter((s) => !['heart_rate', 'resting_heart_rate', 'sleep', 'hrv'].includes(s)));
      const zone = await gw.db.selectFrom('participant_time_zones').select('zone').where('participant_id', '=', 'U1003').executeTakeFirst();
      expect(zone?.zone).toBe('Australia/Sydney');
    });
  });

  describe('consent bound to the browser that started it', () => {
    const post = (headers: Record<string, string>, t: string) =>
      fetch(`${gw.base}/connect/fitbit`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
        body: new URLSearchParams({ t }).toString(),
        redirect: 'manual',
      });
    const statesOf = async (participantId: string) =>
      (await gw.db.selectFrom('oauth_states').select('state_hash').where('participant_id', '=', participantId).execute()).length;

    it('sets an HttpOnly, SameSite=Lax consent cookie; plain over http, __Host- and Secure over https', async () => {
      const t = new URL(await issueLink(gw, 'U1001')).searchParams.get('t')!;
      const plain = await post({}, t);
      expect(plain.status).toBe(303);
      const [cookie] = plain.headers.getSetCookie();
      expect(cookie).toMatch(/^fitlamp-consent-fitbit=[A-Za-z0-9_-]{43}; Max-Age=600; Path=\/; HttpOnly; SameSite=Lax$/);
      const httpBase = gw.env.PUBLIC_BASE_URL;
      gw.env.PUBLIC_BASE_URL = 'https://fitlamp.example.org';
      try {
        const secure = await post({}, t);
        expect(secure.status).toBe(303);
        const [hostCookie] = secure.headers.getSetCookie();
        expect(hostCookie).toMatch(/^__Host-fitlamp-consent-fitbit=[A-Za-z0-9_-]{43}; Max-Age=600; Path=\/; HttpOnly; Secure; SameSite=Lax$/);
        expect(hostCookie).not.toMatch(/Domain=/i);
      } finally {
        gw.env.PUBLIC_BASE_URL = httpBase;
      }
    });

    it('refuses a callback without the cookie, or with another browser’s, leaving the state to its own browser', async () => {
      const mine = await startConsent(await issueLink(gw, 'U1003'));
      const theirs = await startConsent(await issueLink(gw, 'U1003'));
      const callback = await answerProviderConsent(mine.authorizeUrl, { decision: 'allow', user: 'BBBBB2' });
      const before = await connection(gw, 'U1003');
      const wrong: Array<Record<string, string>> = [{}, { cookie: theirs.cookie }, { cookie: `${mine.cookie.split('=')[0]}=${'x'.repeat(43)}` }];
      for (const headers of wrong) {
        const res = await fetch(callback, { headers });
        expect(res.status).toBe(400);
        expect(await res.text()).toContain('only in the browser that started it');
        expect(await connection(gw, 'U1003')).toEqual(before);
      }
      // The browser that started it still finishes, once.
      const res = await finishConsent(mine, callback);
      expect(res.status).toBe(200);
      expect(res.headers.getSetCookie().join()).toMatch(/^fitlamp-consent-fitbit=; Max-Age=0; Path=\/;.* HttpOnly; SameSite=Lax$/);
      expect((await connection(gw, 'U1003'))!.provider_user_id).toBe('BBBBB2');
    });

    it('refuses cross-site form posts (Origin, Sec-Fetch-Site) with a page, starting nothing', async () => {
      // An earlier test removed U1007 from mindLAMP.
      gw.lampSim.store.participants.set('U1007', 'S1');
      const t = new URL(await issueLink(gw, 'U1007')).searchParams.get('t')!;
      const crossSite: Array<Record<string, string>> = [
        { origin: 'http://attacker.example' },
        { origin: 'null' },
        { origin: `${gw.base}.attacker.example` },
        { 'sec-fetch-site': 'cross-site' },
        { 'sec-fetch-site': 'same-site' },
        { origin: gw.base, 'sec-fetch-site': 'cross-site' },
      ];
      // Where Sec-Fetch-Site is sent it decides; a same-origin form's Origin may be "null".
      for (const headers of crossSite) {
        const res = await post(headers, t);
        expect(res.status).toBe(403);
        expect(res.headers.get('content-type')).toMatch(/text\/html/);
        expect(res.headers.getSetCookie()).toEqual([]);
        expect(await res.text()).toContain('This request came from another website');
      }
      expect(await statesOf('U1007')).toBe(0);
      const sameOrigin: Array<Record<string, string>> = [{ origin: gw.base, 'sec-fetch-site': 'same-origin' }, { origin: 'null', 'sec-fetch-site': 'same-origin' }, { 'sec-fetch-site': 'none' }, {}];
      for (const headers of sameOrigin) {
        expect((await post(headers, t)).status).toBe(303);
      }
      expect(await statesOf('U1007')).toBe(4);
    });
  });

  describe('lifecycle', () => {
    it('reconnecting with another account replaces the tokens and revokes the old ones at Fitbit', async () => {
      expect((await connectThrough(gw, 'fitbit', 'U1004', { decision: 'allow', user: 'CCCCC3' })).status).toBe(200);
      const first = (await connection(gw, 'U1004'))!;
      const oldRefresh = storedToken(gw.cipher, first, 'refresh_token_enc');
      expect(gw.fitbit.state.refreshTokens.get(oldRefresh)?.status).toBe('active');

      expect((await connectThrough(gw, 'fitbit', 'U1004', { decision: 'allow', user: 'DDDDD4' })).status).toBe(200);
      const moved = (await connection(gw, 'U1004'))!;
      expect(moved).toMatchObject({ provider_user_id: 'DDDDD4', token_version: 2, status: 'connected' });
      expect(gw.fitbit.state.refreshTokens.get(oldRefresh)?.status).toBe('revoked');
      expect(gw.fitbit.state.activeRefresh.has('CCCCC3')).toBe(false);
      expect(gw.fitbit.state.activeRefresh.get('DDDDD4')).toBe(storedToken(gw.cipher, moved, 'refresh_token_enc'));
    });

    it('reconnecting the same account keeps the new grant alive', async () => {
      const before = (await connection(gw, 'U1004'))!;
      expect((await connectThrough(gw, 'fitbit', 'U1004', { decision: 'allow', user: 'DDDDD4' })).status).toBe(200);
      const after = (await connection(gw, 'U1004'))!;
      expect(after.token_version).toBe(before.token_version + 1);
      const refresh = storedToken(gw.cipher, after, 'refresh_token_enc');
      expect(refresh).not.toBe(storedToken(gw.cipher, before, 'refresh_token_enc'));
      expect(gw.fitbit.state.refreshTokens.get(refresh)?.status).toBe('active');
    });

    it('refuses one Fitbit account for a second participant, with a clear message', async () => {
      const result = await connectThrough(gw, 'fitbit', 'U1005', { decision: 'allow', user: 'DDDDD4' });
      expect(result.status).toBe(409);
      expect(result.text).toContain('This Fitbit account is already connected to another participant');
      expect(await connection(gw, 'U1005')).toBeUndefined();
      expect(await cursors(gw, 'U1005')).toEqual([]);
      // The owner keeps syncing: Fitbit retired its old refresh token when this grant was made.
      const owner = (await connection(gw, 'U1004'))!;
      expect(owner.status).toBe('connected');
      expect(gw.fitbit.state.activeRefresh.get('DDDDD4')).toBe(storedToken(gw.cipher, owner, 'refresh_token_enc'));
    });

    it('lists participants with status, provider, scopes, connected-at and last sync', async () => {
      await gw.db.updateTable('sync_cursors').set({ last_success_at: new Date('2026-11-20T10:00:00Z') }).where('participant_id', '=', 'U1002').where('stream', '=', 'steps').execute();
      const res = await fetch(`${gw.base}/admin/participants`, { headers: gw.admin });
      expect(res.status).toBe(200);
      const { participants } = (await res.json()) as { participants: Array<Record<string, unknown>> };
      const byId = Object.fromEntries(participants.map((p) => [p.participantId, p]));
      expect(byId.U1002).toMatchObject({ provider: 'fitbit', status: 'connected', lastSyncAt: '2026-11-20T10:00:00.000Z' });
      expect(byId.U1002!.connectedAt).toEqual(expect.any(String));
      expect(byId.U1002!.scopes).toContain('sleep');
      expect(byId.U1003).toMatchObject({ status: 'connected', provider: 'fitbit', lastSyncAt: null });
      expect(byId.U1001).toMatchObject({ status: 'not_connected', provider: null });
      expect(byId.U1005).toMatchObject({ status: 'not_connected', provider: null });
      expect(byId.U9999).toBeUndefined();

      const connected = (await (await fetch(`${gw.base}/admin/participants?status=connected`, { headers: gw.admin })).json()) as { participants: Array<{ participantId: string }> };
      expect(connected.participants.map((p) => p.participantId)).toEqual(['U1002', 'U1003', 'U1004']);
      expect((await fetch(`${gw.base}/admin/participants?status=happy`, { headers: gw.admin })).status).toBe(400);
      expect((await fetch(`${gw.base}/admin/participants`)).status).toBe(401);
    });

    it('disconnects: revokes at Fitbit, deletes the tokens, stops syncing', async () => {
      const before = (await connection(gw, 'U1002'))!;
      const refresh = storedToken(gw.cipher, before, 'refresh_token_enc');
      expect(await gw.queues.getJob('sync', 'U1002')).toBeDefined();

      gw.fitbit.addFault({ path: '/oauth2/revoke', kind: 'error', status: 503, count: 1 });
      const failed = await fetch(`${gw.base}/admin/participants/U1002/connection`, { method: 'DELETE', headers: gw.admin });
      expect(failed.status).toBe(502);
      expect(((await failed.json()) as { error: string }).error).toBe('revoke_failed');
      expect((await connection(gw, 'U1002'))!.status).toBe('connected');

      const res = await fetch(`${gw.base}/admin/participants/U1002/connection`, { method: 'DELETE', headers: gw.admin });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ participantId: 'U1002', connections: [{ provider: 'fitbit', status: 'disconnected', revokedAtProvider: true }] });
      expect(gw.fitbit.state.refreshTokens.get(refresh)?.status).toBe('revoked');
      const after = (await connection(gw, 'U1002'))!;
      expect(after).toMatchObject({ status: 'disconnected', access_token_enc: null, refresh_token_enc: null, token_version: before.token_version + 1 });
      expect(await cursors(gw, 'U1002')).toEqual([]);
      expect(await gw.queues.getJob('sync', 'U1002')).toBeUndefined();

      const again = await fetch(`${gw.base}/admin/participants/U1002/connection`, { method: 'DELETE', headers: gw.admin });
      expect(((await again.json()) as { connections: Array<{ revokedAtProvider: boolean }> }).connections[0]!.revokedAtProvider).toBe(false);
      expect((await fetch(`${gw.base}/admin/participants/U1006/connection`, { method: 'DELETE', headers: gw.admin })).status).toBe(404);
      expect((await fetch(`${gw.base}/admin/participants/U1002/connection?force=maybe`, { method: 'DELETE', headers: gw.admin })).status).toBe(400);
    });
  });

  describe('links cannot take over a connection', () => {
    const consent = async (link: string, answer: { decision: 'allow' | 'deny'; user?: string }) => {
      const start = await startConsent(link);
      const res = await finishConsent(start, await answerProviderConsent(start.authorizeUrl, answer));
      return { status: res.status, text: await res.text() };
    };

    it('the link that made a connection, and its retry links, cannot replace its account; the same account reconnects', async () => {
      const link = await issueLink(gw, 'U1008');
      expect((await consent(link, { decision: 'allow', user: 'EEEEE5' })).status).toBe(200);
      const connected = (await connection(gw, 'U1008'))!;
      expect(connected.provider_user_id).toBe('EEEEE5');

      const takeover = await consent(link, { decision: 'allow', user: 'FFFFF6' });
      expect(takeover.status).toBe(409);
      expect(takeover.text).toContain('is already connected to another Fitbit account');
      expect(takeover.text).toContain('ask the study team for a new link');
      expect(await connection(gw, 'U1008')).toEqual(connected);
      // The grant it obtained went back to Fitbit; the connected account's is untouched.
      expect(gw.fitbit.state.activeRefresh.has('FFFFF6')).toBe(false);
      expect(gw.fitbit.state.refreshTokens.get(storedToken(gw.cipher, connected, 'refresh_token_enc'))?.status).toBe('active');

      // A denial's "try again" link is no newer than the link it came from.
      const denied = await consent(link, { decision: 'deny' });
      const retry = /href="([^"]+)" id="retry"/.exec(denied.text)![1]!.replace(/&amp;/g, '&');
      expect((await consent(retry, { decision: 'allow', user: 'FFFFF6' })).status).toBe(409);
      expect((await connection(gw, 'U1008'))!.provider_user_id).toBe('EEEEE5');

      const same = await consent(link, { decision: 'allow', user: 'EEEEE5' });
      expect(same.status).toBe(200);
      expect((await connection(gw, 'U1008'))!).toMatchObject({ provider_user_id: 'EEEEE5', token_version: connected.token_version + 1 });
    });

    it('a fresh link from an administrator, who is warned, can replace it', async () => {
      const issued = await fetch(`${gw.base}/admin/enrollments`, {
        method: 'POST',
        headers: { ...gw.admin, 'content-type': 'application/json' },
        body: JSON.stringify({ participantId: 'U1008', provider: 'fitbit' }),
      });
      expect(issued.status).toBe(201);
      const body = (await issued.json()) as { url: string; warning?: string };
      expect(body.warning).toMatch(/^participant "U1008" is connected to a fitbit account: a link issued now can replace it/);
      const noWarning = (await (
        await fetch(`${gw.base}/admin/enrollments`, { method: 'POST', headers: { ...gw.admin, 'content-type': 'application/json' }, body: JSON.stringify({ participantId: 'U1001', provider: 'fitbit' }) })
      ).json()) as { warning?: string };
      expect(noWarning.warning).toBeUndefined();
      const dashboard = await (await fetch(`${gw.base}/admin/participants/U1008`, { headers: gw.admin })).text();
      expect(dashboard).toContain('id="replace-warning-fitbit"');

      const before = (await connection(gw, 'U1008'))!;
      const replaced = await consent(body.url, { decision: 'allow', user: 'FFFFF6' });
      expect(replaced.status).toBe(200);
      expect((await connection(gw, 'U1008'))!.provider_user_id).toBe('FFFFF6');
      expect(gw.fitbit.state.refreshTokens.get(storedToken(gw.cipher, before, 'refresh_token_enc'))?.status).toBe('revoked');
    });
  });

  describe('security', () => {
    it('never logs a token, code, verifier, state, secret or signature, nor puts one in a job', async () => {
      gw.logs.length = 0;
      const link = await issueLink(gw, 'U1006');
      const start = await startConsent(link);
      const authorize = start.authorizeUrl;
      const callback = await answerProviderConsent(authorize, { decision: 'allow', user: 'CCCCC3' });
      const res = await finishConsent(start, callback);
      expect(res.status).toBe(200);
      await finishConsent(start, callback); // a replay, logged as a warning
      await fetch(`${gw.base}/admin/participants/U1006/connection`, { method: 'DELETE', headers: gw.admin });

      const stateRows = await gw.db.selectFrom('oauth_states').select(['code_verifier_enc', 'participant_id']).execute();
      const t = new URL(link).searchParams.get('t')!;
      const secrets = [
        gw.env.ADMIN_TOKEN,
        gw.env.ENROLLMENT_SECRET,
        gw.env.FITBIT_CLIENT_SECRET!,
        gw.env.LAMP_SECRET_KEY,
        gw.env.TOKEN_ENCRYPTION_KEY.split(':')[1]!,
        t,
        t.split('.')[1]!,
        new URL(authorize).searchParams.get('state')!,
        new URL(authorize).searchParams.get('code_challenge')!,
        new URL(callback).searchParams.get('code')!,
        start.cookie.split('=')[1]!,
        ...stateRows.map((r) => gw.cipher.decrypt(r.code_verifier_enc, codeVerifierPlace(r.participant_id))),
        ...gw.fitbit.state.accessTokens.keys(),
        ...gw.fitbit.state.refreshTokens.keys(),
        ...gw.fitbit.state.codes.keys(),
      ];
      expect(secrets.length).toBeGreaterThan(12);
      const logText = gw.logs.join('\n');
      expect(logText).toContain('connected');
      for (const secret of secrets) expect(secret.length >= 16 && logText.includes(secret) ? secret : 'absent').toBe('absent');
      const jobs = await gw.queues.getJobs('sync', ['waiting', 'delayed', 'active', 'completed', 'failed']);
      const jobText = JSON.stringify(jobs.map((j) => [j.id, j.data, j.name]));
      for (const secret of secrets) expect(jobText.includes(secret) ? secret : 'absent').toBe('absent');
    });

    it('answers malformed page requests with an HTML page', async () => {
      const res = await fetch(`${gw.base}/connect/fitbit`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"t":1}' });
      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/text\/html/);
      const form = await fetch(`${gw.base}/connect/fitbit`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 't=' });
      expect(form.status).toBe(400);
      expect(await form.text()).toContain('This link is not valid');
      const cb = await fetch(`${gw.base}/oauth/fitbit/callback?state=${'y'.repeat(600)}`);
      expect(cb.status).toBe(400);
      expect(cb.headers.get('content-type')).toMatch(/text\/html/);
    });
  });
});

describe('gateway options', () => {
  it('with ALLOW_UNSIGNED_ENROLLMENT, accepts the prototype link but still checks mindLAMP; rate-limits public pages', async () => {
    const gw = await startTestGateway({ env: { ALLOW_UNSIGNED_ENROLLMENT: 'true', PUBLIC_RATE_LIMIT_PER_MINUTE: '4' } });
    try {
      const ok = await fetch(`${gw.base}/connect/fitbit?user_id=U1001`);
      expect(ok.status).toBe(200);
      expect(await ok.text()).toContain('<input type="hidden" name="user_id" value="U1001">');
      const unknown = await fetch(`${gw.base}/connect/fitbit?user_id=U9999`);
      expect(unknown.status).toBe(404);
      expect(await unknown.text()).toContain('We could not find you in the study');
      await fetch(`${gw.base}/oauth/fitbit/callback`);
      await fetch(`${gw.base}/connect/fitbit`);
      const limited = await fetch(`${gw.base}/connect/fitbit?user_id=U1001`);
      expect(limited.status).toBe(429);
      expect(limited.headers.get('content-type')).toMatch(/text\/html/);
      expect(await limited.text()).toContain('Too many requests');
      // Operations endpoints are not limited.
      expect((await fetch(`${gw.base}/healthz`)).status).toBe(200);
    } finally {
      await gw.close();
    }
  });

  it('refuses ALLOW_UNSIGNED_ENROLLMENT in production', () => {
    const env = serviceTestEnv({ NODE_ENV: 'production', PUBLIC_BASE_URL: 'https://fitlamp.example.org', ALLOW_UNSIGNED_ENROLLMENT: 'true' });
    expect(() => loadGatewayEnv(env)).toThrow(/ALLOW_UNSIGNED_ENROLLMENT is refused when NODE_ENV=production/);
    expect(loadGatewayEnv({ ...env, NODE_ENV: 'development' }).ALLOW_UNSIGNED_ENROLLMENT).toBe(true);
  });

  it('refuses to start in production with a non-https PUBLIC_BASE_URL', () => {
    const env = serviceTestEnv({ NODE_ENV: 'production', PUBLIC_BASE_URL: 'http://fitlamp.example.org' });
    expect(() => loadGatewayEnv(env)).toThrow(ConfigError);
    expect(() => loadGatewayEnv(env)).toThrow(/PUBLIC_BASE_URL must be https/);
    expect(loadGatewayEnv({ ...env, PUBLIC_BASE_URL: 'https://fitlamp.example.org' }).PUBLIC_BASE_URL).toBe('https://fitlamp.example.org');
  });
});
