import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SCOPES } from './catalogue.ts';
import { CLIENT_ID, CLIENT_SECRET, READ_SCOPES, REDIRECT_URI, api, authorizeUrl, connectUser, consent, control, pkce, startSimulator, tokenRequest, type Running } from '../../test/google.ts';

let run: Running;
beforeEach(async () => {
  run = await startSimulator({ users: [{ preset: 'new-york', id: 'NYC001', since: '2026-10-01' }, { preset: 'sydney', id: 'SYD001', since: '2026-10-01' }] });
});
afterEach(async () => {
  await run.sim.app.close();
});

async function codeFor(params: Record<string, string | undefined> = {}, opts: { user?: string; scopes?: string[] } = {}): Promise<{ code: string; verifier: string; location: URL }> {
  const { verifier, challenge } = pkce();
  const location = await consent(run.url, { ...opts, params: { code_challenge: challenge, code_challenge_method: 'S256', ...params } });
  return { code: location.searchParams.get('code') ?? '', verifier, location };
}

describe('consent page', () => {
  it('shows the app, a checkbox per requested Google Health scope and the simulated people', async () => {
    const res = await fetch(authorizeUrl(run.url));
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain('Study App');
    for (const s of READ_SCOPES) expect(html).toContain(`type="checkbox" name="scope" value="${s}" checked`);
    expect(html).toContain('<option value="NYC001"');
    expect(html).toContain('<option value="SYD001"');
    expect(html).toContain('id="allow"');
    expect(html).toContain('id="deny"');
  });

  it('partial consent: an unticked scope is not granted, and its data answers 403', async () => {
    const { code, verifier, location } = await codeFor({}, { user: 'NYC001', scopes: [SCOPES.activity, SCOPES.settings] });
    expect(location.origin + location.pathname).toBe(REDIRECT_URI);
    expect(location.searchParams.get('state')).toBe('state-123');
    expect(location.searchParams.get('scope')?.split(' ').sort()).toEqual([SCOPES.activity, SCOPES.settings].sort());
    const token = await tokenRequest(run.url, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier });
    expect(token.status).toBe(200);
    expect(token.body.scope.split(' ').sort()).toEqual([SCOPES.activity, SCOPES.settings].sort());
    const sleep = await api(run.url, token.body.access_token, '/v4/users/me/dataTypes/sleep/dataPoints');
    expect(sleep.status).toBe(403);
    expect(sleep.body.error).toMatchObject({ code: 403, status: 'PERMISSION_DENIED', details: [{ reason: 'MISSING_OAUTH_SCOPE' }] });
    expect((await api(run.url, token.body.access_token, '/v4/users/me/dataTypes/steps/dataPoints')).status).toBe(200);
  });

  it('Deny redirects with error=access_denied and the state', async () => {
    const location = await consent(run.url, { decision: 'deny' });
    expect(location.searchParams.get('error')).toBe('access_denied');
    expect(location.searchParams.get('state')).toBe('state-123');
    expect(location.searchParams.get('code')).toBeNull();
  });

  it('an unregistered redirect_uri gets an error page, never a redirect', async () => {
    for (const uri of [`${REDIRECT_URI}/`, 'http://127.0.0.1:9/oauth/google-health/callback?x=1', 'http://evil.test/cb']) {
      const res = await fetch(authorizeUrl(run.url, { redirect_uri: uri }), { redirect: 'manual' });
      expect(res.status).toBe(400);
      expect(res.headers.get('location')).toBeNull();
      expect(await res.text()).toContain('redirect_uri_mismatch');
    }
    const unknownClient = await fetch(authorizeUrl(run.url, { client_id: 'nope' }), { redirect: 'manual' });
    expect(unknownClient.status).toBe(401);
  });

  it('refuses an unknown scope on the consent URL', async () => {
    const res = await fetch(authorizeUrl(run.url, { scope: 'https://www.googleapis.com/auth/googlehealth.activity_and_fitness' }));
    expect(res.status).toBe(400);
    expect(await res.text()).toContain('invalid_scope');
  });
});

