import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MockAgent } from 'undici';
import { ProviderError, STREAMS, type ProviderContext } from '@fitlamp/provider';
import { createGoogleHealthProvider } from './google-health-provider.ts';

const AUTH = 'https://accounts.google.test/o/oauth2/v2/auth';
const OAUTH = 'https://oauth2.google.test';
const API = 'https://health.google.test';
const G = 'https://www.googleapis.com/auth/googlehealth.';

let agent: MockAgent;
beforeEach(() => {
  agent = new MockAgent();
  agent.disableNetConnect();
});
afterEach(async () => {
  await agent.close();
});

const provider = () =>
  createGoogleHealthProvider({
    clientId: 'client-1',
    clientSecret: 'shh',
    authorizeUrl: AUTH,
    tokenUrl: `${OAUTH}/token`,
    revokeUrl: `${OAUTH}/revoke`,
    apiUrl: API,
    dispatcher: agent,
  });

async function caught(p: Promise<unknown>): Promise<ProviderError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ProviderError);
    return err as ProviderError;
  }
  throw new Error('expected a ProviderError');
}

describe('scopes', () => {
  it('asks the .readonly scope of each stream plus settings, never cloud-platform', () => {
    const scopes = provider().scopesFor([...STREAMS]);
    expect(scopes.sort()).toEqual(
      [`${G}activity_and_fitness.readonly`, `${G}health_metrics_and_measurements.readonly`, `${G}settings.readonly`, `${G}sleep.readonly`].sort(),
    );
    expect(provider().scopesFor(['sleep'])).toEqual([`${G}settings.readonly`, `${G}sleep.readonly`]);
    expect(() => createGoogleHealthProvider({ clientId: 'c', clientSecret: 's', scopes: ['https://www.googleapis.com/auth/cloud-platform'] })).toThrow(
      /cloud-platform/,
    );
  });

  it('names the streams a partial consent left without their scope', () => {
    const granted = [`${G}activity_and_fitness.readonly`, `${G}settings.readonly`];
    expect(provider().streamsMissingScope(granted, ['steps', 'sleep', 'hrv', 'exercise', 'device'])).toEqual(['sleep', 'hrv']);
    // A write-only scope does not read.
    expect(provider().streamsMissingScope([`${G}sleep.writeonly`], ['sleep'])).toEqual(['sleep']);
  });
});

describe('authorization URL', () => {
  it('carries offline access, forced consent, incremental auth and PKCE S256', () => {
    const url = new URL(
      provider().authorizationUrl({ redirectUri: 'https://fitlamp.test/oauth/google/callback', state: 'st-1', codeChallenge: 'ch-1', scopes: [`${G}sleep.readonly`, `${G}settings.readonly`] }),
    );
    expect(`${url.origin}${url.pathname}`).toBe(AUTH);
    expect(Object.fromEntries(url.searchParams)).toEqual({
      response_type: 'code',
      client_id: 'client-1',
      redirect_uri: 'https://fitlamp.test/oauth/google/callback',
      scope: `${G}sleep.readonly ${G}settings.readonly`,
      state: 'st-1',
      access_type: 'offline',
      prompt: 'consent',
      include_granted_scopes: 'true',
      code_challenge: 'ch-1',
      code_challenge_method: 'S256',
    });
  });
});

