import { Buffer } from 'node:buffer';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLampSimulator, type LampSimulator } from './app.ts';

const RESEARCHER = { accessKey: 'researcher@study.test', secretKey: 'correct-horse' };
const AUTH = `Basic ${Buffer.from(`${RESEARCHER.accessKey}:${RESEARCHER.secretKey}`).toString('base64')}`;
const P1 = 'U1000000001';
const P2 = 'U1000000002';
const JSON_HEADERS = { authorization: AUTH, 'content-type': 'application/json' };

let sim: LampSimulator | undefined;
afterEach(async () => {
  await sim?.app.close();
  sim = undefined;
});

async function start(): Promise<string> {
  sim = createLampSimulator({
    credentials: [RESEARCHER],
    participants: [
      { id: P1, studyId: 'S1' },
      { id: P2, studyId: 'S1' },
    ],
  });
  return sim.app.listen({ port: 0, host: '127.0.0.1' });
}

const steps = (timestamp: number, value: number) => ({ timestamp, sensor: 'lamp.steps', data: { value, unit: 'count' } });

function post(base: string, participant: string, body: unknown, signal?: AbortSignal): Promise<Response> {
  return fetch(`${base}/participant/${participant}/sensor_event`, {
    method: 'POST',
    headers: JSON_HEADERS,
    body: JSON.stringify(body),
    ...(signal ? { signal } : {}),
  });
}

