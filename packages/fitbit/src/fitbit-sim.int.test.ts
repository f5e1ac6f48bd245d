import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFitbitSimulator, lastSync, viewDay, viewNight, type FitbitSimulator } from '@fitlamp/simulators';
import { ProviderError, STREAMS, type NormalizedRecord, type Provider, type ProviderContext, type RateInfo, type TokenGrant } from '@fitlamp/provider';
import { createFitbitProvider } from './fitbit-provider.ts';

// The provider end to end against the project's Fitbit simulator over real HTTP: consent form,
// code exchange, refresh rotation, every stream, 401/403/410/429. Expected values come from the
// simulator's world (its ground truth), never from fitlamp's own parsing.

const CLIENT_ID = 'FLTEST';
const CLIENT_SECRET = 'fitlamp-test-secret';
const REDIRECT_URI = 'http://127.0.0.1:9/oauth/fitbit/callback';
const NOW = '2026-11-03T15:00:00Z';
const DAYS = ['2026-10-30', '2026-10-31', '2026-11-01', '2026-11-02'];
const NY = [{ zone: 'America/New_York', validFrom: 0 }];

async function start(options: { rateLimitPerHour?: number } = {}): Promise<{ sim: FitbitSimulator; url: string; provider: Provider }> {
  const sim = createFitbitSimulator({
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    redirectUris: [REDIRECT_URI],
    appName: 'fitlamp test',
    seed: 'fitlamp-fitbit-int',
    startAt: NOW,
    users: [{ preset: 'new-york' }],
    ...options,
  });
  const url = (await sim.app.listen({ port: 0, host: '127.0.0.1' })).replace(/\/$/, '');
  const provider = createFitbitProvider({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, apiUrl: url, authorizeUrl: `${url}/oauth2/authorize`, timeoutMs: 5_000 });
  return { sim, url, provider };
}

/** Opens the consent page the provider's URL leads to, submits it with Allow, and exchanges the code. */
async function connect(provider: Provider): Promise<TokenGrant> {
  const verifier = randomBytes(32).toString('base64url');
  const state = randomBytes(8).toString('hex');
  const authorize = provider.authorizationUrl({
    redirectUri: REDIRECT_URI,
    state,
    codeChallenge: createHash('sha256').update(verifier).digest('base64url'),
    scopes: provider.scopesFor(STREAMS),
  });
  const page = await fetch(authorize);
  expect(page.status).toBe(200);
  const html = await page.text();
  const tx = /name="transaction_id" value="([^"]+)"/.exec(html)?.[1];
  const user = /<option value="([^"]+)" selected/.exec(html)?.[1];
  const form = new URLSearchParams({ transaction_id: tx ?? '', user: user ?? '', decision: 'allow' });
  for (const m of html.matchAll(/name="scope" value="([^"]+)" checked/g)) form.append('scope', m[1]!);
  const consent = await fetch(new URL('/oauth2/authorize', authorize), { method: 'POST', body: form, redirect: 'manual' });
  expect(consent.status).toBe(302);
  const back = new URL(consent.headers.get('location')!);
  expect(back.searchParams.get('state')).toBe(state);
  return provider.exchangeCode({ code: back.searchParams.get('code')!, codeVerifier: verifier, redirectUri: REDIRECT_URI });
}

function context(grant: TokenGrant, over: Partial<ProviderContext> = {}): ProviderContext & { requests: string[]; rates: RateInfo[] } {
  const requests: string[] = [];
  const rates: RateInfo[] = [];
  return {
    accessToken: grant.accessToken,
    zones: NY,
    scopes: grant.scopes,
    intraday: true,
    onRequest: (e) => requests.push(e),
    onRate: (r) => rates.push(r),
    requests,
    rates,
    ...over,
  };
}

