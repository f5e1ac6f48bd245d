import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CLIENT_ID,
  REDIRECT_URI,
  api,
  authorizeUrl,
  basicAuth,
  connectUser,
  consent,
  control,
  pkce,
  startSimulator,
  tokenRequest,
  type Running,
} from '../../test/fitbit.ts';

let run: Running;
beforeEach(async () => {
  run = await startSimulator();
});
afterEach(async () => {
  await run.sim.app.close();
});

describe('consent page', () => {
  it('shows the app name, every requested scope ticked, Allow/Deny and a user chooser', async () => {
    const res = await fetch(authorizeUrl(run.url, { scope: 'activity sleep heartrate' }));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    const html = await res.text();
    expect(html).toContain('Study App');
    for (const s of ['activity', 'sleep', 'heartrate']) expect(html).toMatch(new RegExp(`<input type="checkbox" name="scope" value="${s}" checked>`));
    expect(html).not.toContain('value="weight"');
    expect(html).toMatch(/<button[^>]*value="allow"[^>]*>Allow<\/button>/);
    expect(html).toMatch(/<button[^>]*value="deny"[^>]*>Deny<\/button>/);
    const options = [...html.matchAll(/<option value="([^"]+)"/g)].map((m) => m[1]);
    expect(options).toEqual(run.sim.world.users.map((u) => u.id));
  });

  it('defaults to the first user not yet connected and honours login_hint', async () => {
    const [first, second, third] = run.sim.world.users;
    const before = await (await fetch(authorizeUrl(run.url))).text();
    expect(/<option value="([^"]+)" selected/.exec(before)?.[1]).toBe(first?.id);
    await connectUser(run.url);
    const after = await (await fetch(authorizeUrl(run.url))).text();
    expect(/<option value="([^"]+)" selected/.exec(after)?.[1]).toBe(second?.id);
    const hinted = await (await fetch(authorizeUrl(run.url, { login_hint: third?.id }))).text();
    expect(/<option value="([^"]+)" selected/.exec(hinted)?.[1]).toBe(third?.id);
  });

  it('refuses an unregistered or inexact redirect_uri with an error page and no redirect', async () => {
    for (const bad of ['http://127.0.0.1:9/callback/', 'http://127.0.0.1:9/CALLBACK', 'http://evil.example/callback']) {
      const res = await fetch(authorizeUrl(run.url, { redirect_uri: bad }), { redirect: 'manual' });
      expect(res.status).toBe(400);
      expect(res.headers.get('location')).toBeNull();
      expect(await res.text()).toContain('Invalid redirect_uri');
    }
    const unknownClient = await fetch(authorizeUrl(run.url, { client_id: 'NOPE' }), { redirect: 'manual' });
    expect(await unknownClient.text()).toContain('unauthorized_client - Invalid client_id');
  });

  it('redirects with error=access_denied and the state on Deny', async () => {
    const location = await consent(run.url, { decision: 'deny' });
    expect(`${location.origin}${location.pathname}`).toBe(REDIRECT_URI);
    expect(location.searchParams.get('error')).toBe('access_denied');
    expect(location.searchParams.get('state')).toBe('state-123');
    expect(location.searchParams.get('code')).toBeNull();
  });

  it('grants only the ticked scopes, space separated, with the chosen user', async () => {
    const user = run.sim.world.users[2]?.id ?? '';
    const token = await connectUser(run.url, { user, scopes: ['sleep', 'activity'] });
    expect(token.user_id).toBe(user);
    expect(token.scope).toBe('activity sleep');
  });

  it('auto-consent (control API) skips the page for automated clients', async () => {
    const user = run.sim.world.users[1]?.id;
    await control(run.url, 'POST', '/auto-consent', { decision: 'allow', userId: user, scopes: ['activity'] });
    const res = await fetch(authorizeUrl(run.url), { redirect: 'manual' });
    expect(res.status).toBe(302);
    const code = new URL(res.headers.get('location') ?? '').searchParams.get('code') ?? '';
    const token = await tokenRequest(run.url, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI });
    expect(token.body).toMatchObject({ user_id: user, scope: 'activity' });
    await control(run.url, 'DELETE', '/auto-consent');
    expect((await fetch(authorizeUrl(run.url), { redirect: 'manual' })).status).toBe(200);
  });
});

