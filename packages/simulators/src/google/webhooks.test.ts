import { createPublicKey, verify } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connectUser, control, startSimulator, type Running } from '../../test/google.ts';

const SECRET = 'Bearer webhook-secret-123';

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

/** A subscriber endpoint: checks Authorization on verification, answers notifications from a script. */
async function startReceiver(): Promise<{ url: string; received: Received[]; script: number[]; verification: 'honest' | 'always-200'; server: Server }> {
  const state = { received: [] as Received[], script: [] as number[], verification: 'honest' as 'honest' | 'always-200' };
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      state.received.push({ headers: req.headers, body });
      if (body === '{"type":"verification"}') {
        res.statusCode = state.verification === 'always-200' || req.headers.authorization === SECRET ? 201 : 401;
        if (state.verification === 'always-200') res.statusCode = 200;
      } else {
        res.statusCode = state.script.shift() ?? 204;
      }
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/google-health`;
  return Object.assign(state, { url, server });
}

let run: Running;
let receiver: Awaited<ReturnType<typeof startReceiver>>;
beforeEach(async () => {
  run = await startSimulator({ users: [{ preset: 'new-york', id: 'NYC001', since: '2026-10-20', autoSyncMinutes: 0 }, { preset: 'sydney', id: 'SYD001', since: '2026-10-20', autoSyncMinutes: 0 }] });
  receiver = await startReceiver();
});
afterEach(async () => {
  await run.sim.app.close();
  await new Promise((resolve) => receiver.server.close(resolve));
});

const project = () => run.sim.state.webhooks.projectNumber;
async function createSubscriber(opts: { id?: string; project?: string; dataTypes?: string[]; token?: string } = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(`${run.url}/v4/projects/${opts.project ?? project()}/subscribers?subscriberId=${opts.id ?? 'fitlamp-sub'}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${opts.token ?? run.sim.state.webhooks.serviceAccountToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      endpointUri: receiver.url,
      subscriberConfigs: [{ dataTypes: opts.dataTypes ?? ['steps', 'sleep', 'heart-rate', 'daily-resting-heart-rate'], subscriptionCreatePolicy: 'AUTOMATIC' }],
      endpointAuthorization: { secret: SECRET },
    }),
  });
  return { status: res.status, body: await res.json() };
}
const notifications = () => receiver.received.filter((r) => r.body !== '{"type":"verification"}');

/** Verifies a Tink signature against the published keyset, decoding the keyset by hand. */
function verifyTink(keyset: any, body: string, header: string): boolean {
  const raw = Buffer.from(header, 'base64');
  if (raw[0] !== 0x01) return false;
  const keyId = raw.readUInt32BE(1);
  const key = keyset.key.find((k: any) => k.keyId === keyId);
  if (!key || key.outputPrefixType !== 'TINK' || key.keyData.typeUrl !== 'type.googleapis.com/google.crypto.tink.EcdsaPublicKey') return false;
  // EcdsaPublicKey: fields 2 (params), 3 (x), 4 (y), each length-delimited.
  const proto = Buffer.from(key.keyData.value, 'base64');
  const fields: Record<number, Buffer> = {};
  for (let i = 0; i < proto.length; ) {
    const tag = proto[i] ?? 0;
    const len = proto[i + 1] ?? 0;
    fields[tag >> 3] = proto.subarray(i + 2, i + 2 + len);
    i += 2 + len;
  }
  expect([...(fields[2] ?? [])]).toEqual([0x08, 0x03, 0x10, 0x02, 0x18, 0x02]); // SHA256, NIST_P256, DER
  const coord = (b: Buffer | undefined) => {
    const stripped = b && b.length === 33 && b[0] === 0 ? b.subarray(1) : (b ?? Buffer.alloc(0));
    return Buffer.concat([Buffer.alloc(32 - stripped.length), stripped]).toString('base64url');
  };
  const publicKey = createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: coord(fields[3]), y: coord(fields[4]) }, format: 'jwk' });
  return verify('sha256', Buffer.from(body), { key: publicKey, dsaEncoding: 'der' }, raw.subarray(5));
}

