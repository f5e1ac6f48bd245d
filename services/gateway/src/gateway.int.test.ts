import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enqueue } from '@fitlamp/queues';
import { startOpsServer } from '@fitlamp/runtime';
import { gatewayReadinessChecks } from './app.ts';
import { buildTestGateway, type GatewayUnderTest } from '../test/gateway.ts';

/** The gateway's ops server (main.ts starts it on OPS_PORT) over `gw`'s dependencies, on port 0. */
async function opsOf(gw: GatewayUnderTest) {
  const logs: string[] = [];
  const server = await startOpsServer({
    host: '127.0.0.1',
    port: 0,
    registry: gw.registry,
    checks: gatewayReadinessChecks(gw),
    logger: { warn: (obj: unknown) => void logs.push(JSON.stringify(obj)) },
  });
  return { url: server.url, logs, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

describe('gateway basics (through app.inject)', () => {
  let gw: GatewayUnderTest;
  beforeAll(async () => {
    gw = await buildTestGateway();
  });
  afterAll(async () => {
    await gw.close();
  });

  it('answers /healthz; /readyz answers on the ops port only, ready when Postgres and Redis are up', async () => {
    const health = await gw.inject('/healthz');
    expect(health.status).toBe(200);
    expect((await gw.inject('/readyz')).status).toBe(404);
    const ops = await opsOf(gw);
    try {
      const ready = await fetch(`${ops.url}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toEqual({ status: 'ready', checks: { postgres: 'ok', redis: 'ok' } });
    } finally {
      await ops.close();
    }
  });

  it('exposes Prometheus metrics for HTTP and every queue on the ops port, not the public one', async () => {
    await enqueue(gw.queues, 'deliver', { participantId: 'U9', reason: 'manual' }, { delayMs: 60_000 });
    await gw.inject('/healthz');
    expect((await gw.inject('/metrics')).status).toBe(404);
    const ops = await opsOf(gw);
    const res = await fetch(`${ops.url}/metrics`).finally(() => ops.close());
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
  it('answers 503 naming Redis, without the driver error, while /healthz stays up', async () => {
    // Nothing listens on port 1: every Redis command fails.
    const gw = await buildTestGateway({ redisUrl: 'redis://127.0.0.1:1' });
    try {
      const ops = await opsOf(gw);
      const ready = await fetch(`${ops.url}/readyz`).finally(() => ops.close());
      expect(ready.status).toBe(503);
      // The dependency is named, the driver's error text (hosts, ports) is not: it goes to the log.
      expect(await ready.json()).toEqual({ status: 'not_ready', checks: { postgres: 'ok', redis: 'down' } });
      expect(ops.logs.join('\n')).toContain('"dependency":"redis"');
      expect((await gw.inject('/healthz')).status).toBe(200);
    } finally {
      await gw.close();
    }
  });
});