describe('token endpoint', () => {
  async function codeWithPkce(): Promise<{ code: string; verifier: string }> {
    const { verifier, challenge } = pkce();
    const location = await consent(run.url, { params: { code_challenge: challenge, code_challenge_method: 'S256' } });
    return { code: location.searchParams.get('code') ?? '', verifier };
  }

  it('issues 8-hour tokens with user_id and scope', async () => {
    const { code, verifier } = await codeWithPkce();
    const res = await tokenRequest(run.url, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ expires_in: 28800, token_type: 'Bearer', user_id: run.sim.world.users[0]?.id });
    expect(res.body.refresh_token).toMatch(/^[0-9a-f]{64}$/);
    const payload = JSON.parse(Buffer.from(res.body.access_token.split('.')[1], 'base64url').toString());
    expect(payload.exp - payload.iat).toBe(28800);
  });

  it('rejects a wrong PKCE verifier and a missing one', async () => {
    const { code } = await codeWithPkce();
    const wrong = await tokenRequest(run.url, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: pkce().verifier });
    expect(wrong.status).toBe(400);
    expect(wrong.body).toMatchObject({ success: false, errors: [{ errorType: 'invalid_grant' }] });
    const other = await codeWithPkce();
    const missing = await tokenRequest(run.url, { grant_type: 'authorization_code', code: other.code, redirect_uri: REDIRECT_URI });
    expect(missing.body.errors[0].errorType).toBe('invalid_request');
  });

  it('requires Basic client authentication', async () => {
    const { code, verifier } = await codeWithPkce();
    const none = await tokenRequest(run.url, { grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: REDIRECT_URI }, '');
    expect(none.status).toBe(401);
    expect(none.body.errors[0].errorType).toBe('invalid_client');
    const wrong = await tokenRequest(run.url, { grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: REDIRECT_URI }, basicAuth(CLIENT_ID, 'nope'));
    expect(wrong.status).toBe(401);
  });

  it('codes are single use', async () => {
    const { code, verifier } = await codeWithPkce();
    const form = { grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier };
    expect((await tokenRequest(run.url, form)).status).toBe(200);
    const again = await tokenRequest(run.url, form);
    expect(again.status).toBe(400);
    expect(again.body.errors[0]).toMatchObject({ errorType: 'invalid_grant' });
  });

  it('codes expire after 10 minutes', async () => {
    const fresh = await codeWithPkce();
    run.sim.clock.advance(9 * 60_000 + 59_000);
    expect((await tokenRequest(run.url, { grant_type: 'authorization_code', code: fresh.code, redirect_uri: REDIRECT_URI, code_verifier: fresh.verifier })).status).toBe(200);
    const stale = await codeWithPkce();
    run.sim.clock.advance(10 * 60_000);
    const res = await tokenRequest(run.url, { grant_type: 'authorization_code', code: stale.code, redirect_uri: REDIRECT_URI, code_verifier: stale.verifier });
    expect(res.status).toBe(400);
    expect(res.body.errors[0].errorType).toBe('invalid_grant');
  });

  it('the redirect_uri must match the one used at authorize', async () => {
    const { code, verifier } = await codeWithPkce();
    const res = await tokenRequest(run.url, { grant_type: 'authorization_code', code, redirect_uri: 'http://127.0.0.1:9/other', code_verifier: verifier });
    expect(res.status).toBe(400);
  });
});

