import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack, type StackParticipant } from '@fitlamp/harness';
import { findUser, syncUser } from '@fitlamp/simulators';
import { answerProviderConsent, finishConsent, requestEnrollmentLink, startConsent } from '@fitlamp/testing';

// The four services as processes against both providers' simulators: three participants, two
// days, one refused and one failed consent, one replayed callback. Afterwards every line any service wrote is
// searched for every secret the run used: the services' secrets (environment), every OAuth code,
// state, PKCE challenge, access and refresh token the simulators issued, every enrollment link
// and consent cookie, and the Basic credentials built from them, raw and URL-encoded. Zero found.

const participants: StackParticipant[] = [
  { id: 'U0000000001', user: { id: 'LOGF01', preset: 'new-york', autoSyncMinutes: 0 }, provider: 'fitbit' },
  { id: 'U0000000002', user: { id: 'LOGF02', preset: 'kolkata', autoSyncMinutes: 0 }, provider: 'fitbit' },
  { id: 'U0000000003', user: { id: 'LOGG01', preset: 'sydney', autoSyncMinutes: 0 }, provider: 'google-health' },
];

/** Every way a secret could be written: as is, URL-encoded, and the tail after a `kind:` or `Bearer ` prefix. */
function forms(secret: string): string[] {
  const out = new Set([secret, encodeURIComponent(secret)]);
  const tail = /^(?:Bearer |[A-Za-z0-9_-]{1,32}:)(.{16,})$/.exec(secret)?.[1];
  if (tail) out.add(tail);
  return [...out];
}

/** The (line, secret name) pairs where a secret appears. */
function findLeaks(lines: string[], secrets: Map<string, string>): Array<{ line: string; name: string }> {
  const leaks: Array<{ line: string; name: string }> = [];
  for (const [name, secret] of secrets) {
    const needles = forms(secret);
    for (const line of lines) if (needles.some((n) => line.includes(n))) leaks.push({ line: line.slice(0, 300), name });
  }
  return leaks;
}

const basic = (user: string, password: string) => Buffer.from(`${user}:${password}`).toString('base64');