describe('token endpoint', () => {
  it('exchanges a code (PKCE S256) for the documented response', async () => {
    const { code, verifier } = await codeFor();
    const res = await tokenRequest(run.url, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier });
    expect(res.status).toBe(200);
    expect(Object.keys(res.body)).toEqual(['access_token', 'expires_in', 'refresh_token', 'scope', 'token_type']);
    expect(res.body).toMatchObject({ expires_in: 3599, token_type: 'Bearer' });
    expect(res.body.access_token).toMatch(/^ya29\./);
    expect(res.body.refresh_token).toMatch(/^1\/\//);
    expect(res.body).not.toHaveProperty('user_id');
  });

  it('verifies PKCE: a wrong or missing verifier is invalid_grant', async () => {
    const a = await codeFor();
    const wrong = await tokenRequest(run.url, { grant_type: 'authorization_code', code: a.code, redirect_uri: REDIRECT_URI, code_verifier: pkce().verifier });
    expect(wrong).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    const b = await codeFor();
    const missing = await tokenRequest(run.url, { grant_type: 'authorization_code', code: b.code, redirect_uri: REDIRECT_URI });
    expect(missing).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
  });

  it('the redirect_uri must equal the one of the authorization request', async () => {
    const { code, verifier } = await codeFor();
    const res = await tokenRequest(run.url, { grant_type: 'authorization_code', code, redirect_uri: 'http://127.0.0.1:9/other', code_verifier: verifier });
    expect(res).toMatchObject({ status: 400, body: { error: 'redirect_uri_mismatch' } });
  });

  it('a code is single use and expires after 10 minutes', async () => {
    const a = await codeFor();
    const form = { grant_type: 'authorization_code', code: a.code, redirect_uri: REDIRECT_URI, code_verifier: a.verifier };
    expect((await tokenRequest(run.url, form)).status).toBe(200);
    expect(await tokenRequest(run.url, form)).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    const b = await codeFor();
    run.sim.clock.advance(10 * 60_000 + 1);
    expect(await tokenRequest(run.url, { ...form, code: b.code, code_verifier: b.verifier })).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
  });

  it('authenticates the client by body or Basic; a wrong secret is invalid_client (401)', async () => {
    const { code, verifier } = await codeFor();
    const res = await fetch(`${run.url}/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}` },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier }),
    });
    expect(res.status).toBe(200);
    const bad = await tokenRequest(run.url, { client_secret: 'wrong', grant_type: 'refresh_token', refresh_token: 'x' });
    expect(bad).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
    expect(await tokenRequest(run.url, { grant_type: 'password' })).toMatchObject({ status: 400, body: { error: 'unsupported_grant_type' } });
  });

  it('a refresh answers a new access token and omits refresh_token; the refresh token stays usable', async () => {
    const first = await connectUser(run.url, { user: 'NYC001' });
    const refresh = first.refresh_token ?? '';
    for (let i = 0; i < 2; i += 1) {
      const res = await tokenRequest(run.url, { grant_type: 'refresh_token', refresh_token: refresh });
      expect(res.status).toBe(200);
      expect(res.body).not.toHaveProperty('refresh_token');
      expect(res.body).toMatchObject({ expires_in: 3599, token_type: 'Bearer', scope: first.scope });
      expect((await api(run.url, res.body.access_token, '/v4/users/me/identity')).status).toBe(200);
    }
    expect(run.sim.counters().refreshTokenUses).toEqual({ NYC001: 2 });
    expect((await control(run.url, 'GET', '/counters')).body.refreshTokenUses).toEqual({ NYC001: 2 });
  });

  it('a refresh token needs access_type=offline, and comes again only on first consent or prompt=consent', async () => {
    const online = await codeFor({ access_type: undefined, prompt: undefined }, { user: 'NYC001' });
    const a = await tokenRequest(run.url, { grant_type: 'authorization_code', code: online.code, redirect_uri: REDIRECT_URI, code_verifier: online.verifier });
    expect(a.status).toBe(200);
    expect(a.body).not.toHaveProperty('refresh_token');
    // NYC001 now has a grant: offline without prompt=consent gives no new refresh token…
    const again = await codeFor({ prompt: undefined }, { user: 'NYC001' });
    const b = await tokenRequest(run.url, { grant_type: 'authorization_code', code: again.code, redirect_uri: REDIRECT_URI, code_verifier: again.verifier });
    expect(b.body).not.toHaveProperty('refresh_token');
    // …prompt=consent does; and a first consent does without it.
    const forced = await codeFor({}, { user: 'NYC001' });
    const c = await tokenRequest(run.url, { grant_type: 'authorization_code', code: forced.code, redirect_uri: REDIRECT_URI, code_verifier: forced.verifier });
    expect(c.body.refresh_token).toMatch(/^1\/\//);
    const firstTime = await codeFor({ prompt: undefined }, { user: 'SYD001' });
    const d = await tokenRequest(run.url, { grant_type: 'authorization_code', code: firstTime.code, redirect_uri: REDIRECT_URI, code_verifier: firstTime.verifier });
    expect(d.body.refresh_token).toMatch(/^1\/\//);
  });

  it('an expired access token answers 401 UNAUTHENTICATED with WWW-Authenticate', async () => {
    const { access_token } = await connectUser(run.url);
    run.sim.clock.advance(3600_000);
    const res = await api(run.url, access_token, '/v4/users/me/identity');
    expect(res.status).toBe(401);
    expect(res.body.error).toMatchObject({ code: 401, status: 'UNAUTHENTICATED' });
    expect(res.headers.get('www-authenticate')).toContain('invalid_token');
  });
});

