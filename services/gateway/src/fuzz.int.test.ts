import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { createRng, intBetween, signGoogleWebhookBody } from '@fitlamp/simulators';
import { requestEnrollmentLink, seedParticipant, startConsent } from '@fitlamp/testing';
import { startTestGateway, type TestGateway } from '../test/gateway.ts';
import { signEnrollment } from './enrollment.ts';

// The gateway's attack surface under generated malformed, forged and replayed input, over real
// HTTP and Postgres (docs/security.md has the threat model). Seeded: the same inputs every run
// (FUZZ_SEED to explore others). For every input: no 5xx; afterwards no job was enqueued and no
// row changed (a snapshot of every table before and after), except the webhook-health timestamp
// a validly signed replay may refresh.

const SEED = process.env.FUZZ_SEED ?? 'fitlamp-fuzz-1';
const rng = createRng(SEED);
const pick = <T,>(items: readonly T[]): T => items[intBetween(rng, 0, items.length - 1)]!;
const ODD = ['', ' ', '%00', '%', '\u0000', '../../etc/passwd', '<script>alert(1)</script>', "' or 1=1 --", '😀', '\u202e', 'null', '[]', '{}', '-1', '1e309', 'NaN'];
function junk(max = 40): string {
  const n = intBetween(rng, 0, max);
  let s = '';
  for (let i = 0; i < n; i++) s += String.fromCharCode(intBetween(rng, 0x20, 0x7e));
  return rng() < 0.3 ? s + pick(ODD) : s;
}
/** `s` with one character changed, one dropped, or cut short. */
function mutate(s: string): string {
  if (s.length === 0) return junk(8);
  const i = intBetween(rng, 0, s.length - 1);
  const kind = intBetween(rng, 0, 2);
  if (kind === 0) return s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
  if (kind === 1) return s.slice(0, i) + s.slice(i + 1);
  return s.slice(0, i);
}
const enc = encodeURIComponent;

interface Attempt {
  category: string;
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

describe('fuzzing the gateway', () => {
  let gw: TestGateway;
  let link: URL;
  let consentState: string;
  /** A validly signed delivery for U1003's account, processed once before the snapshot. */
  let delivered: { body: string; signature: string };

  beforeAll(async () => {
    // Rate limits high: the inputs are to reach the handlers, not the limiter (edges.int.test.ts tests it).
    gw = await startTestGateway({
      participants: ['U1001', 'U1002', 'U1003'],
      google: true,
      env: { PUBLIC_RATE_LIMIT_PER_MINUTE: '100000', ADMIN_RATE_LIMIT_PER_MINUTE: '100000' },
    });
    // Real artefacts to forge and replay from: a signed link, a started consent (its state row
    // exists), a connected Google participant and a verified webhook.
    link = new URL(await requestEnrollmentLink(gw.base, gw.env.ADMIN_TOKEN, 'U1001', { provider: 'fitbit' }));
    const started = await startConsent(link.toString());
    consentState = new URL(started.authorizeUrl).searchParams.get('state')!;
    await seedParticipant(gw.db, 'U1003', { status: 'connected', provider: 'google-health' });
    const hour = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000);
    const body = JSON.stringify({
      data: {
        version: '1',
        clientProvidedSubscriptionName: 'fuzz-original',
        healthUserId: 'FBU1003',
        operation: 'UPSERT',
        dataType: 'steps',
        intervals: [{ physicalTimeInterval: { startTime: hour.toISOString(), endTime: new Date(hour.getTime() + 3_600_000).toISOString() } }],
      },
    });
    delivered = { body, signature: signGoogleWebhookBody(gw.google!.state.webhooks, body) };
    const first = await fetch(`${gw.base}/webhooks/google-health`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-healthapi-signature': delivered.signature },
      body,
    });
    expect(first.status).toBe(204);
    // The original delivery did its work (a targeted sync); its replays below must add none.
    expect(await gw.queues.count('sync')).toBe(1);
  }, 60_000);
  afterAll(async () => gw?.close());