describe('token endpoint', () => {
  it('exchanges a code with the verifier and the client secret in the form body', async () => {
    let sent: URLSearchParams | undefined;
    agent
      .get(OAUTH)
      .intercept({ path: '/token', method: 'POST' })
      .reply((opts) => {
        sent = new URLSearchParams(String(opts.body));
        expect(opts.headers).toMatchObject({ 'content-type': 'application/x-www-form-urlencoded' });
        return {
          statusCode: 200,
          data: {
            access_token: 'ya29.a0-access',
            expires_in: 3599,
            refresh_token: '1//05-refresh',
            scope: `${G}sleep.readonly ${G}settings.readonly`,
            token_type: 'Bearer',
            refresh_token_expires_in: 604799,
          },
        };
      });
    const before = Date.now();
    const grant = await provider().exchangeCode({ code: '4/code', codeVerifier: 'verifier-1', redirectUri: 'https://fitlamp.test/cb' });
    expect(Object.fromEntries(sent!)).toEqual({
      grant_type: 'authorization_code',
      code: '4/code',
      redirect_uri: 'https://fitlamp.test/cb',
      code_verifier: 'verifier-1',
      client_id: 'client-1',
      client_secret: 'shh',
    });
    expect(grant).toMatchObject({ accessToken: 'ya29.a0-access', refreshToken: '1//05-refresh', scopes: [`${G}sleep.readonly`, `${G}settings.readonly`] });
    expect(grant.accessTokenExpiresAt).toBeGreaterThanOrEqual(before + 3_599_000);
    // Apps in Testing: the refresh token dies after 7 days, and the fetcher must know when.
    expect(grant.refreshTokenExpiresAt! - grant.accessTokenExpiresAt).toBe((604_799 - 3_599) * 1000);
    expect(grant.providerUserId).toBeUndefined();
  });

  it('refreshes without a new refresh token: the grant has none, so the stored one is kept', async () => {
    let sent: URLSearchParams | undefined;
    agent
      .get(OAUTH)
      .intercept({ path: '/token', method: 'POST' })
      .reply((opts) => {
        sent = new URLSearchParams(String(opts.body));
        return { statusCode: 200, data: { access_token: 'ya29.new', expires_in: 3599, scope: `${G}sleep.readonly`, token_type: 'Bearer' } };
      });
    const grant = await provider().refreshToken('1//05-refresh');
    expect(Object.fromEntries(sent!)).toEqual({ grant_type: 'refresh_token', refresh_token: '1//05-refresh', client_id: 'client-1', client_secret: 'shh' });
    expect(grant.accessToken).toBe('ya29.new');
    expect('refreshToken' in grant).toBe(false);
    expect(grant.refreshTokenExpiresAt).toBeUndefined();
  });

  it('turns invalid_grant into invalid_grant, saying expired-or-revoked (which covers the Testing 7-day limit) without echoing the token', async () => {
    agent
      .get(OAUTH)
      .intercept({ path: '/token', method: 'POST' })
      .reply(400, { error: 'invalid_grant', error_description: 'Token has been expired or revoked.' });
    const err = await caught(provider().refreshToken('1//05-secret-refresh'));
    expect(err.code).toBe('invalid_grant');
    expect(err.details.reason).toBe('expired_or_revoked');
    expect(err.message).toMatch(/7-day/);
    expect(err.message).not.toContain('secret-refresh');

    agent
      .get(OAUTH)
      .intercept({ path: '/token', method: 'POST' })
      .reply(400, { error: 'invalid_grant', error_description: 'reauth related error (invalid_rapt)', error_subtype: 'invalid_rapt' });
    expect((await caught(provider().refreshToken('x'))).details.reason).toBe('invalid_rapt');
  });

  it('maps other token-endpoint failures: invalid_client rejected, 5xx unavailable', async () => {
    agent.get(OAUTH).intercept({ path: '/token', method: 'POST' }).reply(401, { error: 'invalid_client', error_description: 'Unauthorized' });
    expect(await caught(provider().refreshToken('x'))).toMatchObject({ code: 'rejected', details: { status: 401, reason: 'invalid_client' } });
    agent.get(OAUTH).intercept({ path: '/token', method: 'POST' }).reply(503, 'down');
    expect((await caught(provider().refreshToken('x'))).code).toBe('unavailable');
  });

  it('revokes with a form token, and treats an already-invalid token as revoked', async () => {
    let sent: string | undefined;
    agent
      .get(OAUTH)
      .intercept({ path: '/revoke', method: 'POST' })
      .reply((opts) => {
        sent = String(opts.body);
        return { statusCode: 200, data: {} };
      });
    await provider().revokeToken('1//05-refresh');
    expect(new URLSearchParams(sent).get('token')).toBe('1//05-refresh');

    agent.get(OAUTH).intercept({ path: '/revoke', method: 'POST' }).reply(400, { error: 'invalid_token', error_description: 'Token expired or revoked' });
    await expect(provider().revokeToken('gone')).resolves.toBeUndefined();

    agent.get(OAUTH).intercept({ path: '/revoke', method: 'POST' }).reply(500, {});
    expect((await caught(provider().revokeToken('x'))).code).toBe('unavailable');
  });
});

describe('account', () => {
  const ctx = (scopes: string[] = []): ProviderContext => ({ accessToken: 'ya29.tok', zones: [{ zone: 'UTC', validFrom: 0 }], scopes, intraday: true });

  it('reads the health user id, the legacy Fitbit id and the IANA zone', async () => {
    const seen: string[] = [];
    agent
      .get(API)
      .intercept({ path: '/v4/users/me/identity', method: 'GET', headers: { authorization: 'Bearer ya29.tok' } })
      .reply(200, { name: 'users/me/identity', legacyUserId: 'ABC12D', healthUserId: '2515055256096816351' });
    agent
      .get(API)
      .intercept({ path: '/v4/users/me/settings', method: 'GET' })
      .reply(200, { name: 'users/me/settings', timeZone: 'America/New_York', utcOffset: '-18000s', distanceUnit: 'DISTANCE_UNIT_MILES' });
    const account = await provider().fetchAccount({ ...ctx(), onRequest: (e) => seen.push(e) });
    expect(account).toEqual({ providerUserId: '2515055256096816351', legacyUserId: 'ABC12D', timeZone: 'America/New_York' });
    expect(seen).toEqual(['identity', 'settings']);
  });

  it('reads the zone alone from the settings, without the identity; none without settings.readonly', async () => {
    const seen: string[] = [];
    agent.get(API).intercept({ path: '/v4/users/me/settings', method: 'GET' }).reply(200, { name: 'users/me/settings', timeZone: 'Asia/Kolkata' });
    expect(await provider().fetchTimeZone!({ ...ctx(), onRequest: (e) => seen.push(e) })).toBe('Asia/Kolkata');
    expect(seen).toEqual(['settings']);
    expect(await provider().fetchTimeZone!({ ...ctx([`${G}sleep.readonly`]), onRequest: (e) => seen.push(e) })).toBeUndefined();
    expect(seen).toEqual(['settings']);
  });

  it('works without settings.readonly (no zone), and refuses an identity without healthUserId', async () => {
    agent.get(API).intercept({ path: '/v4/users/me/identity', method: 'GET' }).reply(200, { name: 'users/me/identity', healthUserId: '42' });
    expect(await provider().fetchAccount(ctx([`${G}sleep.readonly`]))).toEqual({ providerUserId: '42' });

    agent.get(API).intercept({ path: '/v4/users/me/identity', method: 'GET' }).reply(200, { name: 'users/me/identity' });
    expect((await caught(provider().fetchAccount(ctx()))).code).toBe('bad_response');
  });
});
