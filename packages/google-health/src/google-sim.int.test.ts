import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFitbitProvider } from '@fitlamp/fitbit';
import { createFitbitSimulator, createGoogleHealthSimulator, viewDay, viewNight, type FitbitSimulator, type GoogleHealthSimulator } from '@fitlamp/simulators';
import { ProviderError, recordKey, STREAMS, type NormalizedRecord, type Provider, type ProviderContext, type StreamName, type TokenGrant } from '@fitlamp/provider';
import { createGoogleHealthProvider } from './google-health-provider.ts';
import type { GoogleHttp } from './http.ts';
import { collectPhysicalRange } from './query.ts';

// The provider end to end against the project's Google Health simulator over real HTTP. The
// Google simulator renders the same deterministic world as the Fitbit simulator, so the strongest
// check is the migration promise itself: both providers, each against its own simulator, must
// produce the same record keys and the same data (but `source` and the legacy-only fields).
// Neither simulator shares code with either provider.

const CLIENT_ID = 'fitlamp-test.apps.googleusercontent.com';
const CLIENT_SECRET = 'fitlamp-test-secret';
const GOOGLE_REDIRECT = 'http://127.0.0.1:9/oauth/google/callback';
const FITBIT_REDIRECT = 'http://127.0.0.1:9/oauth/fitbit/callback';
const NOW = '2026-11-03T15:00:00Z';
const DAYS = ['2026-10-30', '2026-10-31', '2026-11-01', '2026-11-02'];
const NY = [{ zone: 'America/New_York', validFrom: 0 }];

/** Fields only the legacy API has (docs/mapping.md, Google section). */
const LEGACY_ONLY: Partial<Record<StreamName, string[]>> = {
  sleep: ['log_id', 'main_sleep'],
  skin_temperature: ['log_type'],
  exercise: ['activity_type_id', 'log_id', 'log_type'],
};

function pkce() {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url'), state: randomBytes(8).toString('hex') };
}

/** Opens the consent page the provider's URL leads to, submits it (optionally unticking scopes), exchanges the code. */
async function connectGoogle(provider: Provider, untick: string[] = []): Promise<TokenGrant> {
  const { verifier, challenge, state } = pkce();
  const authorize = provider.authorizationUrl({ redirectUri: GOOGLE_REDIRECT, state, codeChallenge: challenge, scopes: provider.scopesFor(STREAMS) });
  const page = await fetch(authorize);
  expect(page.status).toBe(200);
  const html = await page.text();
  const form = new URLSearchParams({
    transaction_id: /name="transaction_id" value="([^"]+)"/.exec(html)?.[1] ?? '',
    user: /<option value="([^"]+)" selected/.exec(html)?.[1] ?? /<option value="([^"]+)"/.exec(html)?.[1] ?? '',
    decision: 'allow',
  });
  for (const m of html.matchAll(/name="scope" value="([^"]+)" checked/g)) if (!untick.includes(m[1]!)) form.append('scope', m[1]!);
  const consent = await fetch(new URL(new URL(authorize).pathname, authorize), { method: 'POST', body: form, redirect: 'manual' });
  expect(consent.status).toBe(302);
  const back = new URL(consent.headers.get('location')!);
  expect(back.searchParams.get('state')).toBe(state);
  return provider.exchangeCode({ code: back.searchParams.get('code')!, codeVerifier: verifier, redirectUri: GOOGLE_REDIRECT });
}

async function connectFitbit(provider: Provider): Promise<TokenGrant> {
  const { verifier, challenge, state } = pkce();
  const authorize = provider.authorizationUrl({ redirectUri: FITBIT_REDIRECT, state, codeChallenge: challenge, scopes: provider.scopesFor(STREAMS) });
  const html = await (await fetch(authorize)).text();
  const form = new URLSearchParams({
    transaction_id: /name="transaction_id" value="([^"]+)"/.exec(html)?.[1] ?? '',
    user: /<option value="([^"]+)" selected/.exec(html)?.[1] ?? '',
    decision: 'allow',
  });
  for (const m of html.matchAll(/name="scope" value="([^"]+)" checked/g)) form.append('scope', m[1]!);
  const consent = await fetch(new URL('/oauth2/authorize', authorize), { method: 'POST', body: form, redirect: 'manual' });
  const back = new URL(consent.headers.get('location')!);
  return provider.exchangeCode({ code: back.searchParams.get('code')!, codeVerifier: verifier, redirectUri: FITBIT_REDIRECT });
}

function context(grant: TokenGrant, over: Partial<ProviderContext> = {}): ProviderContext & { requests: string[] } {
  const requests: string[] = [];
  return { accessToken: grant.accessToken, zones: NY, scopes: grant.scopes, intraday: true, onRequest: (e) => requests.push(e), requests, ...over };
}

