import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MockAgent } from 'undici';
import { ProviderError, type ProviderContext, type RateInfo } from '@fitlamp/provider';
import { createFitbitProvider } from './fitbit-provider.ts';

const API = 'https://api.fitbit.test';
let agent: MockAgent;

beforeEach(() => {
  agent = new MockAgent();
  agent.disableNetConnect();
});
afterEach(async () => {
  await agent.close();
});

function provider() {
  return createFitbitProvider({ clientId: '23ABCD', clientSecret: 's3cret', apiUrl: API, dispatcher: agent });
}

const ctx = (over: Partial<ProviderContext> = {}): ProviderContext => ({
  accessToken: 'access-abc',
  zones: [{ zone: 'America/New_York', validFrom: 0 }],
  scopes: [],
  intraday: true,
  ...over,
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
  it('asks for the scope each stream needs, plus profile, once each', () => {
    const p = provider();
    expect(p.scopesFor(['steps', 'exercise', 'hrv', 'heart_rate', 'device']).sort()).toEqual(
      ['activity', 'heartrate', 'profile', 'settings'],
    );
  });

  it('names the streams whose scope the participant unticked', () => {
    expect(provider().streamsMissingScope(['activity', 'profile'], ['steps', 'sleep', 'spo2', 'exercise'])).toEqual(['sleep', 'spo2']);
  });

  it('lets the configuration override the scopes', () => {
    const p = createFitbitProvider({ clientId: 'x', clientSecret: 'y', scopes: ['activity', 'sleep'] });
    expect(p.scopesFor(['spo2'])).toEqual(['activity', 'sleep']);
  });
});

describe('authorization URL', () => {
  it('carries the code flow, PKCE S256 explicitly, space-separated scopes, and asks for consent every time', () => {
    const url = new URL(
      createFitbitProvider({ clientId: '23ABCD', clientSecret: 's' }).authorizationUrl({
        redirectUri: 'https://fitlamp.example/oauth/fitbit/callback',
        state: 'st4te',
        codeChallenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
        scopes: ['activity', 'sleep'],
      }),
    );
    expect(url.origin + url.pathname).toBe('https://www.fitbit.com/oauth2/authorize');
    expect(Object.fromEntries(url.searchParams)).toEqual({
      response_type: 'code',
      client_id: '23ABCD',
      redirect_uri: 'https://fitlamp.example/oauth/fitbit/callback',
      scope: 'activity sleep',
      state: 'st4te',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
      prompt: 'consent',
    });
    expect(url.search).toContain('scope=activity+sleep');
  });
});

describe('token endpoint', () => {
  const grant = {
    access_token: 'eyJhbGciOiJIUzI1NiJ9.new',
    expires_in: 28800,
    refresh_token: 'c643a63c072f0f05478e9d18b991db80ef6061e4f8e6c822d83fed53e5fafdd7',
    scope: 'heartrate activity sleep',
    token_type: 'Bearer',
    user_id: '26FWFL',
  };

  it('exchanges a code with Basic auth and a form body holding the PKCE verifier', async () => {
    let seen: { headers: Record<string, string>; body: string } | undefined;
    agent
      .get(API)
      .intercept({ path: '/oauth2/token', method: 'POST' })
      .reply((opts) => {
        seen = { headers: opts.headers as Record<string, string>, body: String(opts.body) };
        return { statusCode: 200, data: grant };
      });
    const before = Date.now();
    const result = await provider().exchangeCode({ code: 'c0de', codeVerifier: 'v'.repeat(43), redirectUri: 'https://x/cb' });
    expect(seen!.headers.authorization).toBe(`Basic ${Buffer.from('23ABCD:s3cret').toString('base64')}`);
    expect(seen!.headers['content-type']).toBe('application/x-www-form-urlencoded');
    const form = Object.fromEntries(new URLSearchParams(seen!.body));
    expect(form).toMatchObject({ grant_type: 'authorization_code', code: 'c0de', redirect_uri: 'https://x/cb', code_verifier: 'v'.repeat(43) });
    expect(result).toMatchObject({
      accessToken: grant.access_token,
      refreshToken: grant.refresh_token,
      scopes: ['heartrate', 'activity', 'sleep'],
      providerUserId: '26FWFL',
    });
    expect(result.accessTokenExpiresAt).toBeGreaterThanOrEqual(before + 28_800_000);
    expect(result.accessTokenExpiresAt).toBeLessThanOrEqual(Date.now() + 28_800_000);
  });

  it('refreshes with grant_type=refresh_token and returns the rotated refresh token', async () => {
    let form: Record<string, string> = {};
    agent
      .get(API)
      .intercept({ path: '/oauth2/token', method: 'POST' })
      .reply((opts) => {
        form = Object.fromEntries(new URLSearchParams(String(opts.body)));
        return { statusCode: 200, data: { ...grant, refresh_token: 'rotated' } };
      });
    const result = await provider().refreshToken('old-refresh');
    expect(form).toEqual({ grant_type: 'refresh_token', refresh_token: 'old-refresh' });
    expect(result.refreshToken).toBe('rotated');
  });

  it('maps a spent refresh token to invalid_grant without echoing the token', async () => {
    agent
      .get(API)
      .intercept({ path: '/oauth2/token', method: 'POST' })
      .reply(400, {
        errors: [{ errorType: 'invalid_grant', message: 'Refresh token invalid: old-refresh. Visit https://dev.fitbit.com/docs/oauth2 for more information.' }],
        success: false,
      });
    const err = await caught(provider().refreshToken('old-refresh'));
    expect(err.code).toBe('invalid_grant');
    expect(JSON.stringify({ m: err.message, d: err.details })).not.toContain('old-refresh');
  });

  it('maps a 5xx and a dropped connection to unavailable', async () => {
    agent.get(API).intercept({ path: '/oauth2/token', method: 'POST' }).reply(503, 'busy');
    expect((await caught(provider().refreshToken('r'))).code).toBe('unavailable');
    agent.get(API).intercept({ path: '/oauth2/token', method: 'POST' }).replyWithError(new Error('socket hang up'));
    expect((await caught(provider().refreshToken('r'))).code).toBe('unavailable');
  });

  it('maps a 410 from the switched-off OAuth endpoints to gone', async () => {
    agent.get(API).intercept({ path: '/oauth2/token', method: 'POST' }).reply(410, { errors: [{ errorType: 'gone' }] });
    expect((await caught(provider().exchangeCode({ code: 'c', codeVerifier: 'v', redirectUri: 'r' }))).code).toBe('gone');
  });

  it('refuses a 200 without an access token', async () => {
    agent.get(API).intercept({ path: '/oauth2/token', method: 'POST' }).reply(200, { token_type: 'Bearer' });
    expect((await caught(provider().refreshToken('r'))).code).toBe('bad_response');
  });
});

