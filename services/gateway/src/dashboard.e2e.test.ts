import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { addDays } from '@fitlamp/provider';
import { jobIdFor } from '@fitlamp/queues';
import { batchStatus, launchTestBrowser, recordsOf, seedBatch, seedLedger, seedParticipant, seedWear, watchPage, type TestBrowser } from '@fitlamp/testing';
import { startTestGateway, type TestGateway } from '../test/gateway.ts';
import { alertConfigFromEnv, evaluateAlerts } from './alerts.ts';

/** The one browser global used here (the workspace compiles without the DOM library). */
interface BrowserWindow {
  getComputedStyle(element: unknown): { backgroundColor: string };
}
interface Box {
  scrollLeft: number;
  scrollWidth: number;
  clientWidth: number;
  getBoundingClientRect(): { left: number; right: number };
}
interface BrowserDocument {
  documentElement: { scrollWidth: number; clientWidth: number };
}

// A coordinator's view: headless Chromium signs in with HTTP Basic (the admin token as the
// password), reads the ledger grid and retries a parked delivery, on real Postgres and Redis.
describe('coordinator uses the dashboard in a real browser', () => {
  let gw: TestGateway;
  let browser: TestBrowser;
  let page: Page;
  const consoleErrors: string[] = [];
  const today = new Date().toISOString().slice(0, 10);
  let batch: { batchId: string; recordIds: string[] };

  beforeAll(async () => {
    [gw, browser] = await Promise.all([startTestGateway(), launchTestBrowser({ viewport: { width: 1280, height: 900 } })]);
    await seedParticipant(gw.db, 'C1001', { status: 'connected', streams: ['steps', 'heart_rate', 'sleep'], lastSyncAt: new Date() });
    await seedParticipant(gw.db, 'C1002', { status: 'revoked', statusReason: 'the participant removed access at Fitbit', studyId: 'S2' });
    await seedLedger(gw.db, 'C1001', [
      { stream: 'steps', day: today, status: 'partial', reason: 'device last synced an hour ago: more may come', fetched: 600, delivered: 593 },
      { stream: 'heart_rate', day: today, status: 'partial', reason: 'device last synced an hour ago: more may come', fetched: 500, delivered: 500 },
      { stream: 'steps', day: addDays(today, -1), status: 'settled', fetched: 1440, delivered: 1440 },
      { stream: 'heart_rate', day: addDays(today, -1), status: 'empty', reason: 'no data: the device was not worn, or recorded nothing this day' },
      { stream: 'sleep', day: addDays(today, -1), status: 'failed', reason: 'the participant did not grant access to sleep' },
    ]);
    await seedWear(gw.db, 'C1001', addDays(today, -2), 780);
    batch = await seedBatch(gw.db, 'C1001', { status: 'parked', count: 7, day: today, reason: '403 forbidden: the researcher key may not write to C1001' });
    // The first request of a page meets the Basic challenge (401) before Chromium answers it;
    // CSP refusals are what this watches for.
    page = watchPage(await browser.newPage(), consoleErrors, 'status of 401');
  });
  afterAll(async () => {
    await browser?.close();
    await gw?.close();
  });

  it('signs in, sees the participants, opens one and reads its ledger grid, then retries a parked batch', async () => {
    await browser.context.setHTTPCredentials({ username: 'coordinator', password: gw.env.ADMIN_TOKEN, origin: gw.base });
    const response = await page.goto(`${gw.base}/admin`);
    expect(response?.status()).toBe(200);
    await expect(page.locator('h1').textContent()).resolves.toBe('Study overview');
    const c1001 = page.locator('tr[data-participant="C1001"]');
    await expect(c1001.locator('td.status').textContent()).resolves.toBe('connected');
    await expect(page.locator('tr[data-participant="C1002"] td.status').innerText()).resolves.toContain('the participant removed access at Fitbit');
    // Least worn first: C1002 wore nothing, C1001 13 hours.
    await expect(page.locator('#heatmap tbody tr').evaluateAll((rows) => rows.map((r) => (r as unknown as { dataset: { participant: string } }).dataset.participant))).resolves.toEqual(['C1002', 'C1001']);
    await expect(c1001.locator(`td[data-day="${addDays(today, -2)}"]`).innerText()).resolves.toBe('13');
    await expect(page.locator(`tr[data-batch="${batch.batchId}"]`).innerText()).resolves.toContain('403 forbidden');
    await expect(page.locator('#queues').getAttribute('href')).resolves.toBe('/admin/queues');

    // The export link downloads a CSV of the participants.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-participants')]);
    expect(download.suggestedFilename()).toBe('participants.csv');
    const csv = await readFile((await download.path())!, 'utf8');
    expect(csv.split('\n')[0]).toBe('participant_id,study_id,provider,status,status_reason,connected_at,last_sync_at,device_last_sync_at,battery_percent,enrolled_at');
    expect(csv).toContain('C1002,S2,fitbit,revoked,the participant removed access at Fitbit,');

    // Filters are a plain form: choose a study and show.
    await page.selectOption('select[name="study"]', 'S2');
    await page.click('#apply-filters');
    await page.waitForURL(/study=S2/);
    await expect(page.locator('#heatmap tbody tr').count()).resolves.toBe(1);
    await expect(page.locator('tr[data-participant="C1002"]').count()).resolves.toBe(1);
    await page.selectOption('select[name="study"]', '');
    await page.selectOption('select[name="status"]', 'connected');
    await page.click('#apply-filters');
    await page.waitForURL(/status=connected/);
    await expect(page.locator('#heatmap tbody tr').count()).resolves.toBe(1);

    // A cell opens the day in detail.
    await page.locator(`tr[data-participant="C1001"] td[data-day="${addDays(today, -1)}"] a`).click();
    await page.waitForURL(`${gw.base}/admin/participants/C1001?day=${addDays(today, -1)}#day-detail`);
    await expect(page.locator('#participant').textContent()).resolves.toBe('C1001');
    await expect(page.locator('#day-streams tr[data-stream="sleep"]').innerText()).resolves.toContain('the participant did not grant access to sleep');
    // 28 days as columns, streams as rows, and the page fits a 1280 px screen.
    await expect(page.locator('#ledger thead th').count()).resolves.toBe(29);
    await expect(page.locator('#ledger tbody th').allTextContents()).resolves.toEqual(['Hours worn', 'All streams', 'steps', 'heart_rate', 'sleep']);
    const fits = await page.evaluate(() => {
      const doc = (globalThis as unknown as { document: BrowserDocument }).document;
      return doc.documentElement.scrollWidth <= doc.documentElement.clientWidth;
    });
    expect(fits).toBe(true);
    const steps = page.locator(`#ledger td[data-stream="steps"][data-day="${today}"]`);
    await expect(steps.getAttribute('title')).resolves.toMatch(new RegExp(`^${today} partial: device last synced an hour ago: more may come\\. 600 fetched, 593 delivered, 7 parked\\.`));
    const yesterday = (stream: string) => page.locator(`#ledger td[data-stream="${stream}"][data-day="${addDays(today, -1)}"]`);
    await expect(yesterday('all').getAttribute('data-status')).resolves.toBe('failed');
    await expect(yesterday('sleep').getAttribute('title')).resolves.toContain('the participant did not grant access to sleep');
    await expect(page.locator(`#ledger td[data-stream="heart_rate"][data-day="${addDays(today, -5)}"]`).getAttribute('title')).resolves.toMatch(
      new RegExp(`^${addDays(today, -5)} not synced: not fetched yet\\.`),
    );
    // The stylesheets applied (the CSP let them through): a failed cell is red.
    await expect(yesterday('sleep').evaluate((el) => (globalThis as unknown as BrowserWindow).getComputedStyle(el).backgroundColor)).resolves.toBe('rgb(248, 210, 210)');

    await page.click(`#retry-${batch.batchId}`);
    await page.waitForURL(`${gw.base}/admin/participants/C1001?retried=${batch.batchId}`);
    await expect(page.locator('#notice').textContent()).resolves.toContain(`Batch ${batch.batchId} is back in the delivery queue`);
    await expect(page.locator('#no-parked').count()).resolves.toBe(1);
    expect(consoleErrors).toEqual([]);

    // What the button changed in Postgres, and the delivery it queued.
    expect(await recordsOf(gw.db, batch.recordIds)).toEqual(batch.recordIds.map((id) => ({ id, status: 'pending', batch_id: null })));
    expect(await batchStatus(gw.db, batch.batchId)).toBe('abandoned');
    const job = await gw.queues.getJob('deliver', 'C1001');
    expect(job?.data).toEqual({ participantId: 'C1001', reason: 'manual' });
  });

  it('pressing Retry again from a stale page explains that the batch was already retried', async () => {
    await page.goto(`${gw.base}/admin`);
    // The page is stale: recreate the form the coordinator still sees from before.
    await page.setContent(
      `<form method="post" action="${gw.base}/admin/deliveries/${batch.batchId}/retry"><input type="hidden" name="returnTo" value="/admin"><button id="stale">Retry</button></form>`,
    );
    await page.click('#stale');
    await page.waitForSelector('#result');
    await expect(page.locator('#result').textContent()).resolves.toBe(`Batch ${batch.batchId} is not parked any more`);
    await page.click('#back');
    await page.waitForURL(`${gw.base}/admin`);
  });

  it('on a 390 px phone the heatmap scrolls inside its own box with the participant column fixed', async () => {
    const phone = await launchTestBrowser({ viewport: { width: 390, height: 844 } });
    try {
      await phone.context.setHTTPCredentials({ username: 'coordinator', password: gw.env.ADMIN_TOKEN, origin: gw.base });
      const phoneErrors: string[] = [];
      const small = watchPage(await phone.newPage(), phoneErrors, 'status of 401');
      await small.goto(`${gw.base}/admin`);
      const box = small.locator('#heatmap-box');
      const name = small.locator('tr[data-participant="C1001"] th.p');
      const before = await name.evaluate((el) => (el as unknown as Box).getBoundingClientRect().left);
      const sizes = await box.evaluate((el) => {
        const b = el as unknown as Box;
        b.scrollLeft = 600;
        return { scrollWidth: b.scrollWidth, clientWidth: b.clientWidth, scrolled: b.scrollLeft, right: b.getBoundingClientRect().right };
      });
      // The table is wider than the box, the box no wider than the phone, and it scrolled.
      expect(sizes.scrollWidth).toBeGreaterThan(sizes.clientWidth);
      expect(sizes.right).toBeLessThanOrEqual(390);
      expect(sizes.scrolled).toBe(600);
      // The page itself does not scroll sideways; the participant column stayed put.
      const pageFits = await small.evaluate(() => {
        const doc = (globalThis as unknown as { document: BrowserDocument }).document;
        return doc.documentElement.scrollWidth <= doc.documentElement.clientWidth;
      });
      expect(pageFits).toBe(true);
      const after = await name.evaluate((el) => (el as unknown as Box).getBoundingClientRect().left);
      expect(Math.abs(after - before)).toBeLessThanOrEqual(1);
      // ...while the day cells moved under it.
      const study = small.locator('tr[data-participant="C1001"] td').first();
      await expect(study.evaluate((el) => (el as unknown as Box).getBoundingClientRect().left)).resolves.toBeLessThan(before - 300);
      expect(phoneErrors).toEqual([]);
    } finally {
      await phone.close();
    }
  });

  it('shows an open alert on the overview, and acknowledging it removes it from the open list', async () => {
    // The stale-Retry page before answered 409, which Chromium logs; this test watches its own pages.
    consoleErrors.length = 0;
    // C1001's device never reported a sync, and three complete days of the last week came without heart rate.
    await seedLedger(gw.db, 'C1001', [3, 4, 5].map((n) => ({ stream: 'heart_rate', day: addDays(today, -n), status: 'empty' as const })));
    await evaluateAlerts(gw.db, alertConfigFromEnv(gw.env), Date.now());
    await page.goto(`${gw.base}/admin`);
    const lowWear = page.locator('#alerts tr[data-participant="C1001"][data-rule="low_wear"]');
    await expect(lowWear.innerText()).resolves.toContain('watch not worn enough');
    await expect(page.locator('#alerts tr[data-participant="C1001"][data-rule="no_sync"]').innerText()).resolves.toContain('device not synced');
    await expect(page.locator('#alerts-heading').textContent()).resolves.toBe('Open alerts (2)');
    const alertId = await lowWear.getAttribute('data-alert');
    await page.click(`#ack-${alertId}`);
    await page.waitForURL(`${gw.base}/admin?acknowledged=${alertId}`);
    await expect(page.locator('#acknowledged').textContent()).resolves.toBe(`Alert ${alertId} acknowledged.`);
    await expect(page.locator(`#alerts tr[data-alert="${alertId}"]`).count()).resolves.toBe(0);
    await expect(page.locator('#alerts tr[data-rule="no_sync"]').count()).resolves.toBe(1);
    await expect(page.locator('#alerts-heading').textContent()).resolves.toBe('Open alerts (1)');
    expect(consoleErrors).toEqual([]);
  });

  it('opens Bull Board with nothing loaded from another host and no CSP refusal', async () => {
    const others: string[] = [];
    const errors: string[] = [];
    const board = watchPage(await browser.newPage(), errors, 'status of 401');
    board.on('request', (request) => {
      if (new URL(request.url()).origin !== gw.base) others.push(request.url());
    });
    const response = await board.goto(`${gw.base}/admin/queues`);
    expect(response?.status()).toBe(200);
    expect(response?.headers()['content-security-policy']).toContain("frame-ancestors 'none'");
    // The app ran (its scripts passed the CSP) and read the queues through its API.
    await board.getByText('deliver', { exact: false }).first().waitFor();
    await board.getByText('sync', { exact: false }).first().waitFor();
    await board.waitForLoadState('networkidle');
    expect(others).toEqual([]);
    expect(errors).toEqual([]);
    await board.close();
  });
});