async function syncStream(provider: Provider, stream: StreamName, ctx: ProviderContext, intraday = true): Promise<NormalizedRecord[]> {
  const out: NormalizedRecord[] = [];
  for (const request of provider.planRequests(stream, DAYS, { intraday })) {
    const results = await provider.fetch(request, ctx);
    expect(results.map((r) => r.day)).toEqual(request.days);
    for (const r of results) out.push(...r.records);
  }
  return out;
}

function comparable(records: NormalizedRecord[], legacyOnly: readonly string[] = []) {
  return records
    .map((r) => {
      const data: Record<string, unknown> = { ...r.event.data };
      delete data.source;
      for (const k of legacyOnly) delete data[k];
      return { key: recordKey('p1', r), day: r.day, duration: r.event.duration, data };
    })
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

async function caught(p: Promise<unknown>): Promise<ProviderError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ProviderError);
    return err as ProviderError;
  }
  throw new Error('expected a ProviderError');
}

describe('google-health provider against the Google Health simulator', () => {
  let fitbitSim: FitbitSimulator;
  let googleSim: GoogleHealthSimulator;
  let google: Provider;
  let fitbit: Provider;
  let grant: TokenGrant;
  let fitbitGrant: TokenGrant;
  let googleUrl: string;

  beforeAll(async () => {
    fitbitSim = createFitbitSimulator({
      clientId: 'FLTEST',
      clientSecret: CLIENT_SECRET,
      redirectUris: [FITBIT_REDIRECT],
      appName: 'fitlamp test',
      seed: 'fitlamp-google-int',
      startAt: NOW,
      users: [{ preset: 'new-york' }],
    });
    googleSim = createGoogleHealthSimulator({
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      redirectUris: [GOOGLE_REDIRECT],
      appName: 'fitlamp test',
      world: fitbitSim.world,
      clock: fitbitSim.clock,
      testingMode: true,
      // A phone recording steps too: `list` would count them twice, `reconcile` must not.
      phoneUsers: [fitbitSim.world.users[0]!.id],
    });
    const fitbitUrl = (await fitbitSim.app.listen({ port: 0, host: '127.0.0.1' })).replace(/\/$/, '');
    googleUrl = (await googleSim.app.listen({ port: 0, host: '127.0.0.1' })).replace(/\/$/, '');
    fitbit = createFitbitProvider({ clientId: 'FLTEST', clientSecret: CLIENT_SECRET, apiUrl: fitbitUrl, authorizeUrl: `${fitbitUrl}/oauth2/authorize`, timeoutMs: 5_000 });
    google = createGoogleHealthProvider({
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      authorizeUrl: `${googleUrl}/o/oauth2/v2/auth`,
      tokenUrl: `${googleUrl}/token`,
      revokeUrl: `${googleUrl}/revoke`,
      apiUrl: googleUrl,
      timeoutMs: 5_000,
    });
    fitbitGrant = await connectFitbit(fitbit);
    grant = await connectGoogle(google);
  });
  afterAll(async () => {
    await googleSim?.app.close();
    await fitbitSim?.app.close();
  });

  const user = () => fitbitSim.world.users[0]!;

  it('connects with every scope, a 7-day refresh token (Testing), and reads identity and zone', async () => {
    expect(google.streamsMissingScope(grant.scopes, STREAMS)).toEqual([]);
    expect(grant.refreshToken).toBeDefined();
    expect(grant.refreshTokenExpiresAt! - Date.now()).toBeGreaterThan(6.9 * 86_400_000);
    const ctx = context(grant);
    expect(await google.fetchAccount(ctx)).toEqual({ providerUserId: googleSim.healthUserId(user().id), legacyUserId: user().id, timeZone: 'America/New_York' });
    expect(ctx.requests).toEqual(['identity', 'settings']);
  });

  const SAME = STREAMS.filter((s) => s !== 'device' && s !== 'heart_rate' && s !== 'sleep');
  it.each(SAME)('%s: the same records as the Fitbit provider gives for the same world', async (stream) => {
    for (const intraday of stream === 'steps' ? [true, false] : [true]) {
      const f = await syncStream(fitbit, stream, context(fitbitGrant, { intraday }), intraday);
      const g = await syncStream(google, stream, context(grant, { intraday }), intraday);
      expect(f.length).toBeGreaterThan(0);
      expect(g.every((r) => r.event.data.source === 'com.google.health')).toBe(true);
      expect(comparable(g)).toEqual(comparable(f, LEGACY_ONLY[stream]));
    }
  });

  it('heart rate: the same minute keys; values within 1 bpm (samples averaged vs the legacy 1-minute value)', async () => {
    const f = comparable(await syncStream(fitbit, 'heart_rate', context(fitbitGrant)));
    const g = comparable(await syncStream(google, 'heart_rate', context(grant)));
    expect(g.map((r) => r.key)).toEqual(f.map((r) => r.key));
    g.forEach((r, i) => expect(Math.abs((r.data.value as number) - (f[i]!.data.value as number))).toBeLessThanOrEqual(1));
    // …and within 1 bpm of the world's minute truth (the legacy value is exactly it).
    for (const day of DAYS) {
      const view = viewDay(fitbitSim.world, user(), day, fitbitSim.clock.now());
      for (const r of g.filter((x) => x.day === day)) {
        const truth = view.day!.heartRate[(Number(r.key.split('|')[2]) - view.day!.start) / 60_000];
        expect(Math.abs((r.data.value as number) - truth!)).toBeLessThanOrEqual(1);
      }
    }
  });

  it('sleep: the same records as the Fitbit provider, except the DST night, where Google matches the world and Fitbit does not', async () => {
    const f = comparable(await syncStream(fitbit, 'sleep', context(fitbitGrant)), LEGACY_ONLY.sleep);
    const gRecords = await syncStream(google, 'sleep', context(grant));
    const g = comparable(gRecords);
    const fallBack = '2026-11-01';
    expect(g.filter((r) => r.day !== fallBack)).toEqual(f.filter((r) => r.day !== fallBack));
    // On the fall-back night a short wake in the repeated 01:xx hour is ambiguous in the legacy
    // floating times; Google's instants are not. Every short wake of the world's truth is a wake
    // piece exactly where the truth puts it, and the pieces tile each session.
    const night = viewNight(fitbitSim.world, user(), fallBack, fitbitSim.clock.now());
    const pieces = gRecords.filter((r) => r.day === fallBack).map((r) => ({ start: r.event.timestamp - r.event.duration!, end: r.event.timestamp, stage: r.event.data.stage }));
    for (const { session } of night.sessions) {
      const mine = pieces.filter((p) => p.start >= session.start && p.end <= session.end);
      expect(mine[0]!.start).toBe(session.start);
      expect(mine.at(-1)!.end).toBe(session.end);
      for (let i = 1; i < mine.length; i++) expect(mine[i]!.start).toBe(mine[i - 1]!.end);
      for (const w of session.shortWakes) expect(mine).toContainEqual({ start: w.start, end: w.end, stage: 'wake' });
    }
  });

  it('paging through list (two sources: tied timestamps at every page boundary) loses and repeats nothing', async () => {
    const http: GoogleHttp = { apiUrl: googleUrl, tokenUrl: '', revokeUrl: '', timeoutMs: 5_000 };
    const q = (pageSize: number) => ({
      type: 'steps',
      method: 'list' as const,
      field: 'steps.interval.start_time',
      pageSize,
      timeOf: (p: unknown) => Date.parse((p as { steps: { interval: { startTime: string } } }).steps.interval.startTime),
    });
    const start = Date.parse('2026-11-01T04:00:00Z');
    const end = Date.parse('2026-11-02T05:00:00Z');
    const ctx = context(grant);
    const whole = await collectPhysicalRange(http, ctx, q(10_000), start, end);
    expect(ctx.requests).toHaveLength(1);
    const ids = (pts: unknown[]) => pts.map((p) => JSON.stringify(p)).sort();
    const starts = whole.map(q(1).timeOf);
    expect(new Set(starts).size).toBeLessThan(starts.length); // phone and watch share minutes: ties exist
    const paged = await collectPhysicalRange(http, context(grant), q(101), start, end);
    expect(ids(paged)).toEqual(ids(whole));

    // The simulator reproduces the documented bug: following its cursor loses tied points.
    const filter = `steps.interval.start_time >= "${new Date(start).toISOString()}" AND steps.interval.start_time < "${new Date(end).toISOString()}"`;
    const followed: unknown[] = [];
    let token = '';
    do {
      const res = await fetch(`${googleUrl}/v4/users/me/dataTypes/steps/dataPoints?filter=${encodeURIComponent(filter)}&pageSize=101${token ? `&pageToken=${encodeURIComponent(token)}` : ''}`, {
        headers: { authorization: `Bearer ${grant.accessToken}` },
      });
      const body = (await res.json()) as { dataPoints?: unknown[]; nextPageToken?: string };
      followed.push(...(body.dataPoints ?? []));
      token = body.nextPageToken ?? '';
    } while (token);
    expect(followed.length).toBeLessThan(whole.length);
  });

  it('devices: the same last sync and battery as the Fitbit simulator reports', async () => {
    const f = fitbit.normalizeDevices(await fitbit.fetchDevices(context(fitbitGrant)), NY);
    const g = google.normalizeDevices(await google.fetchDevices(context(grant)), NY);
    const strip = (rs: NormalizedRecord[]) => rs.map((r) => ({ timestamp: r.event.timestamp, value: r.event.data.value, battery: r.event.data.battery, type: r.event.data.device_type }));
    expect(strip(g)).toEqual(strip(f));
  });

  it('a partial consent: unticked sleep is named missing and asked nothing', async () => {
    const partial = await connectGoogle(google, ['https://www.googleapis.com/auth/googlehealth.sleep.readonly']);
    expect(google.streamsMissingScope(partial.scopes, STREAMS)).toEqual(['sleep']);
    const ctx = context(partial);
    expect((await caught(google.fetch({ stream: 'sleep', days: DAYS, cost: 1, intraday: false }, ctx))).code).toBe('scope_missing');
    // A token without the scope that asks anyway: Google's 403 maps to scope_missing too.
    expect((await caught(google.fetch({ stream: 'sleep', days: DAYS, cost: 1, intraday: false }, { ...ctx, scopes: [] }))).code).toBe('scope_missing');
  });

  it('refresh keeps working without a new refresh token; an unknown one is invalid_grant', async () => {
    const next = await google.refreshToken(grant.refreshToken!);
    expect(next.refreshToken).toBeUndefined();
    await expect(google.fetchAccount(context(next))).resolves.toMatchObject({ providerUserId: googleSim.healthUserId(user().id) });
    const again = await google.refreshToken(grant.refreshToken!);
    expect(again.accessToken).not.toBe(next.accessToken);
    const err = await caught(google.refreshToken('1//not-a-token'));
    expect(err.code).toBe('invalid_grant');
    grant = { ...again, refreshToken: grant.refreshToken! };
  });

  it('an unknown access token → token_expired', async () => {
    expect((await caught(google.fetchAccount(context(grant, { accessToken: 'ya29.unknown' })))).code).toBe('token_expired');
  });

  it('revoking kills the grant; revoking again still succeeds', async () => {
    const victim = await connectGoogle(google);
    await google.revokeToken(victim.refreshToken!);
    expect((await caught(google.fetchAccount(context(victim)))).code).toBe('token_expired');
    expect((await caught(google.refreshToken(victim.refreshToken!))).code).toBe('invalid_grant');
    await expect(google.revokeToken(victim.refreshToken!)).resolves.toBeUndefined();
  });
});