describe('subscribers', () => {
  it('create runs the two-step verification and answers an Operation with an ACTIVE subscriber', async () => {
    const res = await createSubscriber();
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      done: true,
      response: {
        '@type': 'type.googleapis.com/google.devicesandservices.health.v4.Subscriber',
        name: `projects/${project()}/subscribers/fitlamp-sub`,
        endpointUri: receiver.url,
        state: 'ACTIVE',
        endpointAuthorization: { secretSet: true },
      },
    });
    expect(JSON.stringify(res.body)).not.toContain('webhook-secret-123');
    expect(receiver.received).toHaveLength(2);
    const [first, second] = receiver.received;
    expect(first?.headers).toMatchObject({ authorization: SECRET, 'content-type': 'application/json', 'user-agent': 'Google-Health-API-Webhooks-Verifier' });
    expect(second?.headers.authorization).toBeUndefined();
    expect(first?.body).toBe('{"type":"verification"}');
    const listed = await fetch(`${run.url}/v4/projects/${project()}/subscribers`, { headers: { authorization: `Bearer ${run.sim.state.webhooks.serviceAccountToken}` } });
    expect(await listed.json()).toMatchObject({ totalSize: 1, subscribers: [{ state: 'ACTIVE' }] });
    expect((await control(run.url, 'GET', '/webhooks')).body.subscribers).toMatchObject([{ id: 'fitlamp-sub', state: 'ACTIVE', secretSet: true }]);
  });

  it('an endpoint that does not check Authorization fails verification (FAILED_PRECONDITION)', async () => {
    receiver.verification = 'always-200';
    const res = await createSubscriber();
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ status: 'FAILED_PRECONDITION', message: expect.stringContaining('without the Authorization header') });
    expect(run.sim.state.webhooks.subscribers.size).toBe(0);
  });

  it('refuses a project id instead of the number, a bad subscriberId, and a user token', async () => {
    expect((await createSubscriber({ project: 'my-project' })).status).toBe(403);
    expect((await createSubscriber({ id: 'X' })).body.error.details[0].reason).toBe('INVALID_SUBSCRIBER_NAME');
    const user = (await connectUser(run.url)).access_token;
    expect((await createSubscriber({ token: user })).status).toBe(403);
    expect((await createSubscriber({ dataTypes: ['heart_rate'] })).body.error.details[0].reason).toBe('INVALID_DATA_TYPE_FORMAT');
  });
});

