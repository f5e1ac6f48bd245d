import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { launchTestBrowser, watchPage, type TestBrowser } from '@fitlamp/testing';
import { enrollmentUrl, signEnrollment } from './enrollment.ts';
import { issueLink, startTestGateway, type TestGateway } from '../test/gateway.ts';

// A participant's view of the Google Health flow: headless Chromium against the real gateway,
// the Google Health simulator's consent screen and the mindLAMP simulator, on Postgres and Redis.
describe('participant connects Google Health in a real browser', () => {
  let gw: TestGateway;
  let browser: TestBrowser;
  let page: Page;
  const consoleErrors: string[] = [];
  const googleLink = (participantId: string) => issueLink(gw, participantId, { provider: 'google-health' });

  beforeAll(async () => {
    [gw, browser] = await Promise.all([startTestGateway({ participants: ['U4001', 'U4002', 'U4003', 'U4004'], google: true }), launchTestBrowser()]);
    page = watchPage(await browser.newPage(), consoleErrors, '404');
  });
  afterAll(async () => {
    await browser?.close();
    await gw?.close();
  });

  it('opens the link, continues at Google, sees the success page; identity and encrypted tokens stored', async () => {
    expect((await page.goto(await googleLink('U4001')))?.status()).toBe(200);
    await expect(page.locator('#participant').textContent()).resolves.toBe('U4001');
    await page.click('#continue');
    await page.waitForSelector('#allow');
    const url = new URL(page.url());
    expect(url.searchParams.get('access_type')).toBe('offline');
    expect(url.searchParams.get('prompt')).toBe('consent');
    expect(url.searchParams.get('code_challenge_method')).toBe('S256');
    expect(url.searchParams.get('scope')).not.toContain('cloud-platform');
    const user = await page.locator('#user').inputValue();
    await page.click('#allow');
    await page.waitForSelector('#result');
    expect(new URL(page.url()).pathname).toBe('/oauth/google-health/callback');
    await expect(page.locator('#result').textContent()).resolves.toBe('Google Health connected — you can close this window.');
    expect(consoleErrors).toEqual([]);
    const row = await gw.db.selectFrom('provider_connections').selectAll().where('participant_id', '=', 'U4001').executeTakeFirstOrThrow();
    expect(row).toMatchObject({ provider: 'google-health', status: 'connected', provider_user_id: gw.google!.healthUserId(user), legacy_user_id: user });
    expect(row.refresh_token_enc).toMatch(/^v2\.test1\./);
  });

  it('unticks a scope at Google and is told which data will not be collected', async () => {
    await page.goto(await googleLink('U4002'));
    await page.click('#continue');
    await page.waitForSelector('#allow');
    await page.uncheck('input[name="scope"][value$="sleep.readonly"]');
    await page.click('#allow');
    await page.waitForSelector('#result');
    await expect(page.locator('#result').textContent()).resolves.toBe('Google Health connected — you can close this window.');
    expect(await page.locator('#missing li').allTextContents()).toContain('Sleep: times and stages');
    await page.click('#retry');
    await page.waitForSelector('#continue');
    await expect(page.locator('#participant').textContent()).resolves.toBe('U4002');
  });

  it('cancels at Google, sees a friendly page with a way to try again, and nothing is stored', async () => {
    await page.goto(await googleLink('U4003'));
    await page.click('#continue');
    await page.waitForSelector('#deny');
    await page.click('#deny');
    await page.waitForSelector('#result');
    await expect(page.locator('#result').textContent()).resolves.toBe('Google Health was not connected');
    expect(await gw.db.selectFrom('provider_connections').select('id').where('participant_id', '=', 'U4003').execute()).toEqual([]);
    await page.click('#retry');
    await page.waitForSelector('#continue');
  });

  it('refuses a tampered or expired link', async () => {
    const link = new URL(await googleLink('U4004'));
    const [payload, sig] = link.searchParams.get('t')!.split('.') as [string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
    link.searchParams.set('t', `${Buffer.from(JSON.stringify({ ...claims, p: 'U4001' })).toString('base64url')}.${sig}`);
    expect((await page.goto(link.toString()))?.status()).toBe(400);
    await expect(page.locator('#result').textContent()).resolves.toBe('This link is not valid');
    const token = signEnrollment(gw.env.ENROLLMENT_SECRET, { participantId: 'U4004', provider: 'google-health', expiresAt: Date.now() - 60_000 });
    expect((await page.goto(enrollmentUrl(gw.env.PUBLIC_BASE_URL, 'google-health', token)))?.status()).toBe(410);
    await expect(page.locator('#result').textContent()).resolves.toBe('This link has expired');
  });
});