  async function snapshot(): Promise<Record<string, string>> {
    const tables = await sql<{ table_name: string }>`
      select table_name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE' order by table_name`.execute(gw.db);
    const out: Record<string, string> = {};
    for (const { table_name } of tables.rows) {
      // The one allowed change: a validly signed replay refreshes when webhooks were last seen alive.
      const row = table_name === 'provider_webhooks' ? sql`to_jsonb(t) - 'last_verified_at' - 'notifications' - 'updated_at'` : sql`to_jsonb(t)`;
      const r = await sql<{ digest: string }>`
        select count(*)::text || ':' || coalesce(md5(string_agg((${row})::text, '|' order by (${row})::text)), '') as digest
        from ${sql.table(table_name)} t`.execute(gw.db);
      out[table_name] = r.rows[0]!.digest;
    }
    return out;
  }

  async function jobCount(): Promise<number> {
    let n = 0;
    for (const { queue } of gw.queues.all) {
      const counts = await queue.getJobCounts();
      n += Object.values(counts).reduce((a, b) => a + b, 0);
    }
    return n;
  }

  function generate(): Attempt[] {
    const attempts: Attempt[] = [];
    const token = link.searchParams.get('t') ?? link.searchParams.get('token') ?? '';
    const tokenParam = [...link.searchParams.keys()][0] ?? 't';
    const secret = gw.env.ENROLLMENT_SECRET;
    const hourAgo = Date.now() - 3_600_000;
    // Enrollment links: tampered, truncated, expired, another participant or provider, forged.
    for (let i = 0; i < 120; i++) {
      const forged = [
        () => mutate(token),
        () => token.slice(0, intBetween(rng, 0, token.length - 1)),
        () => signEnrollment(secret, { participantId: 'U1001', provider: 'fitbit', expiresAt: hourAgo - intBetween(rng, 0, 1e9) }),
        () => signEnrollment(`${secret}x`, { participantId: pick(['U1001', 'U1002', 'U9999']), provider: 'fitbit', expiresAt: Date.now() + 3_600_000 }),
        () => `${token.split('.')[0]}.${mutate(token.split('.')[1] ?? '')}`,
        () => `${Buffer.from(JSON.stringify({ v: 1, p: 'U1002', r: 'fitbit', e: 9e9 })).toString('base64url')}.${token.split('.')[1] ?? ''}`,
        () => junk(200),
      ][i % 7]!();
      const provider = pick(['fitbit', 'google-health', 'fitbit', 'other', '..%2f']);
      attempts.push({ category: 'enrollment links', method: 'GET', path: `/connect/${provider}?${tokenParam}=${enc(forged)}` });
    }
    // /connect forms: the same forgeries posted, odd bodies and content types, cross-site posts of the real link.
    for (let i = 0; i < 100; i++) {
      const kind = i % 5;
      const form = new URLSearchParams({ [tokenParam]: kind === 0 ? token : mutate(token) });
      if (kind === 1) form.append(junk(10) || 'x', junk(300));
      const headers: Record<string, string> = { 'content-type': pick(['application/x-www-form-urlencoded', 'application/json', 'text/plain', 'multipart/form-data; boundary=x']) };
      if (kind === 0) Object.assign(headers, pick([{ origin: 'https://evil.example' }, { 'sec-fetch-site': 'cross-site' }, { origin: 'null' }, { 'sec-fetch-site': 'same-site' }]));
      else headers.origin = pick(['https://evil.example', 'null', gw.base]);
      const body = kind === 2 ? junk(500) : kind === 3 ? 'x'.repeat(intBetween(rng, 8_000, 20_000)) : form.toString();
      attempts.push({ category: '/connect forms', method: 'POST', path: `/connect/${pick(['fitbit', 'google-health'])}`, headers, body });
    }
    // Callbacks: unknown, mutated, or real state without its cookie; codes; error parameters; huge and odd queries.
    for (let i = 0; i < 100; i++) {
      const state = pick([consentState, mutate(consentState), junk(60), '']);
      const query = [
        `state=${enc(state)}&code=${enc(junk(40))}`,
        `state=${enc(state)}&error=${enc(pick(['access_denied', 'server_error', junk(20)]))}&error_description=${enc(junk(100))}`,
        `code=${enc(junk(40))}`,
        `state=${enc(state)}&state=${enc(junk(10))}&code=a&code=b`,
        `state=${'s'.repeat(intBetween(rng, 1_000, 6_000))}&code=${enc(junk(20))}`,
        junk(120),
      ][i % 6]!;
      const headers: Record<string, string> = {};
      if (rng() < 0.5) headers.cookie = `${pick(['fitlamp-consent-fitbit', '__Host-fitlamp-consent-fitbit', 'fitlamp-consent-google-health'])}=${enc(junk(40))}`;
      attempts.push({ category: 'callbacks', method: 'GET', path: `/oauth/${pick(['fitbit', 'google-health', 'nope'])}/callback?${query}`, headers });
    }
    // Webhooks: bad or missing signatures, wrong Authorization, signed bodies that are no
    // envelope, replays of a validly signed delivery, odd and oversized JSON.
    const state = gw.google!.state.webhooks;
    const signedFor = (healthUserId: string) =>
      JSON.stringify({ data: { version: '1', clientProvidedSubscriptionName: 'fuzz', healthUserId, operation: 'UPSERT', dataType: 'steps', intervals: [] } });
    for (let i = 0; i < 120; i++) {
      const kind = i % 6;
      let body: string;
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (kind === 0) {
        body = signedFor(junk(19));
        headers['x-healthapi-signature'] = mutate(signGoogleWebhookBody(state, body));
      } else if (kind === 1) {
        // Validly signed, for a user no participant has: Google must get 204, nothing changes.
        body = signedFor(`9${intBetween(rng, 10 ** 8, 10 ** 9)}`);
        headers['x-healthapi-signature'] = signGoogleWebhookBody(state, body);
      } else if (kind === 2) {
        body = pick(['[]', '{}', 'null', '{"data":null}', '{"data":{"healthUserId":[]}}', junk(80), '{"type":"verification"}']);
        headers['x-healthapi-signature'] = signGoogleWebhookBody(state, body);
      } else if (kind === 3) {
        body = signedFor('1');
        headers['x-healthapi-signature'] = signGoogleWebhookBody(state, body);
        headers.authorization = `Bearer ${junk(30)}`;
      } else if (kind === 4) {
        body = JSON.stringify({ data: { healthUserId: '1', pad: 'x'.repeat(intBetween(rng, 100_000, 1_200_000)) } });
        headers['x-healthapi-signature'] = junk(80);
      } else if (i % 12 === 5) {
        // A replay of the delivery already processed, byte for byte.
        body = delivered.body;
        headers['x-healthapi-signature'] = delivered.signature;
      } else {
        body = '['.repeat(intBetween(rng, 1, 5_000));
        if (rng() < 0.5) headers['content-type'] = pick(['text/plain', 'application/x-www-form-urlencoded', '']);
      }
      attempts.push({ category: 'webhooks', method: 'POST', path: '/webhooks/google-health', headers, body });
    }
    // Admin routes: no or wrong token, bad bodies with the right one.
    const adminRoutes: Array<[string, string]> = [
      ['POST', '/admin/enrollments'],
      ['GET', '/admin/participants'],
      ['POST', '/admin/deliveries/00000000-0000-0000-0000-000000000000/retry'],
      ['POST', `/admin/deliveries/${enc(junk(20))}/retry`],
      ['GET', `/admin/participants/${enc(junk(20))}/days`],
      ['DELETE', '/admin/participants/U1003'],
      ['POST', '/admin/participants/U1003/disconnect'],
    ];
    for (let i = 0; i < 90; i++) {
      const kind = i % 3;
      // With the right token, only requests that are wrong in themselves (a valid disconnect is no attack).
      const [method, path] = pick(kind === 2 ? adminRoutes.slice(0, 5) : adminRoutes);
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (kind === 0) headers.authorization = pick([`Bearer ${junk(30)}`, `Basic ${Buffer.from(`a:${junk(20)}`).toString('base64')}`, 'Bearer', junk(10)]);
      else if (kind === 2) headers.authorization = `Bearer ${gw.env.ADMIN_TOKEN}`;
      const body =
        method === 'GET'
          ? undefined
          : kind === 2
            ? pick([junk(100), '{"participantId":[]}', '{"participantId":"U1001","provider":"nope"}', '{"status":"bogus"}', `{"participantId":"${'U'.repeat(5000)}"}`, '[]'])
            : JSON.stringify({ participantId: 'U1002', provider: 'fitbit' });
      const query = method === 'GET' && kind === 2 ? `?${pick(['status=zzz', 'migration=zzz', 'from=2020-13-45', `limit=${pick(ODD)}`])}` : '';
      attempts.push({ category: 'admin routes', method, path: path + query, headers, ...(body !== undefined ? { body } : {}) });
    }
    // Bull Board's write API: without the token, with a wrong one, or cross-site with the right one.
    const boardWrites: Array<[string, string]> = [
      ['POST', '/admin/queues/api/queues/sync/add'],
      ['PUT', '/admin/queues/api/queues/pause'],
      ['PUT', '/admin/queues/api/queues/sync/pause'],
      ['PUT', '/admin/queues/api/queues/deliver/clean/completed'],
      ['PUT', '/admin/queues/api/queues/sync/retry/failed'],
      ['PUT', '/admin/queues/api/queues/deliver/promote'],
      ['PUT', '/admin/queues/api/queues/sync/concurrency'],
    ];
    for (let i = 0; i < 70; i++) {
      const [method, path] = pick(boardWrites);
      const kind = i % 3;
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (kind === 1) headers.authorization = `Bearer ${junk(30)}`;
      if (kind === 2) {
        headers.authorization = `Basic ${Buffer.from(`coordinator:${gw.env.ADMIN_TOKEN}`).toString('base64')}`;
        Object.assign(headers, pick([{ origin: 'https://evil.example' }, { 'sec-fetch-site': 'cross-site' }, { 'sec-fetch-site': 'same-site' }, { origin: 'null' }]));
      }
      attempts.push({ category: "Bull Board's write API", method, path, headers, body: JSON.stringify({ name: 'sync', data: { participantId: 'U1002' }, concurrency: 99 }) });
    }
    return attempts;
  }

