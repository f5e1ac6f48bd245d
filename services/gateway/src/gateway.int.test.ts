import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enqueue } from '@fitlamp/queues';
import { buildTestGateway, type GatewayUnderTest } from '../test/gateway.ts';

describe('gateway basics (through app.inject)', () => {
  let gw: GatewayUnderTest;
  beforeAll(async () => {
    gw = await buildTestGateway();
  });
  afterAll(async () => {
    await gw.close();
  });

  it('answers /healthz and /readyz when Postgres and Redis are up', async () => {
    const health = await gw.inject('/healthz');
    expect(health.status).toBe(200);
    const ready = await gw.inject('/readyz');
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', checks: { postgres: 'ok', redis: 'ok' } });
  });

  it('exposes Prometheus metrics for HTTP and every queue', async () => {
    await enqueue(gw.queues, 'deliver', { participantId: 'U9', reason: 'manual' }, { delayMs: 60_000 });
    await gw.inject('/healthz');
    const res = await gw.inject('/metrics');
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    const text = await res.text();
    expect(text).toMatch(/fitlamp_http_requests_total\{method="GET",route="\/healthz",status="200"\} [1-9]/);
    expect(text).toContain('fitlamp_queue_jobs{queue="deliver",shard="0",state="delayed"} 1');
    expect(text).toContain('fitlamp_queue_jobs{queue="sync",shard="0",state="waiting"} 0');
  });

  it('keeps Bull Board behind ADMIN_TOKEN', async () => {
    expect((await gw.inject('/admin/queues')).status).toBe(401);
    const wrong = await gw.inject('/admin/queues', { headers: { authorization: 'Bearer not-the-token-at-all-000000' } });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toMatch(/Basic/);
    const apiWrong = await gw.inject('/admin/queues/api/queues');
    expect(apiWrong.status).toBe(401);

    const page = await gw.inject('/admin/queues', { headers: { authorization: `Bearer ${gw.env.ADMIN_TOKEN}` } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<html');
    const basic = Buffer.from(`admin:${gw.env.ADMIN_TOKEN}`).toString('base64');
    const api = await gw.inject('/admin/queues/api/queues', { headers: { authorization: `Basic ${basic}` } });
    expect(api.status).toBe(200);
    const body = (await api.json()) as { queues: Array<{ name: string }> };
    expect(body.queues.map((q) => q.name).sort()).toEqual(['deliver', 'sync']);
  });
});

describe('gateway readiness with Redis unreachable', () => {
  it('answers 503 naming Redis while /healthz stays up', async () => {
    // Nothing listens on port 1: every Redis command fails.
    const gw = await buildTestGateway({ redisUrl: 'redis://127.0.0.1:1' });
    try {
      const ready = await gw.inject('/readyz');
      expect(ready.status).toBe(503);
      const body = (await ready.json()) as { status: string; checks: Record<string, string> };
      expect(body.status).toBe('not_ready');
      expect(body.checks.postgres).toBe('ok');
      expect(body.checks.redis).not.toBe('ok');
      expect((await gw.inject('/healthz')).status).toBe(200);
    } finally {
      await gw.close();
    }
  });
});
