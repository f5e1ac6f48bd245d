import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addDays } from '@fitlamp/provider';
import { seedBatch, seedLedger, seedParticipant, seedWear } from '@fitlamp/testing';
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
    await seedParticipant(gw.db, 'H1', {
      status: 'connected',
      streams: ['steps', 'sleep', 'heart_rate', 'device'],
      lastSyncAt: new Date('2026-03-05T10:15:00Z'),
      device: { syncedAt: new Date(Date.now() - 3 * 86_400_000 - 3_600_000), battery: 12 },
    });
    await seedParticipant(gw.db, 'H2', { status: 'needs_reconsent', statusReason: 'Fitbit answered 410 Gone <script>alert(1)</script>', studyId: 'S2' });
    await seedParticipant(gw.db, 'H3');
    await seedLedger(gw.db, 'H1', [
      { stream: 'steps', day: today, status: 'partial', reason: 'device last synced 10:00: more may come', fetched: 400, delivered: 380 },
      { stream: 'sleep', day: addDays(today, -1), status: 'failed', reason: 'Fitbit 429 rate_limited: will retry', fetched: 0 },
      // A later sync revised yesterday's steps after delivery: 21 minutes corrected, 831 steps more.
      { stream: 'steps', day: addDays(today, -1), status: 'settled', fetched: 1440, delivered: 1440, revised: { events: 21, corrected: 21, delta: 831 } },
      // Every data stream settled two days ago: the device stream (no row that day) has no say.
      { stream: 'steps', day: addDays(today, -2), status: 'settled', fetched: 1440, delivered: 1440 },
      { stream: 'sleep', day: addDays(today, -2), status: 'settled', fetched: 30, delivered: 30 },
      // Heart rate is not additive: 4 revised minutes are counted, not sent again.
      { stream: 'heart_rate', day: addDays(today, -2), status: 'settled', fetched: 600, delivered: 600, revised: { events: 4, corrected: 0, delta: 0 } },
      { stream: 'device', day: addDays(today, -3), status: 'settled', fetched: 1, delivered: 1 },
      // Complete, and nothing: not worn.
      { stream: 'steps', day: addDays(today, -4), status: 'empty' },
      { stream: 'heart_rate', day: addDays(today, -4), status: 'empty' },
      // Older than the grid's 28 days: not shown.
      { stream: 'steps', day: addDays(today, -28), status: 'failed', reason: 'too old to show' },
    ]);
    await seedWear(gw.db, 'H1', addDays(today, -2), 600);
    await seedWear(gw.db, 'H1', addDays(today, -1), 90);
    // H3 wore the watch more over the last week than H1.
    await seedWear(gw.db, 'H3', addDays(today, -3), 1200);
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

  it('opens on a heatmap: one row per participant, least worn first, with status, provider, device sync and battery', async () => {
    const res = await page('/admin');
    expect(res.status).toBe(200);
    const text = await res.text();
    const rows = [...text.matchAll(/<tr data-participant="([^"]+)">/g)].map((m) => m[1]);
    // H2: no wear at all; H1: 11.5 h; H3: 20 h over the last 7 days.
    expect(rows).toEqual(['H2', 'H1', 'H3']);
    const row = (id: string) => new RegExp(`<tr data-participant="${id}">([\\s\\S]*?)</tr>`).exec(text)?.[1] ?? '';
    expect(row('H1')).toContain('href="/admin/participants/H1"');
    expect(row('H1')).toContain('<td>fitbit</td>');
    expect(row('H1')).toContain('<td class="status">connected');
    expect(row('H1')).toContain('<td class="battery"><span class="low">12 %</span></td>');
    expect(row('H1')).toContain('<td class="since">3</td>');
    expect(row('H1')).toContain('<td class="wear7">11.5 h</td>');
    expect(row('H3')).toContain('<td class="since">never</td>');
    expect(row('H2')).toContain('needs_reconsent');
    expect(row('H2')).toContain('<td>S2</td>');
    expect(row('H3')).toContain('not connected');

    // 28 day columns per row; each cell says what the day was and opens its detail.
    const cells = (id: string) => new Map([...row(id).matchAll(/data-kind="(\w+)" data-day="([\d-]+)"/g)].map((m) => [m[2]!, m[1]!]));
    expect([...row('H1').matchAll(/<td class="c /g)]).toHaveLength(28);
    expect(cells('H1').get(addDays(today, -2))).toBe('worn');
    expect(row('H1')).toContain(`title="${addDays(today, -2)}: 600 minutes worn"><a href="/admin/participants/H1?day=${addDays(today, -2)}#day-detail">10</a>`);
    expect(cells('H1').get(addDays(today, -1))).toBe('failed');
    expect(cells('H1').get(addDays(today, -4))).toBe('no_data');
    expect(cells('H1').get(addDays(today, -5))).toBe('not_synced');

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

  it('filters by study, status and provider, and orders by participant on request', async () => {
    const ids = async (query: string) => [...(await (await page(`/admin?${query}`)).text()).matchAll(/<tr data-participant="([^"]+)">/g)].map((m) => m[1]);
    expect(await ids('study=S2')).toEqual(['H2']);
    expect(await ids('study=S1&status=&provider=')).toEqual(['H1', 'H3']);
    expect(await ids('status=not_connected')).toEqual(['H3']);
    expect(await ids('status=connected&provider=fitbit')).toEqual(['H1']);
    expect(await ids('provider=google-health')).toEqual([]);
    expect(await ids('sort=participant')).toEqual(['H1', 'H2', 'H3']);
    // The form keeps what was chosen.
    expect(await (await page('/admin?study=S2')).text()).toContain('<option value="S2" selected>');
    const bad = await page('/admin?status=sleeping');
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain('That request was not understood');
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

  it("shows a participant's last 28 days as columns and streams as rows, with reasons on hover", async () => {
    const res = await page('/admin/participants/H1');
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toContain('<span id="participant">H1</span>');
    const header = /<thead><tr><th>Day<\/th>([\s\S]*?)<\/tr><\/thead>/.exec(text)?.[1] ?? '';
    const days = [...header.matchAll(/<th data-day="(\d{4}-\d{2}-\d{2})"/g)].map((m) => m[1]);
    expect(days).toHaveLength(28);
    expect(days[0]).toBe(addDays(today, -27));
    expect(days.at(-1)).toBe(today);
    expect(text).not.toContain('too old to show');

    const streamRow = (stream: string) => new RegExp(`<tr data-row="${stream}">([\\s\\S]*?)</tr>`).exec(text)?.[1] ?? '';
    const cellOf = (stream: string, day: string) => new RegExp(`<td[^>]*data-stream="${stream}" data-day="${day}"[^>]*>[^<]*</td>`).exec(streamRow(stream))?.[0] ?? '';
    expect(cellOf('steps', today)).toContain('data-status="partial" title="' + today + ' partial: device last synced 10:00: more may come. 400 fetched, 380 delivered, 7 parked.');
    expect(cellOf('sleep', today)).toContain('data-status="not_synced" title="' + today + ' not synced: not fetched yet.');
    // The rollup: yesterday's sleep failed, so the day failed.
    expect(cellOf('all', addDays(today, -1))).toContain('data-status="failed" title="' + addDays(today, -1) + ' failed: sleep: Fitbit 429 rate_limited: will retry.');
    // Every data stream settled two days ago; the device stream had nothing to fetch that day.
    expect(cellOf('all', addDays(today, -2))).toContain('data-status="settled"');
    expect(cellOf('device', addDays(today, -2))).toContain('title="nothing to fetch this day">—');
    expect(cellOf('device', addDays(today, -3))).toContain('data-status="settled"');
    expect(streamRow('wear')).toContain(`title="${addDays(today, -2)}: 600 minutes with heart rate">10<`);

    const parked = new RegExp(`<tr data-batch="${parkedId}">([\\s\\S]*?)</tr>`).exec(text)?.[1] ?? '';
    expect(parked).toContain(`name="returnTo" value="/admin/participants/H1"`);
    expect(text).toContain(`/admin/participants/H1/days?from=${addDays(today, -27)}&amp;to=${today}`);
  });

  it('opens one day in detail from a heatmap cell: every stream with its reason, and the totals', async () => {
    const day = addDays(today, -1);
    const text = await (await page(`/admin/participants/H1?day=${day}`)).text();
    expect(text).toContain(`<h2 id="day-detail">${day}</h2>`);
    expect(text).toContain('Worn 90 minutes; 0 steps; 0 minutes asleep. All streams: <strong>failed</strong>');
    expect(text).toMatch(/<tr data-stream="sleep"><td>sleep<\/td><td class="st st-failed">failed<\/td><td>Fitbit 429 rate_limited: will retry<\/td>/);
    expect(text).toContain('<tr data-stream="device"><td>device</td><td colspan="7">nothing to fetch this day</td></tr>');
    expect(text).toMatch(/<tr data-stream="steps"><td>steps<\/td><td class="st st-settled">settled<\/td><td>[^<]*<\/td><td>1440<\/td><td>1440<\/td><td>0<\/td><td>21 corrected \(\+831 steps\)<\/td>/);
    const old = await page('/admin/participants/H1?day=2020-01-01');
    expect(await old.text()).toContain('2020-01-01 is outside the last 28 days');
    expect((await page('/admin/participants/H1?day=2026-02-30')).status).toBe(400);
  });

  it('lists the days revised after delivery: minutes corrected and the step difference, and what was only counted', async () => {
    const text = await (await page('/admin/participants/H1')).text();
    const table = /<table id="revisions">([\s\S]*?)<\/table>/.exec(text)?.[1] ?? '';
    const rows = [...table.matchAll(/<tr data-day="([^"]+)" data-stream="([^"]+)">([\s\S]*?)<\/tr>/g)].map((m) => [m[1], m[2], m[3]!.replace(/<[^>]+>/g, '|')]);
    expect(rows).toEqual([
      [addDays(today, -1), 'steps', `|${addDays(today, -1)}||steps||21||21||+831 steps|`],
      [addDays(today, -2), 'heart_rate', `|${addDays(today, -2)}||heart_rate||4||not sent again|||`],
    ]);
  });

  it('says when a participant has no connection or nothing parked', async () => {
    const text = await (await page('/admin/participants/H3')).text();
    expect(text).toContain('No data mindLAMP had received was revised by the provider in these days.');
    expect(text).toContain('Not connected yet: the participant has not completed consent. Send them an enrollment link.');
    expect(text).toContain('No parked deliveries');
    expect(text).toContain('No streams are scheduled for this participant');
    expect([...text.matchAll(/<th data-day=/g)]).toHaveLength(28);
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