async function control(base: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const response = await fetch(`${base}/_control${path}`, {
    method,
    ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  return { status: response.status, json: await response.json() };
}

describe('faults', () => {
  it('answers an injected 5xx for the given count, storing nothing, then behaves again', async () => {
    const base = await start();
    await control(base, 'POST', '/faults', { route: 'Participant.create_sensor_events', times: 2, fault: { kind: 'status', status: 503 } });

    const first = await post(base, P1, [steps(1, 1)]);
    expect(first.status).toBe(503);
    expect(await first.json()).toEqual({ error: '503.simulated-fault' });
    expect((await post(base, P1, [steps(1, 1)])).status).toBe(503);
    expect(sim!.countEvents().total).toBe(0);

    const third = await post(base, P1, [steps(1, 1)]);
    expect(third.status).toBe(200);
    expect(sim!.countEvents().total).toBe(1);
    expect((await control(base, 'GET', '/faults')).json.data).toEqual([]);
  });

  it('answers a custom body (e.g. a proxy’s HTML 502) until cleared', async () => {
    const base = await start();
    sim!.addFault({ route: 'POST /participant/:id/sensor_event', fault: { kind: 'status', status: 502, body: '<html>Bad Gateway</html>' } });
    for (let i = 0; i < 3; i++) {
      const answer = await post(base, P1, [steps(1, 1)]);
      expect(answer.status).toBe(502);
      expect(answer.headers.get('content-type')).toMatch(/^text\/html/);
      expect(await answer.text()).toBe('<html>Bad Gateway</html>');
    }
    const cleared = await control(base, 'DELETE', '/faults');
    expect(cleared.json).toEqual({ data: { removed: 1 } });
    expect((await post(base, P1, [steps(1, 1)])).status).toBe(200);
  });

  it('limits a fault to one participant and one route when asked', async () => {
    const base = await start();
    sim!.addFault({ route: 'Participant.create_sensor_events', participantId: P2, fault: { kind: 'status', status: 500 } });
    expect((await post(base, P1, [steps(1, 1)])).status).toBe(200);
    expect((await post(base, P2, [steps(1, 1)])).status).toBe(500);
    const read = await fetch(`${base}/participant/${P2}/sensor_event`, { headers: { authorization: AUTH } });
    expect(read.status).toBe(200);
  });

  it('applies a fault to reads too (operation id of the GET)', async () => {
    const base = await start();
    sim!.addFault({ route: 'Participant.query_sensor_events', times: 1, fault: { kind: 'status', status: 504 } });
    const read = await fetch(`${base}/participant/${P1}/sensor_event`, { headers: { authorization: AUTH } });
    expect(read.status).toBe(504);
  });

  it('delays the answer with a latency fault and still answers normally', async () => {
    const base = await start();
    sim!.addFault({ route: '*', times: 1, fault: { kind: 'latency', ms: 50 } });
    const answer = await post(base, P1, [steps(1, 1)]);
    expect(answer.status).toBe(200);
    expect(sim!.countEvents().total).toBe(1);
    expect(sim!.listRequests()[0]).toMatchObject({ operationId: 'Participant.create_sensor_events', status: 200, faults: ['latency'] });
  });

  it('stores the events even when a slow answer makes the client give up (timeout after commit)', async () => {
    const base = await start();
    sim!.addFault({ route: 'Participant.create_sensor_events', times: 1, fault: { kind: 'latency', ms: 400 } });
    const client = new AbortController();
    const pending = post(base, P1, [steps(1, 1)], client.signal);
    // Abort once the simulator has the request (it is logged before the delay), not after a guess.
    await vi.waitFor(() => expect(sim!.listRequests()).toHaveLength(1));
    client.abort();
    await expect(pending).rejects.toThrow();
    await vi.waitFor(() => expect(sim!.countEvents().total).toBe(1), { timeout: 5_000 });
  });

  it('store-then-drop: the client sees a socket error, yet the events are stored; a blind retry duplicates them', async () => {
    const base = await start();
    await control(base, 'POST', '/faults', { route: 'Participant.create_sensor_events', times: 1, fault: { kind: 'store-then-drop' } });
    const batch = [steps(1_000, 1), steps(2_000, 2)];

    const error = await post(base, P1, batch).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(TypeError); // undici: "fetch failed", cause: other side closed
    expect(sim!.countEvents().total).toBe(2);
    expect(sim!.listRequests()[0]).toMatchObject({ outcome: 'dropped', status: null, eventCount: 2, faults: ['store-then-drop'] });

    expect((await post(base, P1, batch)).status).toBe(200);
    expect((await control(base, 'GET', '/duplicates')).json.data.extraCopies).toBe(2);
  });

  it('drop: the client sees a socket error and nothing is stored', async () => {
    const base = await start();
    sim!.addFault({ route: 'Participant.create_sensor_events', times: 1, fault: { kind: 'drop' } });
    await expect(post(base, P1, [steps(1, 1)])).rejects.toBeInstanceOf(TypeError);
    expect(sim!.countEvents().total).toBe(0);
  });

  it('partial-write: the first events are stored and the answer is a 500', async () => {
    const base = await start();
    sim!.addFault({ route: 'Participant.create_sensor_events', times: 1, fault: { kind: 'partial-write', stored: 2 } });
    const answer = await post(base, P1, [steps(1, 1), steps(2, 2), steps(3, 3), steps(4, 4)]);
    expect(answer.status).toBe(500);
    expect(((await answer.json()) as { error: string }).error).toMatch(/after 2 of 4/);
    expect(sim!.listEvents().map((e) => e.event.timestamp)).toEqual([1, 2]);
    // The request log says how many of the batch were stored, so a run can count real partial writes.
    expect(sim!.listRequests()[0]).toMatchObject({ status: 500, eventCount: 4, storedCount: 2, faults: ['partial-write'] });
    // A batch no larger than `stored` is stored whole and answered 200: no partial write happened.
    sim!.addFault({ route: 'Participant.create_sensor_events', times: 1, fault: { kind: 'partial-write', stored: 2 } });
    expect((await post(base, P1, [steps(5, 5)])).status).toBe(200);
    expect(sim!.listRequests()[1]).toMatchObject({ eventCount: 1, storedCount: 1 });
  });

  it('rejects a malformed fault rule with a 400 that says what is wrong', async () => {
    const base = await start();
    const answer = await control(base, 'POST', '/faults', { route: '*', fault: { kind: 'status', status: 200 } });
    expect(answer.status).toBe(400);
    expect(answer.json.error).toMatch(/status between 400 and 599/);
    const kind = await control(base, 'POST', '/faults', { route: '*', fault: { kind: 'explode' } });
    expect(kind.json.error).toMatch(/fault.kind must be one of/);
    expect(sim!.faults.rules).toEqual([]);
  });

  it('removes one fault by id', async () => {
    const base = await start();
    const added = await control(base, 'POST', '/faults', [
      { route: '*', fault: { kind: 'status', status: 500 } },
      { route: '*', fault: { kind: 'latency', ms: 1 } },
    ]);
    expect(added.status).toBe(201);
    const [first] = added.json.data as { id: string }[];
    expect((await control(base, 'DELETE', `/faults/${first!.id}`)).json).toEqual({ data: { removed: 1 } });
    expect((await control(base, 'DELETE', `/faults/${first!.id}`)).status).toBe(404);
    expect((await post(base, P1, [steps(1, 1)])).status).toBe(200);
  });
});

describe('control API', () => {
  it('adds participants, who can then receive events', async () => {
    const base = await start();
    expect((await post(base, 'U3000000001', [steps(1, 1)])).status).toBe(404);
    const added = await control(base, 'POST', '/participants', { id: 'U3000000001', studyId: 'S1' });
    expect(added.status).toBe(201);
    expect((await post(base, 'U3000000001', [steps(1, 1)])).status).toBe(200);
    const list = await control(base, 'GET', '/participants');
    expect(list.json.data).toContainEqual({ id: 'U3000000001', studyId: 'S1', researcherId: 'R0000000001' });
  });

  it('rejects a participant without a study', async () => {
    const base = await start();
    const answer = await control(base, 'POST', '/participants', { id: 'U3000000001' });
    expect(answer.status).toBe(400);
    expect(answer.json.error).toMatch(/studyId/);
  });

  it('adds credentials', async () => {
    const base = await start();
    const other = `Basic ${Buffer.from('second@study.test:another-secret').toString('base64')}`;
    const before = await fetch(`${base}/participant/${P1}`, { headers: { authorization: other } });
    expect(before.status).toBe(403);
    await control(base, 'POST', '/credentials', { accessKey: 'second@study.test', secretKey: 'another-secret' });
    const after = await fetch(`${base}/participant/${P1}`, { headers: { authorization: other } });
    expect(after.status).toBe(200);
  });

  it('reports events by participant and sensor, counts, duplicates and requests', async () => {
    const base = await start();
    await post(base, P1, [steps(1, 1), steps(1, 1), { timestamp: 2, sensor: 'lamp.heart_rate', data: { value: 60 } }]);
    await post(base, P2, [steps(5, 5)]);

    const p1Steps = await control(base, 'GET', `/events?participant=${P1}&sensor=lamp.steps`);
    expect(p1Steps.json.data.map((e: { seq: number; participantId: string; event: unknown }) => [e.seq, e.participantId, e.event])).toEqual([
      [1, P1, steps(1, 1)],
      [2, P1, steps(1, 1)],
    ]);
    expect((await control(base, 'GET', '/events')).json.data).toHaveLength(4);
    expect((await control(base, 'GET', '/counts')).json.data).toEqual({
      total: 4,
      participants: {
        [P1]: { total: 3, sensors: { 'lamp.steps': 2, 'lamp.heart_rate': 1 } },
        [P2]: { total: 1, sensors: { 'lamp.steps': 1 } },
      },
    });
    const duplicates = await control(base, 'GET', `/duplicates?participant=${P1}`);
    expect(duplicates.json.data).toEqual({
      groups: [{ participantId: P1, sensor: 'lamp.steps', timestamp: 1, data: { value: 1, unit: 'count' }, count: 2, seqs: [1, 2] }],
      extraCopies: 1,
    });
    const requests = await control(base, 'GET', '/requests');
    expect(requests.json.data.map((r: { participantId: string; eventCount: number; status: number }) => [r.participantId, r.eventCount, r.status])).toEqual([
      [P1, 3, 200],
      [P2, 1, 200],
    ]);
  });

  it('seeds events as if another client had written them', async () => {
    const base = await start();
    const seeded = await control(base, 'POST', '/events', { participantId: P1, events: [steps(7, 7)] });
    expect(seeded.status).toBe(201);
    const read = await fetch(`${base}/participant/${P1}/sensor_event`, { headers: { authorization: AUTH } });
    expect(((await read.json()) as { data: unknown }).data).toEqual([steps(7, 7)]);
    expect(sim!.listRequests().map((r) => r.operationId)).toEqual(['Participant.query_sensor_events']);
  });

  it('resets to the configured state: events, tags, faults, requests and added participants go', async () => {
    const base = await start();
    await control(base, 'POST', '/participants', { id: 'U3000000001', studyId: 'S1' });
    await post(base, P1, [steps(1, 1)]);
    await fetch(`${base}/participant/${P1}/tag/k/me`, { method: 'PUT', headers: JSON_HEADERS, body: '{"a":1}' });
    sim!.addFault({ route: 'Participant.view', fault: { kind: 'status', status: 500 } });

    expect((await control(base, 'POST', '/reset')).json).toEqual({ data: {} });

    expect((await control(base, 'GET', '/counts')).json.data).toEqual({ total: 0, participants: {} });
    expect((await control(base, 'GET', '/requests')).json.data).toEqual([]);
    expect((await control(base, 'GET', '/faults')).json.data).toEqual([]);
    expect((await fetch(`${base}/participant/${P1}`, { headers: { authorization: AUTH } })).status).toBe(200);
    expect((await fetch(`${base}/participant/U3000000001`, { headers: { authorization: AUTH } })).status).toBe(404);
    expect((await fetch(`${base}/participant/${P1}/tag/k`, { headers: { authorization: AUTH } })).status).toBe(404);
  });
});
