import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { addDays } from '@fitlamp/provider';
import { jobIdFor } from '@fitlamp/queues';
import { batchStatus, launchTestBrowser, recordsOf, seedBatch, seedLedger, seedParticipant, watchPage, type TestBrowser } from '@fitlamp/testing';
import { startTestGateway, type TestGateway } from '../test/gateway.ts';

/** The one browser global used here (the workspace compiles without the DOM library). */
interface BrowserWindow {
  getComputedStyle(element: unknown): { backgroundColor: string };
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
    await seedParticipant(gw.db, 'C1002', { status: 'revoked', statusReason: 'the participant removed access at Fitbit' });
    await seedLedger(gw.db, 'C1001', [
      { stream: 'steps', day: today, status: 'partial', reason: 'device last synced an hour ago: more may come', fetched: 600, delivered: 593 },
      { stream: 'heart_rate', day: today, status: 'partial', reason: 'device last synced an hour ago: more may come', fetched: 500, delivered: 500 },
      { stream: 'steps', day: addDays(today, -1), status: 'settled', fetched: 1440, delivered: 1440 },
      { stream: 'heart_rate', day: addDays(today, -1), status: 'empty', reason: 'no data: the device was not worn, or recorded nothing this day' },
      { stream: 'sleep', day: addDays(today, -1), status: 'failed', reason: 'the participant did not grant access to sleep' },
    ]);
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
    await expect(page.locator('h1').textContent()).resolves.toBe('Coordinator dashboard');
    const c1001 = page.locator('tr[data-participant="C1001"]');
    await expect(c1001.locator('td').nth(2).textContent()).resolves.toBe('connected');
    await expect(page.locator('tr[data-participant="C1002"] td').nth(2).innerText()).resolves.toContain('the participant removed access at Fitbit');
    await expect(page.locator(`tr[data-batch="${batch.batchId}"]`).innerText()).resolves.toContain('403 forbidden');
    await expect(page.locator('#queues').getAttribute('href')).resolves.toBe('/admin/queues');

    await c1001.locator('a').click();
    await page.waitForURL(`${gw.base}/admin/participants/C1001`);
    await expect(page.locator('#participant').textContent()).resolves.toBe('C1001');
    await expect(page.locator('#ledger tbody tr').count()).resolves.toBe(14);
    await expect(page.locator('#ledger thead th').allTextContents()).resolves.toEqual(['Day', 'All streams', 'steps', 'heart_rate', 'sleep']);
    const todayRow = page.locator(`#ledger tr[data-day="${today}"]`);
    const steps = todayRow.locator('td[data-stream="steps"]');
    await expect(steps.innerText()).resolves.toMatch(/partial\s*600 \/ 593/);
    await expect(steps.getAttribute('title')).resolves.toMatch(/^partial: device last synced an hour ago: more may come\. 600 fetched, 593 delivered, 7 parked\./);
    const yesterday = page.locator(`#ledger tr[data-day="${addDays(today, -1)}"]`);
    await expect(yesterday.locator('td[data-stream="all"]').innerText()).resolves.toMatch(/^failed/);
    await expect(yesterday.locator('td[data-stream="sleep"]').getAttribute('title')).resolves.toContain('the participant did not grant access to sleep');
    await expect(page.locator(`#ledger tr[data-day="${addDays(today, -5)}"] td[data-stream="heart_rate"]`).getAttribute('title')).resolves.toMatch(
      /^not synced: not fetched yet\./,
    );
    // The stylesheets applied (the CSP let them through): a failed cell is red.
    await expect(yesterday.locator('td[data-stream="sleep"]').evaluate((el) => (globalThis as unknown as BrowserWindow).getComputedStyle(el).backgroundColor)).resolves.toBe('rgb(248, 210, 210)');

    await page.click(`#retry-${batch.batchId}`);
    await page.waitForURL(`${gw.base}/admin/participants/C1001?retried=${batch.batchId}`);
    await expect(page.locator('#notice').textContent()).resolves.toContain(`Batch ${batch.batchId} is back in the delivery queue`);
    await expect(page.locator('#no-parked').count()).resolves.toBe(1);
    expect(consoleErrors).toEqual([]);

    // What the button changed in Postgres, and the delivery it queued.
    expect(await recordsOf(gw.db, batch.recordIds)).toEqual(batch.recordIds.map((id) => ({ id, status: 'pending', batch_id: null })));
    expect(await batchStatus(gw.db, batch.batchId)).toBe('abandoned');
    const job = await gw.queues.deliver.getJob(jobIdFor('deliver', 'C1001'));
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
