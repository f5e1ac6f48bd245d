import { createServer, type Server } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MockAgent, errors } from 'undici';
import { createLampSimulator, type LampSimulator } from '@fitlamp/simulators';
import { createLampClient, LampError, type LampClient } from './index.ts';

const ORIGIN = 'http://lamp.test';
const ACCESS = 'researcher@example.org';
const SECRET = 'super-secret-value-42';
const BASIC = `Basic ${Buffer.from(`${ACCESS}:${SECRET}`).toString('base64')}`;
const event = (timestamp: number) => ({ timestamp, sensor: 'lamp.steps', data: { value: 10, unit: 'count', type: 'step_count' } });

async function rejection(promise: Promise<unknown>): Promise<LampError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(LampError);
    const e = error as LampError;
    expect(e.message).not.toContain(SECRET);
    expect(e.message).not.toContain(BASIC);
    return e;
  }
  throw new Error('expected a rejection');
}

describe('mindLAMP client (MockAgent)', () => {
  let agent: MockAgent;
  let client: LampClient;
  beforeAll(() => {
    agent = new MockAgent();
    agent.disableNetConnect();
    client = createLampClient({ baseUrl: `${ORIGIN}/`, accessKey: ACCESS, secretKey: SECRET, dispatcher: agent });
  });
  afterEach(() => agent.assertNoPendingInterceptors());
  afterAll(() => agent.close());

  it('posts an array body with Basic accessKey:secretKey', async () => {
    let seen: { body?: unknown; auth?: unknown; type?: unknown } = {};
    agent
      .get(ORIGIN)
      .intercept({ path: '/participant/U123/sensor_event', method: 'POST' })
      .reply(200, (opts) => {
        const headers = opts.headers as Record<string, string>;
        seen = { body: JSON.parse(String(opts.body)), auth: headers.authorization, type: headers['content-type'] };
        return { data: {} };
      });
    await client.postSensorEvents('U123', [event(1), event(2)]);
    expect(seen).toEqual({ body: [event(1), event(2)], auth: BASIC, type: 'application/json' });
  });

  it('maps statuses to codes with the HTTP status and mindLAMP slug, never the credential', async () => {
    const pool = agent.get(ORIGIN);
    const cases: Array<[number, unknown, string]> = [
      [401, { error: '401.missing-credentials' }, 'unauthorized'],
      [403, { error: '403.no-such-credentials' }, 'forbidden'],
      [404, { error: '404.resource-not-found' }, 'participant_not_found'],
      [404, { message: '404.api-endpoint-unimplemented' }, 'rejected'],
      [413, '<html><pre>PayloadTooLargeError</pre></html>', 'too_large'],
      [400, '<html><pre>SyntaxError</pre></html>', 'rejected'],
      [429, 'slow down', 'rejected'],
      [500, { error: 'MongoBulkWriteError: E11000 something' }, 'server_error'],
      [503, 'proxy', 'server_error'],
    ];
    for (const [status, body, code] of cases) {
      pool.intercept({ path: '/participant/U1/sensor_event', method: 'POST' }).reply(status, body as object);
      const error = await rejection(client.postSensorEvents('U1', [event(1)]));
      expect({ status: error.status, code: error.code }).toEqual({ status, code });
      expect(error.message).toContain(String(status));
      // Raw server messages stay out of ours (they can echo what was sent).
      expect(error.message).not.toContain('E11000');
    }
  });

  it('tells "never sent" from "sent, outcome unknown"', async () => {
    const pool = agent.get(ORIGIN);
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    const notSent = [refused, new errors.ConnectTimeoutError(), new AggregateError([refused, refused])];
    const maybeSent = [new errors.SocketError('other side closed'), new errors.HeadersTimeoutError(), new errors.BodyTimeoutError(), Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }), new Error('mystery')];
    for (const failure of notSent) {
      pool.intercept({ path: '/participant/U1/sensor_event', method: 'POST' }).replyWithError(failure);
      const e = await rejection(client.postSensorEvents('U1', [event(1)]));
      expect(e.code).toBe('unavailable');
      expect(e.status).toBeUndefined();
    }
    for (const failure of maybeSent) {
      pool.intercept({ path: '/participant/U1/sensor_event', method: 'POST' }).replyWithError(failure);
      const e = await rejection(client.postSensorEvents('U1', [event(1)]));
      expect(e.code).toBe('outcome_unknown');
    }
  });

  it('lists events with the query it was given and reads tags', async () => {
    const pool = agent.get(ORIGIN);
    pool
      .intercept({ path: '/participant/U1/sensor_event?origin=lamp.steps&from=100&to=200&limit=-50', method: 'GET' })
      .reply(200, { data: [event(150)] });
    expect(await client.listSensorEvents('U1', { origin: 'lamp.steps', from: 100, to: 200, limit: -50 })).toEqual([event(150)]);
    pool.intercept({ path: '/participant/U1/tag/org.fitlamp.status', method: 'GET' }).reply(404, { error: '404.object-not-found' });
    expect(await client.getTag('U1', 'org.fitlamp.status')).toBeUndefined();
    pool.intercept({ path: '/participant/U%2F1', method: 'GET' }).reply(200, { data: [] });
    expect((await rejection(client.getParticipant('U/1'))).code).toBe('participant_not_found');
  });

  it('refuses what mindLAMP would mishandle before sending anything', async () => {
    expect((await rejection(client.postSensorEvents('U1', []))).code).toBe('rejected');
    expect((await rejection(client.postSensorEvents('me', [event(1)]))).code).toBe('rejected');
    expect((await rejection(client.setTag('U1', 'lamp.automation', {}))).code).toBe('rejected');
    expect(() => createLampClient({ baseUrl: ORIGIN, accessKey: ACCESS, secretKey: 'a:b', dispatcher: agent })).toThrow(/must not contain/);
  });
});