describe('Testing mode', () => {
  it('refresh tokens carry refresh_token_expires_in 604799 and die after 7 days with invalid_grant', async () => {
    await run.sim.app.close();
    run = await startSimulator({ testingMode: true });
    const tokens = await connectUser(run.url);
    expect(tokens).toMatchObject({ refresh_token_expires_in: 604799 });
    run.sim.clock.advance(6 * 86_400_000);
    const ok = await tokenRequest(run.url, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token ?? '' });
    expect(ok.status).toBe(200);
    expect(ok.body.refresh_token_expires_in).toBeLessThanOrEqual(86_400);
    run.sim.clock.advance(86_400_000);
    const dead = await tokenRequest(run.url, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token ?? '' });
    expect(dead).toMatchObject({ status: 400, body: { error: 'invalid_grant', error_description: 'Token has been expired or revoked.' } });
  });
});

describe('revoke', () => {
  it('revoking the refresh token kills the grant: access token 401, refresh invalid_grant, second revoke 400', async () => {
    const tokens = await connectUser(run.url, { user: 'NYC001' });
    const res = await fetch(`${run.url}/revoke`, { method: 'POST', body: new URLSearchParams({ token: tokens.refresh_token ?? '' }) });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({});
    expect((await api(run.url, tokens.access_token, '/v4/users/me/identity')).status).toBe(401);
    expect(await tokenRequest(run.url, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token ?? '' })).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    const again = await fetch(`${run.url}/revoke?token=${encodeURIComponent(tokens.refresh_token ?? '')}`, { method: 'POST' });
    expect(again.status).toBe(400);
    expect(await again.json()).toEqual({ error: 'invalid_token', error_description: 'Token expired or revoked' });
    expect((await control(run.url, 'GET', '/users')).body.users.find((u: { id: string }) => u.id === 'NYC001').connected).toBe(false);
  });

  it('revoking the access token revokes the refresh token too', async () => {
    const tokens = await connectUser(run.url);
    expect((await fetch(`${run.url}/revoke`, { method: 'POST', body: new URLSearchParams({ token: tokens.access_token }) })).status).toBe(200);
    expect((await tokenRequest(run.url, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token ?? '' })).body.error).toBe('invalid_grant');
  });
});
