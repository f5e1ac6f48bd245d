import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { createTokenCipher, parseEncryptionKey } from '@fitlamp/crypto';
import { createLampClient } from '@fitlamp/lamp';
import { createQueues, enqueue } from '@fitlamp/queues';
import { createLogger } from '@fitlamp/runtime';
import { createTestDatabase, serviceTestEnv, testRedisUrl, uniquePrefix, type TestDatabase } from '@fitlamp/testing';
import { buildGateway } from './app.ts';
import { loadGatewayEnv } from './env.ts';

async function startGateway(t: TestDatabase, redisUrl: string) {
  const env = loadGatewayEnv(serviceTestEnv({ DATABASE_URL: t.url, QUEUE_PREFIX: uniquePrefix('gw') }));
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 0, enableOfflineQueue: false, lazyConnect: true });
  redis.on('error', () => {});
  await redis.connect().catch(() => {});
  const queues = createQueues(redis, env.QUEUE_PREFIX);
  const app = await buildGateway({
    env,
    logger: createLogger({ name: 'gateway', level: 'silent' }),
    db: t.db,
    redis,
    queues,
    registry: new Registry(),
    providers: {},
    lamp: createLampClient({ baseUrl: env.LAMP_API_URL, accessKey: env.LAMP_ACCESS_KEY, secretKey: env.LAMP_SECRET_KEY }),
    cipher: createTokenCipher(parseEncryptionKey(env.TOKEN_ENCRYPTION_KEY)),
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  return {
    env,
    app,
    base,
    queues,
    async close() {
      await app.close();
      await queues.close();
      redis.disconnect();
    },
  };
}

describe('gateway basics over real HTTP', () => {
  let t: TestDatabase;
  let gw: Awaited<ReturnType<typeof startGateway>>;
  beforeAll(async () => {
    t = await createTestDatabase();
    gw = await startGateway(t, testRedisUrl);
  });
  afterAll(async () => {
    await gw.close();
    await t.drop();
  });

  it('answers /healthz and /readyz when Postgres and Redis are up', async () => {
    const health = await fetch(`${gw.base}/healthz`);
    expect(health.status).toBe(200);
    const ready = await fetch(`${gw.base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', checks: { postgres: 'ok', redis: 'ok' } });
  });

  it('exposes Prometheus metrics for HTTP and every queue', async () => {
    await enqueue(gw.queues, 'deliver', { participantId: 'U9', reason: 'manual' }, { delayMs: 60_000 });
    await fetch(`${gw.base}/healthz`);
    const res = await fetch(`${gw.base}/metrics`);
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    const text = await res.text();
    expect(text).toMatch(/fitlamp_http_requests_total\{method="GET",route="\/healthz",status="200"\} [1-9]/);
    expect(text).toContain('fitlamp_queue_jobs{queue="deliver",state="delayed"} 1');
    expect(text).toContain('fitlamp_queue_jobs{queue="sync",state="waiting"} 0');
  });

  it('keeps Bull Board behind ADMIN_TOKEN', async () => {
    expect((await fetch(`${gw.base}/admin/queues`)).status).toBe(401);
    const wrong = await fetch(`${gw.base}/admin/queues`, { headers: { authorization: 'Bearer not-the-token-at-all-000000' } });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toMatch(/Basic/);
    const apiWrong = await fetch(`${gw.base}/admin/queues/api/queues`);
    expect(apiWrong.status).toBe(401);

    const page = await fetch(`${gw.base}/admin/queues`, { headers: { authorization: `Bearer ${gw.env.ADMIN_TOKEN}` } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<html');
    const basic = Buffer.from(`admin:${gw.env.ADMIN_TOKEN}`).toString('base64');
    const api = await fetch(`${gw.base}/admin/queues/api/queues`, { headers: { authorization: `Basic ${basic}` } });
    expect(api.status).toBe(200);
    const body = (await api.json()) as { queues: Array<{ name: string }> };
    expect(body.queues.map((q) => q.name).sort()).toEqual(['deliver', 'sync']);
  });
});

describe('gateway readiness with Redis unreachable', () => {
  it('answers 503 naming Redis while /healthz stays up', async () => {
    const t = await createTestDatabase();
    // Nothing listens on port 1: every Redis command fails.
    const gw = await startGateway(t, 'redis://127.0.0.1:1');
    try {
      const ready = await fetch(`${gw.base}/readyz`);
      expect(ready.status).toBe(503);
      const body = (await ready.json()) as { status: string; checks: Record<string, string> };
      expect(body.status).toBe('not_ready');
      expect(body.checks.postgres).toBe('ok');
      expect(body.checks.redis).not.toBe('ok');
      expect((await fetch(`${gw.base}/healthz`)).status).toBe(200);
    } finally {
      await gw.close();
      await t.drop();
    }
  });
});