  it('answers ≥ 500 generated hostile inputs without a 5xx, a job or a changed row', async () => {
    const attempts = generate();
    expect(attempts.length).toBeGreaterThanOrEqual(500);
    const before = await snapshot();
    const jobsBefore = await jobCount();
    const healthBefore = await sql<{ at: Date }>`select last_verified_at as at from provider_webhooks`.execute(gw.db);
    const byCategory = new Map<string, { n: number; statuses: Map<number, number> }>();
    const fivexx: string[] = [];
    for (const a of attempts) {
      const res = await fetch(`${gw.base}${a.path}`, {
        method: a.method,
        // HTTP carries visible ASCII in headers: what fetch would refuse to send is left out.
        headers: Object.fromEntries(Object.entries(a.headers ?? {}).map(([k, v]) => [k, v.replace(/[^\x20-\x7e]/g, '').trim()])),
        ...(a.body !== undefined ? { body: a.body } : {}),
        redirect: 'manual',
      });
      await res.arrayBuffer();
      const c = byCategory.get(a.category) ?? { n: 0, statuses: new Map() };
      c.n++;
      c.statuses.set(res.status, (c.statuses.get(res.status) ?? 0) + 1);
      byCategory.set(a.category, c);
      if (res.status >= 500) fivexx.push(`${a.method} ${a.path.slice(0, 120)} → ${res.status}`);
    }
    const summary = [...byCategory].map(([name, c]) => `${name}: ${c.n} (${[...c.statuses].sort((x, y) => x[0] - y[0]).map(([s, k]) => `${s}×${k}`).join(', ')})`);
    console.log(`fuzz seed ${SEED}: ${attempts.length} inputs\n  ${summary.join('\n  ')}`);
    expect(fivexx).toEqual([]);
    expect(await jobCount()).toBe(jobsBefore);
    expect(await snapshot()).toEqual(before);
    // The exception at work: the replays refreshed the webhook-health timestamp, and only that.
    const healthAfter = await sql<{ at: Date }>`select last_verified_at as at from provider_webhooks`.execute(gw.db);
    expect(healthAfter.rows[0]!.at.getTime()).toBeGreaterThan(healthBefore.rows[0]!.at.getTime());
    for (const queue of gw.queues.sync) expect(await queue.isPaused()).toBe(false);
    // Every category ran, and the real link still works: the fuzzing spent nothing.
    expect(byCategory.size).toBe(6);
    expect((await fetch(link)).status).toBe(200);
  }, 600_000);
});
