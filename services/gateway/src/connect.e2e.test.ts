import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { launchTestBrowser, watchPage, type TestBrowser, storedToken } from '@fitlamp/testing';
import { signEnrollment, enrollmentUrl } from './enrollment.ts';
import { issueLink, startTestGateway, type TestGateway } from '../test/gateway.ts';

// A participant's view: headless Chromium against the real gateway (port 0), the Fitbit
// simulator's consent screen and the mindLAMP simulator, on real Postgres and Redis.
describe('participant connects in a real browser', () => {
  let gw: TestGateway;
  let browser: TestBrowser;
  let page: Page;
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    [gw, browser] = await Promise.all([startTestGateway({ participants: ['U2001', 'U2002', 'U2003'] }), launchTestBrowser()]);
    // Favicon 404s (the simulator has none) are noise; CSP refusals are what this watches for.
    page = watchPage(await browser.newPage(), consoleErrors, '404');
  });
  afterAll(async () => {
    await browser?.close();
    await gw?.close();
  });

  it('opens the link, allows at Fitbit, sees the success page; the tokens are encrypted in Postgres', async () => {
    const opened = await page.goto(await issueLink(gw, 'U2001'));
    expect(opened?.status()).toBe(200);
    await expect(page.locator('#participant').textContent()).resolves.toBe('U2001');
    expect(await page.locator('li').allTextContents()).toContain('Sleep: times and stages');
    await page.click('#continue');

    await page.waitForSelector('#allow');
    const fitbitUser = await page.locator('#user').inputValue();
    await page.click('#allow');

    await page.waitForSelector('#result');
    expect(new URL(page.url()).pathname).toBe('/oauth/fitbit/callback');
    await expect(page.locator('#result').textContent()).resolves.toBe('Fitbit connected — you can close this window.');
    // The CSP let the form go on to Fitbit and blocked nothing the pages use.
    expect(consoleErrors).toEqual([]);

    const row = await gw.db.selectFrom('provider_connections').selectAll().where('participant_id', '=', 'U2001').executeTakeFirstOrThrow();
    const issuedRefresh = gw.fitbit.state.activeRefresh.get(fitbitUser)!;
    const issuedAccess = [...gw.fitbit.state.accessTokens.values()].find((t) => t.userId === fitbitUser)!.token;
    expect(row).toMatchObject({ status: 'connected', provider_user_id: fitbitUser, key_id: 'test1' });
    expect(row.access_token_enc).not.toBe(issuedAccess);
    expect(row.refresh_token_enc).not.toBe(issuedRefresh);
    expect(row.access_token_enc).toMatch(/^v2\.test1\./);
    expect(row.refresh_token_enc).toMatch(/^v2\.test1\./);
    expect(storedToken(gw.cipher, row, 'access_token_enc')).toBe(issuedAccess);
    expect(storedToken(gw.cipher, row, 'refresh_token_enc')).toBe(issuedRefresh);
  });

  it('denies at Fitbit, sees a friendly page with a way to try again, and nothing is stored', async () => {
    await page.goto(await issueLink(gw, 'U2002'));
    await page.click('#continue');
    await page.waitForSelector('#deny');
    await page.click('#deny');
    await page.waitForSelector('#result');
    await expect(page.locator('#result').textContent()).resolves.toBe('Fitbit was not connected');
    const rows = await gw.db.selectFrom('provider_connections').select('id').where('participant_id', '=', 'U2002').execute();
    expect(rows).toEqual([]);

    await page.click('#retry');
    await page.waitForSelector('#continue');
    await expect(page.locator('#participant').textContent()).resolves.toBe('U2002');
  });

  it('refuses a tampered link', async () => {
    const link = new URL(await issueLink(gw, 'U2003'));
    const [payload, sig] = link.searchParams.get('t')!.split('.') as [string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
    const forged = Buffer.from(JSON.stringify({ ...claims, p: 'U2001' })).toString('base64url');
    link.searchParams.set('t', `${forged}.${sig}`);
    const response = await page.goto(link.toString());
    expect(response?.status()).toBe(400);
    await expect(page.locator('#result').textContent()).resolves.toBe('This link is not valid');
    expect(await page.locator('#continue').count()).toBe(0);
  });

  it('refuses an expired link', async () => {
    const token = signEnrollment(gw.env.ENROLLMENT_SECRET, { participantId: 'U2003', provider: 'fitbit', expiresAt: Date.now() - 3_600_000 });
    const response = await page.goto(enrollmentUrl(gw.env.PUBLIC_BASE_URL, 'fitbit', token));
    expect(response?.status()).toBe(410);
    await expect(page.locator('#result').textContent()).resolves.toBe('This link has expired');
    expect(await page.locator('body').textContent()).toContain('ask the study team for a new link');
  });
});