describe('refresh tokens', () => {
  it('rotate: the new pair works, the old refresh token is single use', async () => {
    const first = await connectUser(run.url);
    const refreshed = await tokenRequest(run.url, { grant_type: 'refresh_token', refresh_token: first.refresh_token });
    expect(refreshed.status).toBe(200);
    expect(refreshed.body.refresh_token).not.toBe(first.refresh_token);
    expect(refreshed.body.access_token).not.toBe(first.access_token);
    expect(refreshed.body.scope).toBe(first.scope);
    expect((await api(run.url, refreshed.body.access_token, '/1/user/-/profile.json')).status).toBe(200);
    const again = await tokenRequest(run.url, { grant_type: 'refresh_token', refresh_token: refreshed.body.refresh_token });
    expect(again.status).toBe(200);
  });

  it('an identical request within two minutes gets the same response', async () => {
    const first = await connectUser(run.url);
    const form = { grant_type: 'refresh_token', refresh_token: first.refresh_token };
    const a = await tokenRequest(run.url, form);
    run.sim.clock.advance(119_000);
    const b = await tokenRequest(run.url, form);
    expect(b.status).toBe(200);
    expect(b.body).toEqual(a.body);
    expect(run.sim.counters().refreshReplays).toBe(1);
    // A different request with the used token is not a replay.
    const different = await tokenRequest(run.url, { ...form, expires_in: '28800' });
    expect(different.status).toBe(400);
  });

  it('after the window the old refresh token is invalid_grant and counted as reuse', async () => {
    const first = await connectUser(run.url);
    const form = { grant_type: 'refresh_token', refresh_token: first.refresh_token };
    expect((await tokenRequest(run.url, form)).status).toBe(200);
    run.sim.clock.advance(121_000);
    const late = await tokenRequest(run.url, form);
    expect(late.status).toBe(400);
    expect(late.body).toEqual({
      errors: [{ errorType: 'invalid_grant', message: expect.stringContaining(`Refresh token invalid: ${first.refresh_token}`) }],
      success: false,
    });
    const counters = (await control(run.url, 'GET', '/counters')).body;
    expect(counters.refreshTokenReuse).toBe(1);
  });

  it('using the new access token closes the replay window early', async () => {
    const first = await connectUser(run.url);
    const form = { grant_type: 'refresh_token', refresh_token: first.refresh_token };
    const a = await tokenRequest(run.url, form);
    await api(run.url, a.body.access_token, '/1/user/-/profile.json');
    const replay = await tokenRequest(run.url, form);
    expect(replay.status).toBe(400);
    expect(replay.body.errors[0].errorType).toBe('invalid_grant');
  });
});

describe('access tokens, revoke, introspect', () => {
  it('expired and invalid tokens get 401 with Fitbit error bodies', async () => {
    const token = await connectUser(run.url);
    const bad = await api(run.url, 'garbage', '/1/user/-/profile.json');
    expect(bad.status).toBe(401);
    expect(bad.body).toEqual({ errors: [{ errorType: 'invalid_token', message: expect.stringContaining('Access token invalid: garbage') }], success: false });
    run.sim.clock.advance(8 * 3_600_000);
    const expired = await api(run.url, token.access_token, '/1/user/-/profile.json');
    expect(expired.status).toBe(401);
    expect(expired.body.errors[0]).toMatchObject({ errorType: 'expired_token', message: expect.stringContaining('Access token expired') });
  });

  it('revoking either token kills all of the user’s tokens', async () => {
    const token = await connectUser(run.url);
    const other = await tokenRequest(run.url, { grant_type: 'refresh_token', refresh_token: token.refresh_token });
    const res = await fetch(`${run.url}/oauth2/revoke`, { method: 'POST', headers: { authorization: basicAuth() }, body: new URLSearchParams({ token: token.access_token }) });
    expect(res.status).toBe(200);
    expect((await api(run.url, token.access_token, '/1/user/-/profile.json')).body.errors[0].errorType).toBe('invalid_token');
    expect((await api(run.url, other.body.access_token, '/1/user/-/profile.json')).status).toBe(401);
    const refresh = await tokenRequest(run.url, { grant_type: 'refresh_token', refresh_token: other.body.refresh_token });
    expect(refresh.body.errors[0].errorType).toBe('invalid_grant');
    const listed = (await control(run.url, 'GET', '/users')).body.users;
    expect(listed.find((u: { id: string }) => u.id === token.user_id).connected).toBe(false);
  });

  it('introspect reports active tokens with Fitbit’s scope format, and inactive ones', async () => {
    const token = await connectUser(run.url, { scopes: ['activity', 'sleep'] });
    const introspect = async (t: string): Promise<any> =>
      (
        await fetch(`${run.url}/1.1/oauth2/introspect`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token.access_token}` },
          body: new URLSearchParams({ token: t }),
        })
      ).json();
    expect(await introspect(token.access_token)).toMatchObject({
      active: true,
      scope: '{ACTIVITY=READ_WRITE, SLEEP=READ_WRITE}',
      client_id: CLIENT_ID,
      user_id: token.user_id,
      token_type: 'access_token',
    });
    expect(await introspect('not-a-token')).toEqual({ active: false });
  });
});