describe('rate limit against the Google Health simulator', () => {
  /** Fetches against a simulator allowing 3 requests a minute until it answers 429. */
  async function untilRateLimited(options: { retryAfterHeader?: boolean; onSimulatorClock?: boolean } = {}) {
    const sim = createGoogleHealthSimulator({
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      redirectUris: [GOOGLE_REDIRECT],
      appName: 'fitlamp test',
      seed: 'fitlamp-google-rate',
      startAt: NOW,
      users: [{ preset: 'new-york' }],
      rateLimitPerMinute: 3,
      ...(options.retryAfterHeader ? { retryAfterHeader: true } : {}),
    });
    const url = (await sim.app.listen({ port: 0, host: '127.0.0.1' })).replace(/\/$/, '');
    try {
      const provider = createGoogleHealthProvider({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, authorizeUrl: `${url}/o/oauth2/v2/auth`, tokenUrl: `${url}/token`, revokeUrl: `${url}/revoke`, apiUrl: url, timeoutMs: 5_000 });
      const g = await connectGoogle(provider);
      const rates: Array<{ remaining: number; resetAt: number }> = [];
      const ctx = context(g, { onRate: (r) => rates.push(r), ...(options.onSimulatorClock ? { now: () => sim.clock.now() } : {}) });
      let err: ProviderError | undefined;
      for (let i = 0; i < 10 && !err; i++) {
        try {
          await provider.fetch({ stream: 'hrv', days: ['2026-11-01'], cost: 1, intraday: false }, ctx);
        } catch (e) {
          err = e as ProviderError;
        }
      }
      return { err, rates };
    } finally {
      await sim.app.close();
    }
  }

  it('answers rate_limited with a reset within the minute, and reports the spent budget', async () => {
    const { err, rates } = await untilRateLimited();
    expect(err).toBeInstanceOf(ProviderError);
    expect(err!.code).toBe('rate_limited');
    expect(err!.details.resetAt! - Date.now()).toBeLessThanOrEqual(61_000);
    expect(rates.at(-1)).toEqual({ remaining: 0, resetAt: err!.details.resetAt });
  });

  it('counts the reset from Retry-After on the caller’s clock, which runs at the simulator’s date', async () => {
    const { err, rates } = await untilRateLimited({ retryAfterHeader: true, onSimulatorClock: true });
    expect(err?.code).toBe('rate_limited');
    // The simulator's clock is frozen at NOW: its three requests share one instant, so its
    // rolling minute frees up 60 s later, which it says as Retry-After: 60.
    expect(err!.details.resetAt).toBe(Date.parse(NOW) + 60_000);
    expect(rates.at(-1)).toEqual({ remaining: 0, resetAt: Date.parse(NOW) + 60_000 });
  });
});