describe('notifications', () => {
  it('a sync of a consenting user sends signed UPSERT notifications with the exact Authorization value', async () => {
    await connectUser(run.url, { user: 'NYC001' });
    await createSubscriber();
    expect(notifications()).toHaveLength(0); // no backfill of data before the subscriber
    const sync = await control(run.url, 'POST', '/sync', { userId: 'NYC001' });
    expect(sync.body.notifications).toBeGreaterThan(0);
    const got = notifications();
    expect(got.length).toBe(sync.body.notifications);
    const keyset: any = await (await fetch(`${run.url}/googlehealthapi/webhooks/webhooks_public_keyset.json`)).json();
    expect(keyset.key[0]).toMatchObject({ status: 'ENABLED', outputPrefixType: 'TINK', keyData: { keyMaterialType: 'ASYMMETRIC_PUBLIC' } });
    for (const n of got) {
      expect(n.headers.authorization).toBe(SECRET);
      expect(n.headers['content-type']).toBe('application/json');
      expect(n.headers['x-healthapi-signature']).toBeDefined();
      expect(verifyTink(keyset, n.body, String(n.headers['x-healthapi-signature']))).toBe(true);
      expect(verifyTink(keyset, `${n.body} `, String(n.headers['x-healthapi-signature']))).toBe(false);
    }
    const bodies = got.map((n) => JSON.parse(n.body).data);
    expect(bodies.map((b) => b.dataType).sort()).toEqual(['daily-resting-heart-rate', 'heart-rate', 'sleep', 'steps']);
    const steps = bodies.find((b) => b.dataType === 'steps');
    expect(steps).toMatchObject({ version: '1', healthUserId: run.sim.healthUserId('NYC001'), operation: 'UPSERT', clientProvidedSubscriptionName: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    const last = steps.intervals[steps.intervals.length - 1];
    expect(last).toEqual({
      physicalTimeInterval: { startTime: '2026-11-03T05:00:00Z', endTime: '2026-11-03T15:00:00Z' },
      civilDateTimeInterval: { startDateTime: { date: { year: 2026, month: 11, day: 3 } }, endDateTime: { date: { year: 2026, month: 11, day: 3 }, time: { hours: 10 } } },
      civilIso8601TimeInterval: { startTime: '2026-11-03T00:00:00', endTime: '2026-11-03T10:00:00' },
    });
    const deliveries = (await control(run.url, 'GET', '/webhooks/deliveries')).body.deliveries;
    expect(deliveries.every((d: any) => d.state === 'delivered' && d.lastStatus === 204)).toBe(true);
  });

  it('with notifyAfterMs, a sync is notified only once that long has passed', async () => {
    await run.sim.app.close();
    run = await startSimulator({
      users: [{ preset: 'new-york', id: 'NYC001', since: '2026-10-20', autoSyncMinutes: 0 }],
      webhooks: { notifyAfterMs: 5_000 },
    });
    await connectUser(run.url, { user: 'NYC001' });
    await createSubscriber();
    await control(run.url, 'POST', '/clock', { frozen: true });
    const sync = await control(run.url, 'POST', '/sync', { userId: 'NYC001' });
    expect(sync.body.notifications).toBe(0);
    await control(run.url, 'POST', '/clock', { advanceMs: 4_999 });
    await run.sim.flushWebhooks();
    expect(notifications()).toHaveLength(0);
    await control(run.url, 'POST', '/clock', { advanceMs: 1 });
    await run.sim.flushWebhooks();
    expect(notifications().map((n) => JSON.parse(n.body).data.dataType).sort()).toEqual(['daily-resting-heart-rate', 'heart-rate', 'sleep', 'steps']);
  });

  it('a later sync notifies only the types it added or modified (UPSERT), not every type with data', async () => {
    await connectUser(run.url, { user: 'NYC001' });
    await createSubscriber();
    await control(run.url, 'POST', '/sync', { userId: 'NYC001' });
    // The night this sync brought is processed after it: a later sync is told of it.
    await control(run.url, 'POST', '/clock', { advanceMs: 3 * 3_600_000 });
    await control(run.url, 'POST', '/sync', { userId: 'NYC001' });
    const first = notifications().length;
    // Half an hour more of a worn watch, at 13:30 in New York: new minutes; yesterday's resting
    // heart rate is final and today's comes once the day is complete, so none is upserted.
    await control(run.url, 'POST', '/clock', { advanceMs: 30 * 60_000 });
    await control(run.url, 'POST', '/sync', { userId: 'NYC001' });
    const types = notifications().slice(first).map((n) => JSON.parse(n.body).data.dataType);
    expect(types).toContain('heart-rate');
    expect(types).not.toContain('daily-resting-heart-rate');
  });

  it('users without a grant (or after revoking) get no notifications', async () => {
    const tokens = await connectUser(run.url, { user: 'NYC001' });
    await createSubscriber();
    await fetch(`${run.url}/revoke`, { method: 'POST', body: new URLSearchParams({ token: tokens.refresh_token ?? '' }) });
    await control(run.url, 'POST', '/sync');
    expect(notifications()).toHaveLength(0);
  });

  it('revoked, then connected again: no notification while revoked, then from the new grant on', async () => {
    const tokens = await connectUser(run.url, { user: 'NYC001' });
    await createSubscriber({ dataTypes: ['steps'] });
    await control(run.url, 'POST', '/clock', { frozen: true });
    await fetch(`${run.url}/revoke`, { method: 'POST', body: new URLSearchParams({ token: tokens.refresh_token ?? '' }) });
    await control(run.url, 'POST', '/sync', { userId: 'NYC001' });
    expect(notifications()).toHaveLength(0);
    expect(run.sim.state.webhooks.notifiedUpTo.keysOf('NYC001')).toEqual([]);
    await control(run.url, 'POST', '/clock', { advanceMs: 3_600_000 });
    await connectUser(run.url, { user: 'NYC001' });
    // The sync made while revoked is before the new grant: not notified (no backfill).
    await run.sim.flushWebhooks();
    expect(notifications()).toHaveLength(0);
    await control(run.url, 'POST', '/clock', { advanceMs: 3_600_000 });
    const sync = await control(run.url, 'POST', '/sync', { userId: 'NYC001' });
    expect(sync.body.notifications).toBe(1);
    const [n] = notifications();
    const intervals = JSON.parse(n?.body ?? '{}').data.intervals;
    // From the new grant's baseline (the sync made while revoked), not from the first grant.
    expect(intervals.at(-1).physicalTimeInterval.endTime).toBe('2026-11-03T17:00:00Z');
    expect(run.sim.state.webhooks.notifiedUpTo.keysOf('NYC001')).toEqual(['fitlamp-sub|NYC001']);
  });

  it('on a clock faster than real time, the timer notifies a sync notifyAfterMs of simulated time after it', async () => {
    await run.sim.app.close();
    // 1,000 × real time: 5 s simulated is 5 ms real. The full pass is an hour of real time away,
    // so only the notification planned on the simulated clock can arrive.
    const t0 = Date.parse('2026-11-03T15:00:00Z');
    const r0 = Date.now();
    const speed = 1000;
    const clock = { now: () => t0 + (Date.now() - r0) * speed, set() {}, advance() {}, freeze() {}, isFrozen: () => false, rate: () => speed };
    run = await startSimulator({
      users: [{ preset: 'new-york', id: 'NYC001', since: '2026-10-20', autoSyncMinutes: 0 }],
      clock,
      webhooks: { notifyAfterMs: 5_000, deliveryIntervalMs: 3_600_000 },
    });
    await connectUser(run.url, { user: 'NYC001' });
    await createSubscriber({ dataTypes: ['steps'] });
    const syncedAt = clock.now() + 60_000;
    run.sim.recordSync('NYC001', syncedAt);
    const notifiedAt: number[] = [];
    const started = Date.now();
    while (notifications().length === 0 && Date.now() - started < 30_000) {
      await new Promise((r) => setTimeout(r, 5));
      if (notifications().length > 0) notifiedAt.push(clock.now());
    }
    expect(notifications()).toHaveLength(1);
    expect(notifiedAt[0]! - syncedAt).toBeGreaterThanOrEqual(5_000);
    expect(JSON.parse(notifications()[0]!.body).data.intervals.at(-1).physicalTimeInterval.endTime).toBe(new Date(syncedAt).toISOString().replace(/\.\d+Z$/, 'Z'));
  });

  it('retries with backoff until the endpoint answers 204 (a 200 is not enough)', async () => {
    await connectUser(run.url, { user: 'NYC001' });
    await createSubscriber({ dataTypes: ['steps'] });
    receiver.script.push(500, 200);
    await control(run.url, 'POST', '/sync', { userId: 'NYC001' });
    let [d] = (await control(run.url, 'GET', '/webhooks/deliveries')).body.deliveries;
    expect(d).toMatchObject({ state: 'pending', lastStatus: 500 });
    await control(run.url, 'POST', '/webhooks/flush');
    expect(notifications()).toHaveLength(1); // not due yet: the retry waits in simulated time
    await control(run.url, 'POST', '/clock', { advanceMs: 1000 });
    [d] = (await control(run.url, 'GET', '/webhooks/deliveries')).body.deliveries;
    expect(d).toMatchObject({ state: 'pending', lastStatus: 200 });
    await control(run.url, 'POST', '/clock', { advanceMs: 2000 });
    [d] = (await control(run.url, 'GET', '/webhooks/deliveries')).body.deliveries;
    expect(d).toMatchObject({ state: 'delivered', lastStatus: 204 });
    expect(d.attempts.map((a: any) => a.status)).toEqual([500, 200, 204]);
    const got = notifications();
    expect(got).toHaveLength(3);
    expect(new Set(got.map((n) => n.body)).size).toBe(1);
  });

  it('forced duplicates: the same body delivered again after its 204', async () => {
    await connectUser(run.url, { user: 'NYC001' });
    await createSubscriber({ dataTypes: ['steps'] });
    expect((await control(run.url, 'POST', '/webhooks/duplicates', { count: 1 })).body).toEqual({ duplicateNext: 1 });
    await control(run.url, 'POST', '/sync', { userId: 'NYC001' });
    const got = notifications();
    expect(got).toHaveLength(2);
    expect(got[0]?.body).toBe(got[1]?.body);
    const deliveries = (await control(run.url, 'GET', '/webhooks/deliveries')).body.deliveries;
    expect(deliveries.map((d: any) => [d.duplicateOf, d.state])).toEqual([[null, 'delivered'], [1, 'delivered']]);
    const again = await control(run.url, 'POST', '/webhooks/duplicates', { deliveryId: 1 });
    expect(again.status).toBe(201);
    expect(notifications()).toHaveLength(3);
  });

  it('key rotation keeps the old key published; the signature header name is configurable', async () => {
    await connectUser(run.url, { user: 'NYC001' });
    await createSubscriber({ dataTypes: ['steps'] });
    const oldId = (run.sim.keyset() as any).primaryKeyId;
    const rotated = await control(run.url, 'POST', '/webhooks/rotate-key');
    expect(rotated.body.keyset.key.map((k: any) => k.keyId)).toEqual([oldId, rotated.body.primaryKeyId]);
    await control(run.url, 'POST', '/webhooks/settings', { signatureHeader: 'GOOGLE-HEALTH-API-SIGNATURE' });
    await control(run.url, 'POST', '/sync', { userId: 'NYC001' });
    const [n] = notifications();
    expect(n?.headers['x-healthapi-signature']).toBeUndefined();
    const sig = String(n?.headers['google-health-api-signature']);
    expect(Buffer.from(sig, 'base64').readUInt32BE(1)).toBe(rotated.body.primaryKeyId);
    expect(verifyTink(rotated.body.keyset, n?.body ?? '', sig)).toBe(true);
    await control(run.url, 'POST', '/webhooks/settings', { badSignature: true, signatureHeader: 'both' });
    await control(run.url, 'POST', '/webhooks/notify', { userId: 'NYC001', dataType: 'steps', startTime: '2026-11-03T05:00:00Z', endTime: '2026-11-03T06:00:00Z' });
    const bad = notifications()[1];
    expect(bad?.headers['x-healthapi-signature']).toBe(bad?.headers['google-health-api-signature']);
    expect(verifyTink(rotated.body.keyset, bad?.body ?? '', String(bad?.headers['x-healthapi-signature']))).toBe(false);
  });

  it('array envelopes batch a sync into one POST', async () => {
    await connectUser(run.url, { user: 'NYC001' });
    await createSubscriber();
    await control(run.url, 'POST', '/webhooks/settings', { envelope: 'array' });
    await control(run.url, 'POST', '/sync', { userId: 'NYC001' });
    const got = notifications();
    expect(got).toHaveLength(1);
    const batch = JSON.parse(got[0]?.body ?? '[]');
    expect(Array.isArray(batch)).toBe(true);
    expect(batch.map((e: any) => e.data.dataType).sort()).toEqual(['daily-resting-heart-rate', 'heart-rate', 'sleep', 'steps']);
  });
});
