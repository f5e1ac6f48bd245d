import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createLampSimulator, LAMP_DEFAULT_CREDENTIAL } from '@fitlamp/simulators';
import { createQueues, enqueue } from '@fitlamp/queues';
import {
  createTestDatabase,
  outboxEvents,
  seedChunk,
  serviceTestEnv,
  startProcess,
  testRedisUrl,
  uniquePrefix,
  type TestDatabase,
} from '@fitlamp/testing';

const entries = {
  gateway: 'services/gateway/src/main.ts',
  scheduler: 'services/scheduler/src/main.ts',
  fetcher: 'services/fetcher/src/main.ts',
  'lamp-writer': 'services/lamp-writer/src/main.ts',
} as const;

const malformed: Record<keyof typeof entries, [string, string]> = {
  gateway: ['PUBLIC_BASE_URL', 'not a url'],
  scheduler: ['SYNC_INTERVAL_SECONDS', '-5'],
  fetcher: ['TOKEN_ENCRYPTION_KEY', 'too-short'],
  'lamp-writer': ['LAMP_BATCH_SIZE', 'lots'],
};

describe('services as processes', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(async () => {
    await t.drop();
  });

  it.each(Object.keys(entries) as Array<keyof typeof entries>)(
    '%s stops at start with exit code 1 and one line naming a missing or malformed variable',
    async (name) => {
      const missing = startProcess(entries[name], serviceTestEnv({ DATABASE_URL: undefined }));
      const [variable, bad] = malformed[name];
      const wrong = startProcess(entries[name], serviceTestEnv({ DATABASE_URL: t.url, [variable]: bad }));
      expect(await missing.exited).toBe(1);
      expect(missing.stderr.filter(Boolean)).toEqual([`${name}: configuration error: DATABASE_URL is required but not set`]);
      expect(await wrong.exited).toBe(1);
      const lines = wrong.stderr.filter(Boolean);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^${name}: configuration error: ${variable} is invalid`));
      // The bad value itself is not echoed (it may be a secret).
      expect(lines[0]).not.toContain(bad);
    },
  );

  it.each(Object.keys(entries) as Array<keyof typeof entries>)('%s starts, then exits 0 on SIGTERM', async (name) => {
    const service = startProcess(
      entries[name],
      serviceTestEnv({ DATABASE_URL: t.url, QUEUE_PREFIX: uniquePrefix('svc'), LOG_LEVEL: 'info' }),
    );
    await service.waitForLine(/"msg":"started"/);
    expect(await service.stop('SIGTERM')).toBe(0);
    expect(service.stdout.some((l) => l.includes('"msg":"stopped"'))).toBe(true);
  });
});

describe('lamp-writer shutdown with a delivery in flight', () => {
  it('finishes the in-flight batch before exiting 0, so nothing is lost or sent twice', async () => {
    const t = await createTestDatabase();
    const lamp = createLampSimulator({ participants: [{ id: 'U7', studyId: 'S1' }] });
    const lampUrl = await lamp.app.listen({ port: 0, host: '127.0.0.1' });
    const prefix = uniquePrefix('lw');
    const redis = new Redis(testRedisUrl, { maxRetriesPerRequest: 2 });
    const queues = createQueues(redis, prefix);
    try {
      await t.db.insertInto('participants').values({ id: 'U7' }).execute();
      await seedChunk(t.db, {
        participantId: 'U7',
        stream: 'steps',
        day: '2026-11-20',
        status: 'pending',
        events: Array.from({ length: 5 }, (_, i) => ({
          key: `U7|lamp.steps|${1_763_000_000_000 + i * 60_000}|`,
          timestamp: 1_763_000_000_000 + i * 60_000,
          data: { value: 10 + i, unit: 'count', type: 'step_count', source: 'com.fitbit.webapi' },
        })),
      });
      // mindLAMP answers slowly: the POST is in flight when SIGTERM arrives.
      lamp.addFault({ route: 'Participant.create_sensor_events', fault: { kind: 'latency', ms: 1500 } });
      const writer = startProcess(
        entries['lamp-writer'],
        serviceTestEnv({
          DATABASE_URL: t.url,
          QUEUE_PREFIX: prefix,
          LOG_LEVEL: 'info',
          LAMP_API_URL: lampUrl,
          LAMP_ACCESS_KEY: LAMP_DEFAULT_CREDENTIAL.accessKey,
          LAMP_SECRET_KEY: LAMP_DEFAULT_CREDENTIAL.secretKey,
        }),
      );
      await writer.waitForLine(/"msg":"started"/);
      await enqueue(queues, 'deliver', { participantId: 'U7', reason: 'manual' });
      for (let i = 0; i < 100 && lamp.listRequests().length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      expect(lamp.listRequests().length).toBe(1);
      expect(await writer.stop('SIGTERM')).toBe(0);
      const statuses = await outboxEvents(t.db, 'U7');
      expect(statuses.map((s) => s.status)).toEqual(Array(5).fill('delivered'));
      expect(lamp.countEvents().total).toBe(5);
      expect(lamp.findDuplicates().extraCopies).toBe(0);
    } finally {
      await queues.close();
      redis.disconnect();
      await lamp.app.close();
      await t.drop();
    }
  });
});
