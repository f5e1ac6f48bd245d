import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchTestBrowser, watchPage, type TestBrowser } from '@fitlamp/testing';
import { issueLink, startTestGateway, type TestGateway } from '../test/gateway.ts';

// The attack RFC 9700 §4.7.1 is about, in a real browser: a page on another site auto-submits the
// attacker's own valid enrollment form from the victim's browser. The victim, signed in at Fitbit
// and having authorised the app before, would be sent straight back (the simulator's
// auto-consent plays that part), and their account stored under the attacker's participant id.
describe('a cross-site page that auto-submits someone else’s enrollment form', () => {
  let gw: TestGateway;
  let browser: TestBrowser;
  let attacker: Server;
  let attackerOrigin: string;
  let attackLink: string;

  beforeAll(async () => {
    [gw, browser] = await Promise.all([startTestGateway({ participants: ['U3001'] }), launchTestBrowser()]);
    attackLink = await issueLink(gw, 'U3001');
    const t = new URL(attackLink).searchParams.get('t')!;
    const page = `<!doctype html><form method="post" action="${gw.base}/connect/fitbit"><input type="hidden" name="t" value="${t}"></form><script>document.forms[0].submit()</script>`;
    attacker = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(page));
    await new Promise<void>((resolve) => attacker.listen(0, '127.0.0.1', resolve));
    // `localhost` is another site than the gateway's `127.0.0.1`.
    attackerOrigin = `http://localhost:${(attacker.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => attacker?.close(resolve));
    await gw?.close();
  });

  it('is refused by the gateway: no consent starts, the victim’s account is not stored under the attacker', async () => {
    // The victim already authorised the app at Fitbit: Fitbit would answer without asking.
    gw.fitbit.state.autoConsent = { decision: 'allow', userId: 'BBBBB2', scopes: undefined };
    const page = watchPage(await browser.newPage(), [], '403');
    await page.goto(`${attackerOrigin}/`);
    await page.waitForSelector('h1');
    expect(new URL(page.url()).origin).toBe(gw.base);
    await expect(page.locator('h1').textContent()).resolves.toBe('This request came from another website');
    expect(await gw.db.selectFrom('oauth_states').selectAll().execute()).toEqual([]);
    expect(await gw.db.selectFrom('provider_connections').selectAll().execute()).toEqual([]);
    expect(await browser.context.cookies(gw.base)).toEqual([]);
    await page.close();
  });

  it('the same form, opened from the link itself, still starts consent', async () => {
    const page = watchPage(await browser.newPage(), [], '404');
    await page.goto(attackLink);
    await page.click('#continue');
    await page.waitForSelector('#result');
    await expect(page.locator('#result').textContent()).resolves.toBe('Fitbit connected — you can close this window.');
    const row = await gw.db.selectFrom('provider_connections').selectAll().where('participant_id', '=', 'U3001').executeTakeFirstOrThrow();
    expect(row.provider_user_id).toBe('BBBBB2');
    await page.close();
  });
});
