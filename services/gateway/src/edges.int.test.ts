import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestGateway, type GatewayUnderTest } from '../test/gateway.ts';
import { loadGatewayEnv } from './env.ts';
import { serviceTestEnv } from '@fitlamp/testing';

// The gateway's edges, on real Postgres and Redis through app.inject (whose socket address is
// 127.0.0.1): who the client is behind proxies, the admin rate limit, Bull Board's own CSP and
// cross-site refusal, request ids on every answer.

const randomAddress = () => `198.51.100.${1 + randomBytes(1)[0]! % 250}`;

/** Statuses of `n` GETs of a public page, each with its own X-Forwarded-For from `forwardedFor`. */
async function statuses(gw: GatewayUnderTest, n: number, forwardedFor: () => string): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    out.push((await gw.inject('/connect/fitbit?user_id=U1', { headers: { 'x-forwarded-for': forwardedFor() } })).status);
  }
  return out;
}

describe('TRUST_PROXY', () => {
  it('parses false, a hop count, or proxy addresses and CIDRs, and refuses anything else', () => {
    const parse = (v?: string) => loadGatewayEnv(serviceTestEnv({ TRUST_PROXY: v })).TRUST_PROXY;
    expect(parse()).toBe(false);
    expect(parse('1')).toBe(1);
    expect(parse('10.0.0.0/8, 192.168.1.7')).toEqual(['10.0.0.0/8', '192.168.1.7']);
    expect(() => parse('true')).toThrow(/TRUST_PROXY is invalid/);
    expect(() => parse('10.0.0.0/8,evil')).toThrow(/TRUST_PROXY is invalid/);
  });

  describe('by default no proxy is trusted', () => {
    let gw: GatewayUnderTest;
    beforeAll(async () => {
      gw = await buildTestGateway({ env: { PUBLIC_RATE_LIMIT_PER_MINUTE: '3' } });
    });
    afterAll(async () => gw?.close());

    it('does not let a rotating X-Forwarded-For escape the rate limit', async () => {
      expect(await statuses(gw, 5, randomAddress)).toEqual([400, 400, 400, 429, 429]);
    });
  });

  describe('with one trusted hop (the Ingress controller)', () => {
    let gw: GatewayUnderTest;
    beforeAll(async () => {
      gw = await buildTestGateway({ env: { PUBLIC_RATE_LIMIT_PER_MINUTE: '3', TRUST_PROXY: '1' } });
    });
    afterAll(async () => gw?.close());

    it('counts the address the proxy saw, whatever the client wrote before it', async () => {
      // The client forges the leftmost entries; the proxy appends the address it saw.
      expect(await statuses(gw, 5, () => `${randomAddress()}, 203.0.113.7`)).toEqual([400, 400, 400, 429, 429]);
      // Another client behind the same proxy has its own allowance.
      expect(await statuses(gw, 1, () => '203.0.113.8')).toEqual([400]);
    });
  });
});

describe('admin edges', () => {
  let gw: GatewayUnderTest;
  beforeAll(async () => {
    gw = await buildTestGateway();
  });
  afterAll(async () => gw?.close());

  it('serves Bull Board with its own CSP, without the third-party web font', async () => {
    const page = await gw.inject('/admin/queues', { headers: gw.admin });
    expect(page.status).toBe(200);
    const csp = page.headers.get('content-security-policy') ?? '';
    for (const directive of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "font-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"]) {
      expect(csp).toContain(directive);
    }
    expect(csp).not.toMatch(/https?:/);
    const html = await page.text();
    expect(html).toContain('static/js/main.');
    expect(html).not.toContain('fonts.googleapis.com');
    expect(html).not.toMatch(/(href|src)="https?:/);
  });

  it("refuses Bull Board's write API from another site, changing nothing", async () => {
    const add = (headers: Record<string, string>) =>
      gw.inject('/admin/queues/api/queues/sync/add', {
        method: 'POST',
        headers: { ...gw.admin, 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ name: 'sync', data: { participantId: 'U1' } }),
      });
    expect((await add({ origin: 'https://evil.example' })).status).toBe(403);
    expect((await add({ 'sec-fetch-site': 'cross-site' })).status).toBe(403);
    const pause = await gw.inject('/admin/queues/api/queues/pause', { method: 'PUT', headers: { ...gw.admin, 'sec-fetch-site': 'same-site' } });
    expect(pause.status).toBe(403);
    expect(await gw.queues.count('sync')).toBe(0);
    for (const queue of gw.queues.sync) expect(await queue.isPaused()).toBe(false);
    // From the gateway's own pages it works: the refusal is about where, not what.
    const sameOrigin = await gw.inject('/admin/queues/api/queues', { headers: { ...gw.admin, 'sec-fetch-site': 'same-origin' } });
    expect(sameOrigin.status).toBe(200);
  });

});

describe('admin rate limit', () => {
  let gw: GatewayUnderTest;
  beforeAll(async () => {
    gw = await buildTestGateway({ env: { ADMIN_RATE_LIMIT_PER_MINUTE: '8' } });
  });
  afterAll(async () => gw?.close());

  it('sends a request id with every answer, and rate limits /admin, wrong tokens included', async () => {
    const res = await gw.inject('/admin/participants', { headers: gw.admin });
    expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const seen: number[] = [];
    for (let i = 0; i < 10; i++) {
      const wrong = i % 2 === 0;
      seen.push((await gw.inject('/admin/participants', { headers: wrong ? { authorization: 'Bearer wrong-token-000000000000000' } : gw.admin })).status);
    }
    // One request above; the limit is 8 a minute, failed sign-ins counted.
    expect(seen).toEqual([401, 200, 401, 200, 401, 200, 401, 429, 429, 429]);
    expect((await gw.inject('/admin/queues/api/queues', { headers: gw.admin })).status).toBe(429);
  });
});