describe('revoke', () => {
  it('posts the token with Basic auth', async () => {
    let seen: { auth: string; body: string } | undefined;
    agent
      .get(API)
      .intercept({ path: '/oauth2/revoke', method: 'POST' })
      .reply((opts) => {
        seen = { auth: (opts.headers as Record<string, string>).authorization!, body: String(opts.body) };
        return { statusCode: 200, data: {} };
      });
    await provider().revokeToken('tok');
    expect(seen!.auth).toMatch(/^Basic /);
    expect(seen!.body).toBe('token=tok');
  });

  it('treats a token that is already invalid as revoked', async () => {
    agent
      .get(API)
      .intercept({ path: '/oauth2/revoke', method: 'POST' })
      .reply(401, { errors: [{ errorType: 'invalid_token', message: 'Access token invalid: tok.' }], success: false });
    await expect(provider().revokeToken('tok')).resolves.toBeUndefined();
    agent.get(API).intercept({ path: '/oauth2/revoke', method: 'POST' }).reply(400, { errors: [{ errorType: 'invalid_grant' }] });
    await expect(provider().revokeToken('tok')).resolves.toBeUndefined();
  });

  it('still fails on a server error, so the caller retries', async () => {
    agent.get(API).intercept({ path: '/oauth2/revoke', method: 'POST' }).reply(500, '');
    expect((await caught(provider().revokeToken('tok'))).code).toBe('unavailable');
  });
});

describe('profile and data-call errors', () => {
  it('reads the encoded id and zone with the bearer token, and reports the budget', async () => {
    let auth = '';
    agent
      .get(API)
      .intercept({ path: '/1/user/-/profile.json', method: 'GET' })
      .reply((opts) => {
        auth = (opts.headers as Record<string, string>).authorization!;
        return { statusCode: 200, data: { user: { encodedId: '26FWFL', timezone: 'America/Los_Angeles', offsetFromUTCMillis: -25200000 } } };
      });
    const rates: RateInfo[] = [];
    const requests: string[] = [];
    const account = await provider().fetchAccount(ctx({ onRate: (r) => rates.push(r), onRequest: (e) => requests.push(e) }));
    expect(auth).toBe('Bearer access-abc');
    expect(account).toEqual({ providerUserId: '26FWFL', timeZone: 'America/Los_Angeles' });
    expect(requests).toEqual(['profile']);
    expect(rates).toEqual([]); // no rate headers on this reply
  });

  it('maps 401, 410, 403 insufficient_scope and 429 with the reset from Fitbit-Rate-Limit-Reset', async () => {
    const pool = agent.get(API);
    pool
      .intercept({ path: '/1/user/-/profile.json' })
      .reply(401, { errors: [{ errorType: 'expired_token', message: 'Access token expired: access-abc.' }], success: false });
    const expired = await caught(provider().fetchAccount(ctx()));
    expect(expired.code).toBe('token_expired');
    expect(JSON.stringify({ m: expired.message, d: expired.details })).not.toContain('access-abc');

    pool.intercept({ path: '/1/user/-/profile.json' }).reply(410, { errors: [{ errorType: 'gone' }] });
    expect((await caught(provider().fetchAccount(ctx()))).code).toBe('gone');

    pool.intercept({ path: '/1/user/-/profile.json' }).reply(403, { errors: [{ errorType: 'insufficient_scope' }] });
    expect((await caught(provider().fetchAccount(ctx()))).code).toBe('scope_missing');

    pool
      .intercept({ path: '/1/user/-/profile.json' })
      .reply(429, { errors: [{ errorType: 'system', fieldName: 'n/a', message: 'Too Many Requests' }], success: false }, {
        headers: { 'fitbit-rate-limit-limit': '150', 'fitbit-rate-limit-remaining': '0', 'fitbit-rate-limit-reset': '1200', 'retry-after': '5' },
      });
    const rates: RateInfo[] = [];
    const before = Date.now();
    const limited = await caught(provider().fetchAccount(ctx({ onRate: (r) => rates.push(r) })));
    expect(limited.code).toBe('rate_limited');
    expect(limited.details.resetAt).toBeGreaterThanOrEqual(before + 1_200_000);
    expect(limited.details.resetAt).toBeLessThanOrEqual(Date.now() + 1_200_000);
    expect(rates).toHaveLength(1);
    expect(rates[0]).toMatchObject({ limit: 150, remaining: 0 });
  });
});