describe('no secret in any log line of a whole run', () => {
  let stack: Stack | undefined;

  beforeAll(async () => {
    stack = await startStack({
      participants,
      google: true,
      backfillDays: 2,
      simStartAt: '2026-11-24T15:00:00Z',
      syncIntervalSeconds: 8,
      schedulerTickSeconds: 1,
      sweepSeconds: 5,
      // debug: the most any service would write.
      env: { LOG_LEVEL: 'debug', PROFILE_CHECK_SECONDS: '3600' },
      seed: 'fitlamp-log-secrets',
    });
  }, 300_000);

  afterAll(async () => {
    await stack?.stop();
  });

  it('finds none of the tokens, codes, secrets and keys the run used', async () => {
    const s = stack!;
    const { fitbit } = s;
    const google = s.google!;
    for (const p of participants) syncUser(fitbit.world, findUser(fitbit.world, p.user.id)!, fitbit.clock.now() - 120_000);

    const links: string[] = [];
    const cookies: string[] = [];
    // A refused consent.
    const refusedLink = await requestEnrollmentLink(s.gatewayUrl, s.adminToken, participants[0]!.id, { provider: 'fitbit' });
    links.push(refusedLink);
    const refused = await startConsent(refusedLink);
    cookies.push(refused.cookie);
    const denied = await finishConsent(refused, await answerProviderConsent(refused.authorizeUrl, { decision: 'deny', user: participants[0]!.user.id }));
    expect(denied.status).toBeLessThan(500);
    // A consent the provider failed: its error code is logged, and must stay readable.
    const failedStart = await startConsent(await requestEnrollmentLink(s.gatewayUrl, s.adminToken, participants[1]!.id, { provider: 'fitbit' }));
    cookies.push(failedStart.cookie);
    const failedState = new URL(failedStart.authorizeUrl).searchParams.get('state')!;
    const failed = await finishConsent(failedStart, `${s.gatewayUrl}/oauth/fitbit/callback?error=temporarily_unavailable&state=${encodeURIComponent(failedState)}`);
    expect(failed.status).toBe(400);

    for (const p of participants) links.push(await s.connect(p));
    await s.waitUntilCaughtUp();
    syncUser(fitbit.world, findUser(fitbit.world, participants[2]!.user.id)!, fitbit.clock.now() - 10_000);
    await google.flushWebhooks();

    // A replayed callback: a used code and its state, from a browser without the consent cookie.
    const used = [...fitbit.state.codes.values()].find((c) => c.used)!;
    const replayState = [...fitbit.state.transactions.values()].find((t) => t.state)?.state ?? 'no-state-kept';
    const replay = await fetch(`${s.gatewayUrl}/oauth/fitbit/callback?code=${used.code}&state=${encodeURIComponent(replayState)}`);
    expect(replay.status).toBeLessThan(500);

    await s.stop();
    const lines = Object.values(s.processes)
      .flat()
      .flatMap((p) => [...p.stdout, ...p.stderr]);
    stack = undefined;

    const secrets = new Map<string, string>();
    for (const [name, value] of Object.entries(s.env)) {
      if (/SECRET|TOKEN|KEY|PASSWORD/.test(name) && name !== 'LAMP_ACCESS_KEY') secrets.set(`env ${name}`, value);
    }
    secrets.set('fitbit basic credentials', basic(s.env.FITBIT_CLIENT_ID!, s.env.FITBIT_CLIENT_SECRET!));
    secrets.set('google basic credentials', basic(s.env.GOOGLE_CLIENT_ID!, s.env.GOOGLE_CLIENT_SECRET!));
    secrets.set('mindLAMP basic credentials', basic(s.env.LAMP_ACCESS_KEY!, s.env.LAMP_SECRET_KEY!));
    secrets.set('mindLAMP credential pair', `${s.env.LAMP_ACCESS_KEY}:${s.env.LAMP_SECRET_KEY}`);
    secrets.set('google service account token', google.state.webhooks.serviceAccountToken);
    for (const [sim, state] of [
      ['fitbit', fitbit.state],
      ['google', google.state],
    ] as const) {
      for (const code of state.codes.keys()) secrets.set(`${sim} code ${secrets.size}`, code);
      for (const token of state.accessTokens.keys()) secrets.set(`${sim} access token ${secrets.size}`, token);
      for (const token of state.refreshTokens.keys()) secrets.set(`${sim} refresh token ${secrets.size}`, token);
      for (const tx of state.transactions.values()) {
        if (tx.state) secrets.set(`${sim} state ${secrets.size}`, tx.state);
        if (tx.codeChallenge) secrets.set(`${sim} code challenge ${secrets.size}`, tx.codeChallenge);
      }
    }
    for (const link of links) {
      const url = new URL(link);
      for (const part of [...url.pathname.split('/'), ...url.searchParams.values()]) {
        if (part.length >= 16) secrets.set(`enrollment link part ${secrets.size}`, part);
      }
    }
    secrets.set('state of the failed consent', failedState);
    for (const cookie of cookies) secrets.set(`consent cookie ${secrets.size}`, cookie.split('=').slice(1).join('='));

    // What was searched for is what the run used: codes and tokens of both providers, links.
    const count = (prefix: string) => [...secrets.keys()].filter((k) => k.startsWith(prefix)).length;
    expect(count('fitbit code')).toBeGreaterThanOrEqual(2);
    expect(count('google code')).toBeGreaterThanOrEqual(1);
    expect(count('fitbit access token') + count('google access token')).toBeGreaterThanOrEqual(3);
    expect(count('fitbit refresh token') + count('google refresh token')).toBeGreaterThanOrEqual(3);
    expect(count('enrollment link part')).toBeGreaterThanOrEqual(4);
    for (const [name, secret] of secrets) expect(secret.length, name).toBeGreaterThanOrEqual(12);

    // The detector finds a secret when one is there (in a line as pino would write it).
    const [plantedName, planted] = [...secrets].find(([name]) => name.startsWith('fitbit refresh token'))!;
    expect(findLeaks([JSON.stringify({ level: 30, leaked: { deep: [planted] } })], secrets).map((l) => l.name)).toEqual([plantedName]);
    expect(findLeaks([`callback?code=${encodeURIComponent(s.env.ADMIN_TOKEN!)}`], secrets)).toHaveLength(1);

    // The run logged what happened, with provider error codes readable.
    expect(lines.length).toBeGreaterThan(50);
    expect(lines.some((l) => l.includes('"providerError":"temporarily_unavailable"'))).toBe(true);

    expect(findLeaks(lines, secrets)).toEqual([]);
    console.log(`log audit: ${lines.length} lines searched for ${secrets.size} secrets, 0 found`);
  }, 600_000);
});