async function syncStream(provider: Provider, stream: (typeof STREAMS)[number], ctx: ProviderContext, intraday = true): Promise<Map<string, NormalizedRecord[]>> {
  const out = new Map<string, NormalizedRecord[]>();
  for (const request of provider.planRequests(stream, DAYS, { intraday })) {
    for (const result of await provider.fetch(request, ctx)) out.set(result.day, result.records);
  }
  expect([...out.keys()]).toEqual(DAYS);
  return out;
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

describe('fitbit provider against the Fitbit simulator', () => {
  let sim: FitbitSimulator;
  let url: string;
  let provider: Provider;
  let grant: TokenGrant;

  beforeAll(async () => {
    ({ sim, url, provider } = await start());
    grant = await connect(provider);
  });
  afterAll(async () => {
    await sim.app.close();
  });

  const user = () => sim.world.users[0]!;
  const now = () => sim.clock.now();

  it('connects through the consent form and reads the account', async () => {
    expect(grant.providerUserId).toBe(user().id);
    expect(provider.streamsMissingScope(grant.scopes, STREAMS)).toEqual([]);
    expect(grant.accessTokenExpiresAt - Date.now()).toBeGreaterThan(28_700_000);
    const ctx = context(grant);
    expect(await provider.fetchAccount(ctx)).toEqual({ providerUserId: user().id, timeZone: 'America/New_York' });
    expect(ctx.requests).toEqual(['profile']);
    expect(ctx.rates[0]).toMatchObject({ limit: 150 });
  });

  it('steps and heart rate land on the true UTC minutes, DST day included, and the minutes sum to the daily total', async () => {
    const ctx = context(grant);
    const steps = await syncStream(provider, 'steps', ctx);
    const heart = await syncStream(provider, 'heart_rate', ctx);
    const daily = await syncStream(provider, 'steps', ctx, false);
    expect(ctx.requests.filter((r) => r === 'steps-intraday')).toHaveLength(DAYS.length);
    expect(ctx.requests.filter((r) => r === 'steps-daily')).toHaveLength(1);

    for (const day of DAYS) {
      const view = viewDay(sim.world, user(), day, now());
      const truth = view.day!;
      const expectedSteps: Array<[number, number]> = [];
      const expectedHeart: Array<[number, number]> = [];
      for (let i = 0; i < view.visibleMinutes; i++) {
        if ((truth.steps[i] ?? 0) > 0) expectedSteps.push([truth.start + i * 60_000, truth.steps[i]!]);
        const bpm = truth.heartRate[i];
        if (bpm !== null && bpm !== undefined) expectedHeart.push([truth.start + i * 60_000, bpm]);
      }
      expect(steps.get(day)!.map((r) => [r.event.timestamp, r.event.data.value])).toEqual(expectedSteps);
      expect(heart.get(day)!.map((r) => [r.event.timestamp, r.event.data.value])).toEqual(expectedHeart);
      const total = steps.get(day)!.reduce((s, r) => s + (r.event.data.value as number), 0);
      expect(daily.get(day)!.map((r) => r.event.data.value)).toEqual(total > 0 ? [total] : []);
    }
    // 2026-11-01 is 25 hours long in New York: the repeated hour is there, in order.
    const dst = viewDay(sim.world, user(), '2026-11-01', now());
    expect((dst.end - dst.start) / 3_600_000).toBe(25);
    expect(heart.get('2026-11-01')!.some((r) => r.event.timestamp >= Date.parse('2026-11-01T06:00:00Z') && r.event.timestamp < Date.parse('2026-11-01T07:00:00Z'))).toBe(true);
  });

  it('sleep: one request for the range, no overlaps, and each log’s in_sleep total matches its minutesAsleep', async () => {
    const ctx = context(grant);
    const sleep = await syncStream(provider, 'sleep', ctx);
    expect(ctx.requests).toEqual(['sleep-range']);
    const raw = (await (await fetch(`${url}/1.2/user/-/sleep/date/${DAYS[0]}/${DAYS[DAYS.length - 1]}.json`, { headers: { authorization: `Bearer ${grant.accessToken}` } })).json()) as {
      sleep: Array<{ logId: number; minutesAsleep: number; minutesAwake: number; dateOfSleep: string; levels: { shortData?: unknown[] } }>;
    };
    const logs = raw.sleep.filter((l) => DAYS.includes(l.dateOfSleep));
    expect(logs.length).toBeGreaterThan(0);
    expect(logs.some((l) => (l.levels.shortData?.length ?? 0) > 0)).toBe(true);
    const all = [...sleep.values()].flat();
    for (const log of logs) {
      const mine = all.filter((r) => r.event.data.log_id === log.logId);
      const sum = (rep: string) => mine.filter((r) => r.event.data.representation === rep).reduce((s, r) => s + r.event.duration!, 0);
      // Fitbit's minutes are rounded from 30-second epochs.
      expect(Math.abs(sum('in_sleep') - log.minutesAsleep * 60_000)).toBeLessThanOrEqual(60_000);
      expect(Math.abs(sum('in_awake') - log.minutesAwake * 60_000)).toBeLessThanOrEqual(60_000);
      expect(mine.every((r) => r.day === log.dateOfSleep)).toBe(true);
    }
    const spans = all.map((r) => [r.event.timestamp - r.event.duration!, r.event.timestamp] as const).sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < spans.length; i++) expect(spans[i]![0]).toBeGreaterThanOrEqual(spans[i - 1]![1]);
  });

  it('nightly metrics, resting heart rate, AZM, exercise and devices match the simulated world', async () => {
    const ctx = context(grant);
    const nightly = {
      spo2: await syncStream(provider, 'spo2', ctx),
      hrv: await syncStream(provider, 'hrv', ctx),
      breathing_rate: await syncStream(provider, 'breathing_rate', ctx),
      skin_temperature: await syncStream(provider, 'skin_temperature', ctx),
    };
    for (const day of DAYS) {
      const summary = viewNight(sim.world, user(), day, now()).summary;
      expect(nightly.spo2.get(day)!.map((r) => r.event.data.value)).toEqual(summary?.spo2 ? [summary.spo2.avg] : []);
      expect(nightly.hrv.get(day)!.map((r) => [r.event.sensor, r.event.data.value])).toEqual(summary?.hrv ? [['lamp.heartratevariability_rmssd', summary.hrv.dailyRmssd]] : []);
      expect(nightly.breathing_rate.get(day)!.map((r) => r.event.data.value)).toEqual(summary?.breathingRate != null ? [summary.breathingRate] : []);
      expect(nightly.skin_temperature.get(day)!.map((r) => r.event.data.value)).toEqual(summary?.skinTempRelative != null ? [summary.skinTempRelative] : []);
    }

    const resting = await syncStream(provider, 'resting_heart_rate', ctx);
    const azm = await syncStream(provider, 'active_zone_minutes', ctx);
    const exercise = await syncStream(provider, 'exercise', ctx);
    for (const day of DAYS) {
      const view = viewDay(sim.world, user(), day, now());
      const rhr = view.complete ? view.day?.restingHeartRate : null;
      expect(resting.get(day)!.map((r) => r.event.data.value)).toEqual(rhr == null ? [] : [rhr]);
      const visibleEnd = view.start + view.visibleMinutes * 60_000;
      const truth = (view.day?.exercises ?? []).filter((e) => e.end <= visibleEnd);
      expect(exercise.get(day)!.map((r) => [String(r.event.data.log_id), r.event.timestamp, r.event.data.type])).toEqual(truth.map((e) => [String(e.id), e.end, e.kind]));
      for (const r of azm.get(day)!) expect(r.event.data.value).toBeGreaterThan(0);
    }
    expect(ctx.requests.filter((r) => r === 'activities-list').length).toBeGreaterThanOrEqual(1);

    const devices = await provider.fetchDevices(ctx);
    expect(devices.map((d) => d.lastSyncAt)).toEqual(user().devices.map(() => lastSync(sim.world, user(), now())));
    const events = provider.normalizeDevices(devices, NY);
    expect(events[0]!.event).toMatchObject({ sensor: 'lamp.wearable_device', data: { unit: '%', source: 'com.fitbit.webapi' } });
  });

  it('intraday refused → intraday_forbidden; the daily plan still works', async () => {
    sim.setIntradayAccess(false);
    try {
      const ctx = context(grant);
      const [first] = provider.planRequests('steps', ['2026-11-02'], { intraday: true });
      expect((await caught(provider.fetch(first!, ctx))).code).toBe('intraday_forbidden');
      const daily = await syncStream(provider, 'steps', context(grant, { intraday: false }), false);
      expect(daily.get('2026-11-02')!.length).toBeLessThanOrEqual(1);
    } finally {
      sim.setIntradayAccess(true);
    }
  });

  it('rotates refresh tokens: the new pair works, the spent one is invalid_grant once the new token is used', async () => {
    const next = await provider.refreshToken(grant.refreshToken!);
    expect(next.refreshToken).toBeDefined();
    expect(next.refreshToken).not.toBe(grant.refreshToken);
    await provider.fetchAccount(context(next));
    const err = await caught(provider.refreshToken(grant.refreshToken!));
    expect(err.code).toBe('invalid_grant');
    expect(err.message).not.toContain(grant.refreshToken!);
    grant = next;
  });

  it('an expired access token → token_expired, fixed by a refresh', async () => {
    sim.clock.advance(8 * 3_600_000 + 60_000);
    const err = await caught(provider.fetchAccount(context(grant)));
    expect(err.code).toBe('token_expired');
    expect(err.message).not.toContain(grant.accessToken);
    grant = await provider.refreshToken(grant.refreshToken!);
    await expect(provider.fetchAccount(context(grant))).resolves.toMatchObject({ providerUserId: user().id });
  });

  it('revoking leaves the token unusable, and revoking again still succeeds', async () => {
    await provider.revokeToken(grant.accessToken);
    expect((await caught(provider.fetchAccount(context(grant)))).code).toBe('token_expired');
    await expect(provider.revokeToken(grant.accessToken)).resolves.toBeUndefined();
    expect((await caught(provider.refreshToken(grant.refreshToken!))).code).toBe('invalid_grant');
  });

  it('after the shutdown every call answers gone', async () => {
    sim.setGone(true);
    try {
      expect((await caught(provider.fetchAccount(context(grant)))).code).toBe('gone');
      expect((await caught(provider.refreshToken('anything'))).code).toBe('gone');
    } finally {
      sim.setGone(false);
    }
  });
});

describe('rate limit against the simulator', () => {
  it('answers rate_limited with the reset at the top of the simulated hour, reporting the budget on the way', async () => {
    const { sim, provider } = await start({ rateLimitPerHour: 3 });
    try {
      const grant = await connect(provider);
      const ctx = context(grant);
      for (let i = 0; i < 3; i++) await provider.fetchAccount(ctx);
      expect(ctx.rates.map((r) => r.remaining)).toEqual([2, 1, 0]);
      const before = Date.now();
      const err = await caught(provider.fetch(provider.planRequests('hrv', ['2026-11-02'], { intraday: true })[0]!, ctx));
      expect(err.code).toBe('rate_limited');
      // The simulated clock stands at 15:00:00: the budget refills in an hour.
      expect(err.details.resetAt! - before).toBeGreaterThanOrEqual(3_599_000);
      expect(err.details.resetAt! - Date.now()).toBeLessThanOrEqual(3_600_000);
      expect(ctx.requests).toEqual(['profile', 'profile', 'profile', 'hrv-range']);
    } finally {
      await sim.app.close();
    }
  });
});