describe('mindLAMP client against the simulator over HTTP', () => {
  let sim: LampSimulator;
  let base: string;
  let client: LampClient;
  beforeAll(async () => {
    sim = createLampSimulator({
      credentials: [{ accessKey: ACCESS, secretKey: SECRET }],
      participants: [{ id: 'U100', studyId: 'S1' }, { id: 'U200', studyId: 'S1' }],
    });
    base = await sim.app.listen({ port: 0, host: '127.0.0.1' });
    client = createLampClient({ baseUrl: base, accessKey: ACCESS, secretKey: SECRET, timeoutMs: 500 });
  });
  afterEach(() => sim.reset());
  afterAll(async () => {
    await client.close();
    await sim.app.close();
  });

  it('finds participants and names the unknown ones', async () => {
    expect(await client.getParticipant('U100')).toEqual({ id: 'U100' });
    const e = await rejection(client.getParticipant('U999'));
    expect({ code: e.code, status: e.status, slug: e.slug }).toEqual({ code: 'participant_not_found', status: 404, slug: '404.resource-not-found' });
    const wrong = createLampClient({ baseUrl: base, accessKey: ACCESS, secretKey: 'not-the-secret' });
    expect((await rejection(wrong.getParticipant('U100'))).code).toBe('forbidden');
    await wrong.close();
  });

  it('posts, reads back (to exclusive) and sets tags', async () => {
    await client.postSensorEvents('U100', [event(1000), event(2000), event(3000)]);
    expect(sim.listEvents({ participantId: 'U100' })).toHaveLength(3);
    const window = await client.listSensorEvents('U100', { origin: 'lamp.steps', from: 1000, to: 3000, limit: -10 });
    expect(window.map((e) => e.timestamp)).toEqual([1000, 2000]);
    await client.setTag('U100', 'org.fitlamp.status', { connected: true });
    expect(await client.getTag('U100', 'org.fitlamp.status')).toEqual({ connected: true });
    await client.setTag('U100', 'org.fitlamp.status', null);
    expect(await client.getTag('U100', 'org.fitlamp.status')).toBeUndefined();
  });

  it('reports a dropped connection after the server stored the batch as outcome_unknown', async () => {
    sim.addFault({ route: 'Participant.create_sensor_events', times: 1, fault: { kind: 'store-then-drop' } });
    const e = await rejection(client.postSensorEvents('U100', [event(1000)]));
    expect(e.code).toBe('outcome_unknown');
    // It was stored: this is exactly why the caller must read back before resending.
    expect(sim.listEvents({ participantId: 'U100' })).toHaveLength(1);
  });

  it('reports a slow answer as outcome_unknown and a partial write as server_error', async () => {
    sim.addFault({ route: 'Participant.create_sensor_events', times: 1, fault: { kind: 'latency', ms: 1_500 } });
    expect((await rejection(client.postSensorEvents('U100', [event(1000)]))).code).toBe('outcome_unknown');
    sim.addFault({ route: 'Participant.create_sensor_events', times: 1, fault: { kind: 'partial-write', stored: 1 } });
    const e = await rejection(client.postSensorEvents('U200', [event(1), event(2)]));
    expect({ code: e.code, status: e.status }).toEqual({ code: 'server_error', status: 500 });
  });

  it('reports a refused connection as unavailable', async () => {
    // Bind a port, then free it: nothing listens there any more.
    const server: Server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const down = createLampClient({ baseUrl: `http://127.0.0.1:${port}`, accessKey: ACCESS, secretKey: SECRET });
    const e = await rejection(down.postSensorEvents('U100', [event(1)]));
    expect(e.code).toBe('unavailable');
    await down.close();
  });
});
