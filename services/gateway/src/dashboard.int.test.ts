import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addDays } from '@fitlamp/provider';
import { seedBatch, seedLedger, seedParticipant } from '@fitlamp/testing';
import { buildTestGateway, type GatewayUnderTest } from '../test/gateway.ts';

// The coordinator's pages as a browser receives them, through app.inject on real Postgres.
describe('coordinator dashboard pages', () => {
  let gw: GatewayUnderTest;
  let basic: { authorization: string };
  let parkedId: string;
  const today = new Date().toISOString().slice(0, 10);
  const page = (path: string, headers: Record<string, string> = basic) => gw.inject(path, { headers });

  beforeAll(async () => {
    gw = await buildTestGateway();
    basic = { authorization: `Basic ${Buffer.from(`coordinator:${gw.env.ADMIN_TOKEN}`).toString('base64')}` };
    await seedParticipant(gw.db, 'H1', { status: 'connected', streams: ['steps', 'sleep'], lastSyncAt: new Date('2026-03-05T10:15:00Z') });
    await seedParticipant(gw.db, 'H2', { status: 'needs_reconsent', statusReason: 'Fitbit answered 410 Gone <script>alert(1)</script>' });
    await seedParticipant(gw.db, 'H3');
    await seedLedger(gw.db, 'H1', [
      { stream: 'steps', day: today, status: 'partial', reason: 'device last synced 10:00: more may come', fetched: 400, delivered: 380 },
      { stream: 'sleep', day: addDays(today, -1), status: 'failed', reason: 'Fitbit 429 rate_limited: will retry', fetched: 0 },
      { stream: 'steps', day: addDays(today, -1), status: 'settled', fetched: 1440, delivered: 1440 },
      // Older than the grid's 14 days: not shown.
      { stream: 'steps', day: addDays(today, -14), status: 'failed', reason: 'too old to show' },
    ]);
    parkedId = (await seedBatch(gw.db, 'H1', { status: 'parked', count: 7, day: today, reason: '400 bad_request: <b>unknown sensor</b>' })).batchId;
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('asks a browser to sign in, with a page saying how', async () => {
    for (const path of ['/admin', '/admin/participants/H1']) {
      const res = await page(path, {});
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Basic /);
      expect(res.headers.get('content-type')).toMatch(/text\/html/);
      const text = await res.text();
      expect(text).toContain('Sign in to the fitlamp dashboard');
      expect(text).toContain('ADMIN_TOKEN of this deployment as the password');
    }
    const wrong = await page('/admin', { authorization: `Basic ${Buffer.from('coordinator:guess-guess-guess-guess').toString('base64')}` });
    expect(wrong.status).toBe(401);
  });

  it('lists participants with status, provider, connected-at and last sync, and the parked deliveries', async () => {
    const res = await page('/admin');
    expect(res.status).toBe(200);
    const text = await res.text();
    const row = (id: string) => new RegExp(`<tr data-participant="${id}">([\\s\\S]*?)</tr>`).exec(text)?.[1] ?? '';
    expect(row('H1')).toContain('href="/admin/participants/H1"');
    expect(row('H1')).toContain('<td>fitbit</td>');
    expect(row('H1')).toContain('connected');
    expect(row('H1')).toContain('2026-03-01 09:30 UTC');
    expect(row('H1')).toContain('2026-03-05 10:15 UTC');
    expect(row('H2')).toContain('needs_reconsent');
    expect(row('H3')).toContain('not connected');
    // Reasons from providers and mindLAMP are text, never markup.
    expect(text).not.toContain('<script>');
    expect(text).toContain('Fitbit answered 410 Gone &lt;script&gt;alert(1)&lt;/script&gt;');
    expect(text).toContain('400 bad_request: &lt;b&gt;unknown sensor&lt;/b&gt;');

    const parked = new RegExp(`<tr data-batch="${parkedId}">([\\s\\S]*?)</tr>`).exec(text)?.[1] ?? '';
    expect(parked).toContain('href="/admin/participants/H1"');
    expect(parked).toContain('<td>7</td>');
    expect(parked).toContain(`action="/admin/deliveries/${parkedId}/retry"`);
    expect(parked).toContain('name="returnTo" value="/admin"');
    expect(text).toContain('href="/admin/queues"');
  });

  it('serves every page with a CSP that allows its stylesheets by hash and nothing else', async () => {
    for (const path of ['/admin', '/admin/participants/H1', '/admin/participants/NOBODY']) {
      const res = await page(path);
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp).toContain("default-src 'none'");
      expect(csp).toContain("form-action 'self'");
      expect(csp).not.toContain('unsafe-inline');
      expect(res.headers.get('cache-control')).toBe('no-store');
      const text = await res.text();
      expect(text).not.toContain('<script');
      const styles = [...text.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((m) => m[1]!);
      expect(styles).toHaveLength(2);
      for (const style of styles) expect(csp).toContain(`'sha256-${createHash('sha256').update(style).digest('base64')}'`);
    }
  });

  it("shows a participant's last 14 days × streams with reasons on hover and counts", async () => {
    const res = await page('/admin/participants/H1');
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toContain('<span id="participant">H1</span>');
    const days = [...text.matchAll(/<tr data-day="(\d{4}-\d{2}-\d{2})">/g)].map((m) => m[1]);
    expect(days).toHaveLength(14);
    expect(days[0]).toBe(today);
    expect(days.at(-1)).toBe(addDays(today, -13));
    expect(text).not.toContain('too old to show');

    const dayRow = (day: string) => new RegExp(`<tr data-day="${day}">([\\s\\S]*?)</tr>`).exec(text)?.[1] ?? '';
    expect(dayRow(today)).toContain(
      '<td class="st st-partial" data-stream="steps" title="partial: device last synced 10:00: more may come. 400 fetched, 380 delivered, 7 parked. fetched ',
    );
    expect(dayRow(today)).toContain('partial<small>400 / 380</small>');
    expect(dayRow(today)).toContain('<td class="st st-not_synced" data-stream="sleep" title="not synced: not fetched yet.');
    // The rollup column: yesterday's sleep failed, so the day failed.
    expect(dayRow(addDays(today, -1))).toContain('<td class="st st-failed" data-stream="all" title="failed: sleep: Fitbit 429 rate_limited: will retry.');
    expect(dayRow(addDays(today, -1))).toContain('data-stream="steps" title="settled: complete: the device synced after the day ended. 1440 fetched, 1440 delivered.');

    const parked = new RegExp(`<tr data-batch="${parkedId}">([\\s\\S]*?)</tr>`).exec(text)?.[1] ?? '';
    expect(parked).toContain(`name="returnTo" value="/admin/participants/H1"`);
    expect(text).toContain(`/admin/participants/H1/days?from=${addDays(today, -13)}&amp;to=${today}`);
  });

  it('says when a participant has no connection or nothing parked', async () => {
    const text = await (await page('/admin/participants/H3')).text();
    expect(text).toContain('Not connected yet: the participant has not completed consent. Send them an enrollment link.');
    expect(text).toContain('No parked deliveries');
    expect(text).toContain('No streams are scheduled for this participant');
    expect([...text.matchAll(/<tr data-day=/g)]).toHaveLength(14);
  });

  it('answers an unknown participant with a 404 page and a malformed id with a 400 page, each saying what to do', async () => {
    const unknown = await page('/admin/participants/NOBODY');
    expect(unknown.status).toBe(404);
    const text = await unknown.text();
    expect(text).toContain('fitlamp knows no participant &quot;NOBODY&quot;');
    expect(text).toContain('create an enrollment link for it first');
    expect(text).toContain('href="/admin"');
    const bad = await page('/admin/participants/%3Cb%3E');
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain('That is not a participant id');
  });

  it('shows the notice after a retry only for a well-formed batch id', async () => {
    expect(await (await page('/admin?retried=42')).text()).toContain('Batch 42 is back in the delivery queue');
    const odd = await page('/admin?retried=%3Cscript%3E');
    expect(odd.status).toBe(200);
    expect(await odd.text()).not.toContain('back in the delivery queue');
  });
});
