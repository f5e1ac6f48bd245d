import { Buffer } from 'node:buffer';
import { afterEach, describe, expect, it } from 'vitest';
import { createLampSimulator, type LampSimulator, type LampSimulatorOptions } from './app.ts';

const RESEARCHER = { accessKey: 'researcher@study.test', secretKey: 'correct-horse' };
const AUTH = basic(RESEARCHER.accessKey, RESEARCHER.secretKey);
const P1 = 'U1000000001';
const P2 = 'U1000000002';

function basic(accessKey: string, secretKey: string): string {
  return `Basic ${Buffer.from(`${accessKey}:${secretKey}`).toString('base64')}`;
}

let sim: LampSimulator | undefined;
afterEach(async () => {
  await sim?.app.close();
  sim = undefined;
});

async function start(options: LampSimulatorOptions = {}): Promise<string> {
  sim = createLampSimulator({
    credentials: [RESEARCHER],
    participants: [
      { id: P1, studyId: 'S1' },
      { id: P2, studyId: 'S1' },
    ],
    ...options,
  });
  return sim.app.listen({ port: 0, host: '127.0.0.1' });
}

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

async function call(
  base: string,
  method: string,
  path: string,
  init: { body?: unknown; rawBody?: string; auth?: string | null; contentType?: string } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {};
  const auth = init.auth === undefined ? AUTH : init.auth;
  if (auth !== null) headers.authorization = auth;
  let body: string | undefined;
  if (init.rawBody !== undefined || init.body !== undefined) {
    body = init.rawBody ?? JSON.stringify(init.body);
    headers['content-type'] = init.contentType ?? 'application/json';
  }
  const response = await fetch(`${base}${path}`, { method, headers, body });
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json };
}

const steps = (timestamp: number, value: number) => ({
  timestamp,
  sensor: 'lamp.steps',
  data: { value, unit: 'count', type: 'step_count', source: 'com.fitbit.webapi' },
});
const heart = (timestamp: number, value: number) => ({
  timestamp,
  sensor: 'lamp.heart_rate',
  data: { value, unit: 'bpm', source: 'com.fitbit.webapi' },
});

describe('POST /participant/{id}/sensor_event', () => {
  it('stores one object and answers 200 {"data":{}}', async () => {
    const base = await start();
    const answer = await call(base, 'POST', `/participant/${P1}/sensor_event`, { body: steps(1_000, 12) });
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ data: {} });
    expect(sim!.listEvents({ participantId: P1 }).map((e) => e.event)).toEqual([steps(1_000, 12)]);
  });

  it('stores every element of an array', async () => {
    const base = await start();
    const answer = await call(base, 'POST', `/participant/${P1}/sensor_event`, {
      body: [steps(1_000, 1), steps(2_000, 2), heart(2_000, 61)],
    });
    expect(answer.json).toEqual({ data: {} });
    expect(sim!.countEvents()).toEqual({
      total: 3,
      participants: { [P1]: { total: 3, sensors: { 'lamp.steps': 2, 'lamp.heart_rate': 1 } } },
    });
  });

  it('does not dedupe: the same batch posted twice is stored twice and reported as duplicates', async () => {
    const base = await start();
    const batch = [steps(1_000, 1), steps(2_000, 2)];
    await call(base, 'POST', `/participant/${P1}/sensor_event`, { body: batch });
    const again = await call(base, 'POST', `/participant/${P1}/sensor_event`, { body: batch });
    expect(again.json).toEqual({ data: {} });

    const read = await call(base, 'GET', `/participant/${P1}/sensor_event`);
    expect(read.json.data).toEqual([steps(2_000, 2), steps(2_000, 2), steps(1_000, 1), steps(1_000, 1)]);
    const duplicates = sim!.findDuplicates();
    expect(duplicates.extraCopies).toBe(2);
    expect(duplicates.groups.map((g) => [g.timestamp, g.count, g.seqs])).toEqual([
      [1_000, 2, [1, 3]],
      [2_000, 2, [2, 4]],
    ]);
  });

  it('counts as duplicates only same participant, sensor, timestamp and data (key order ignored)', async () => {
    const base = await start();
    await call(base, 'POST', `/participant/${P1}/sensor_event`, {
      body: [
        { timestamp: 1_000, sensor: 'lamp.steps', data: { value: 1, unit: 'count' } },
        { timestamp: 1_000, sensor: 'lamp.steps', data: { unit: 'count', value: 1 } }, // duplicate
        { timestamp: 1_000, sensor: 'lamp.steps', data: { unit: 'count', value: 2 } }, // other data
        { timestamp: 1_001, sensor: 'lamp.steps', data: { unit: 'count', value: 1 } }, // other time
        { timestamp: 1_000, sensor: 'lamp.distance', data: { unit: 'count', value: 1 } }, // other sensor
      ],
    });
    await call(base, 'POST', `/participant/${P2}/sensor_event`, {
      body: { timestamp: 1_000, sensor: 'lamp.steps', data: { value: 1, unit: 'count' } }, // other participant
    });
    expect(sim!.findDuplicates().groups).toEqual([
      { participantId: P1, sensor: 'lamp.steps', timestamp: 1_000, data: { value: 1, unit: 'count' }, count: 2, seqs: [1, 2] },
    ]);
  });

  it('counts one datum stored twice as a repeat, whatever its source or value, without collapsing', async () => {
    const base = await start();
    const day = 24 * 3_600_000;
    await call(base, 'POST', `/participant/${P1}/sensor_event`, {
      body: [
        { timestamp: 1_000, sensor: 'lamp.steps', data: { value: 5, source: 'com.fitbit.webapi' } },
        { timestamp: 1_000, sensor: 'lamp.steps', data: { value: 6, source: 'com.google.health' } }, // same minute, other API
        { timestamp: 1_000, sensor: 'lamp.steps', data: { value: 5, source: 'com.fitbit.webapi' } }, // and a third copy
        { timestamp: 1_000, sensor: 'lamp.steps', duration: day, data: { value: 900, source: 'com.fitbit.webapi' } }, // the day's total: apart
        { timestamp: 1_000, sensor: 'lamp.steps', data: { value: 1, correction: true, revision: 1, source: 'com.fitbit.webapi' } }, // a correction: apart
        { timestamp: 1_000, sensor: 'lamp.steps', data: { value: -2, correction: true, revision: 2, source: 'com.fitbit.webapi' } }, // its next revision: apart too
        { timestamp: 2_000, sensor: 'lamp.steps', data: { value: 3, correction: true, revision: 1, source: 'com.fitbit.webapi' } },
        { timestamp: 2_000, sensor: 'lamp.steps', data: { value: 3, correction: true, revision: 1, source: 'com.google.health' } }, // the same correction twice: a repeat
        { timestamp: 9_000, sensor: 'lamp.sleep', duration: 60_000, data: { stage: 'deep', source: 'com.fitbit.webapi' } },
        { timestamp: 9_000, sensor: 'lamp.sleep', duration: 60_000, data: { stage: 'rem', source: 'com.google.health' } }, // other stage
        { timestamp: 9_000, sensor: 'lamp.sleep', duration: 120_000, data: { stage: 'deep', source: 'com.google.health' } }, // same stage: repeat
      ],
    });
    const report = sim!.findRepeats();
    expect(report.extraCopies).toBe(4);
    expect(report.groups.map((g) => [g.sensor, g.timestamp, g.identity, g.count, g.sources])).toEqual([
      ['lamp.steps', 1_000, [null, 'instant', false], 3, ['com.fitbit.webapi', 'com.google.health', 'com.fitbit.webapi']],
      ['lamp.steps', 2_000, [null, 'instant', 1], 2, ['com.fitbit.webapi', 'com.google.health']],
      ['lamp.sleep', 9_000, ['deep', 'span', false], 2, ['com.fitbit.webapi', 'com.google.health']],
    ]);
    // What sums over time make of it: each datum with the corrections at its instant added; never collapsed.
    expect(sim!.listCorrectedDatums({ participantId: P1, sensor: 'lamp.steps' }).map((d) => [d.timestamp, d.value, d.corrections])).toEqual([
      [1_000, 5 - 1, 2],
      [1_000, 6 - 1, 2],
      [1_000, 5 - 1, 2],
      [1_000, 900 - 1, 2],
    ]);
    // Exact copies alone would miss the cross-API one.
    expect(sim!.findDuplicates().extraCopies).toBe(1);
  });

  it('validates nothing, like the real server: junk timestamp, missing sensor and data, extra keys', async () => {
    const base = await start();
    const answer = await call(base, 'POST', `/participant/${P1}/sensor_event`, {
      body: [
        { timestamp: 'abc', sensor: 'lamp.steps', data: { value: 1 } },
        { timestamp: '1700000000000', sensor: 'lamp.steps', data: { value: 2 } },
        { timestamp: 5 },
        { timestamp: 6, sensor: 'lamp.made_up', data: 'not an object', extra: true },
      ],
    });
    expect(answer.status).toBe(200);
    expect(sim!.listEvents().map((e) => e.event)).toEqual([
      { timestamp: null, sensor: 'lamp.steps', data: { value: 1 } },
      { timestamp: 1_700_000_000_000, sensor: 'lamp.steps', data: { value: 2 } },
      { timestamp: 5, sensor: 'undefined', data: {} },
      { timestamp: 6, sensor: 'lamp.made_up', data: 'not an object', extra: true },
    ]);
  });

  it('answers 500 with the raw message and stores nothing for a null element', async () => {
    const base = await start();
    const answer = await call(base, 'POST', `/participant/${P1}/sensor_event`, { body: [steps(1, 1), null] });
    expect(answer.status).toBe(500);
    expect(answer.json).toEqual({ error: "Cannot read properties of null (reading 'timestamp')" });
    expect(sim!.countEvents().total).toBe(0);
  });

  it('answers 500 for an empty array (the Mongo driver rejects an empty batch)', async () => {
    const base = await start();
    const answer = await call(base, 'POST', `/participant/${P1}/sensor_event`, { body: [] });
    expect(answer.status).toBe(500);
    expect(answer.json.error).toMatch(/Batch cannot be empty/);
  });

  it('answers 413 with an HTML page past the body limit and stores nothing', async () => {
    const base = await start({ bodyLimit: 2_000 });
    const small = await call(base, 'POST', `/participant/${P1}/sensor_event`, { body: [steps(1, 1)] });
    expect(small.status).toBe(200);
    const big = Array.from({ length: 50 }, (_, i) => steps(10 + i, i));
    const answer = await call(base, 'POST', `/participant/${P1}/sensor_event`, { body: big });
    expect(answer.status).toBe(413);
    expect(answer.headers.get('content-type')).toMatch(/^text\/html/);
    expect(answer.text).toContain('request entity too large');
    expect(sim!.countEvents().total).toBe(1);
  });

  it('answers 400 with an HTML page for malformed JSON', async () => {
    const base = await start();
    const answer = await call(base, 'POST', `/participant/${P1}/sensor_event`, { rawBody: '[{"timestamp": 1,' });
    expect(answer.status).toBe(400);
    expect(answer.headers.get('content-type')).toMatch(/^text\/html/);
    expect(answer.text).toContain('SyntaxError');
    expect(sim!.countEvents().total).toBe(0);
  });
});

describe('GET /participant/{id}/sensor_event', () => {
  async function seeded(): Promise<string> {
    const base = await start();
    await call(base, 'POST', `/participant/${P1}/sensor_event`, {
      body: [steps(1_000, 1), heart(1_500, 60), steps(2_000, 2), steps(3_000, 3), heart(3_000, 62), steps(4_000, 4)],
    });
    await call(base, 'POST', `/participant/${P2}/sensor_event`, { body: [steps(2_500, 99)] });
    return base;
  }
  const get = async (base: string, query: string) => (await call(base, 'GET', `/participant/${P1}/sensor_event${query}`)).json.data;
  const times = (events: { timestamp: number }[]) => events.map((e) => e.timestamp);

  it('answers the participant’s events, newest first, by default', async () => {
    const base = await seeded();
    expect(times(await get(base, ''))).toEqual([4_000, 3_000, 3_000, 2_000, 1_500, 1_000]);
  });

  it('filters by sensor with origin', async () => {
    const base = await seeded();
    expect(await get(base, '?origin=lamp.heart_rate')).toEqual([heart(3_000, 62), heart(1_500, 60)]);
  });

  it('treats from as inclusive and to as exclusive', async () => {
    const base = await seeded();
    expect(times(await get(base, '?origin=lamp.steps&from=2000&to=4000'))).toEqual([3_000, 2_000]);
    expect(times(await get(base, '?from=3000'))).toEqual([4_000, 3_000, 3_000]);
    expect(times(await get(base, '?to=2000'))).toEqual([1_500, 1_000]);
  });

  it('reads from === to as that one millisecond', async () => {
    const base = await seeded();
    expect(times(await get(base, '?from=3000&to=3000'))).toEqual([3_000, 3_000]);
  });

  it('returns the newest |limit| for a positive limit and the oldest for a negative one', async () => {
    const base = await seeded();
    expect(times(await get(base, '?origin=lamp.steps&limit=2'))).toEqual([4_000, 3_000]);
    expect(times(await get(base, '?origin=lamp.steps&limit=-2'))).toEqual([1_000, 2_000]);
    expect(times(await get(base, '?limit=-100'))).toEqual([1_000, 1_500, 2_000, 3_000, 3_000, 4_000]);
  });

  it('returns at most 1000 events without a limit', async () => {
    const base = await start();
    const many = Array.from({ length: 1_001 }, (_, i) => steps(i + 1, i));
    await call(base, 'POST', `/participant/${P1}/sensor_event`, { body: many });
    const data = await get(base, '');
    expect(data).toHaveLength(1_000);
    expect(data[0].timestamp).toBe(1_001);
    expect(data[999].timestamp).toBe(2);
  });

  it('ignores from=0 and junk numbers', async () => {
    const base = await seeded();
    expect(await get(base, '?from=0&limit=abc')).toHaveLength(6);
  });
});

describe('GET /participant/{id}', () => {
  it('answers the participant as a one-element list', async () => {
    const base = await start();
    const answer = await call(base, 'GET', `/participant/${P1}`);
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ data: [{ id: P1 }] });
  });

  it('answers 404 resource-not-found for an unknown participant', async () => {
    const base = await start();
    const answer = await call(base, 'GET', '/participant/U9999999999');
    expect(answer.status).toBe(404);
    expect(answer.json).toEqual({ error: '404.resource-not-found' });
  });
});

describe('authentication and scope', () => {
  it('answers 401 missing-credentials with WWW-Authenticate when there is no Authorization', async () => {
    const base = await start();
    const answer = await call(base, 'POST', `/participant/${P1}/sensor_event`, { body: steps(1, 1), auth: null });
    expect(answer.status).toBe(401);
    expect(answer.json).toEqual({ error: '401.missing-credentials' });
    expect(answer.headers.get('www-authenticate')).toBe('Basic realm="LAMP" charset="UTF-8"');
    expect(sim!.countEvents().total).toBe(0);
  });

  it('answers 401 when the secret is missing', async () => {
    const base = await start();
    const answer = await call(base, 'GET', `/participant/${P1}`, { auth: `Basic ${Buffer.from('researcher@study.test:').toString('base64')}` });
    expect(answer.status).toBe(401);
    expect(answer.json).toEqual({ error: '401.missing-credentials' });
  });

  it('answers 403 no-such-credentials for a wrong secret', async () => {
    const base = await start();
    const answer = await call(base, 'POST', `/participant/${P1}/sensor_event`, { body: steps(1, 1), auth: basic(RESEARCHER.accessKey, 'wrong') });
    expect(answer.status).toBe(403);
    expect(answer.json).toEqual({ error: '403.no-such-credentials' });
    expect(sim!.countEvents().total).toBe(0);
  });

  it('accepts the unencoded form LAMP-js sends', async () => {
    const base = await start();
    const answer = await call(base, 'GET', `/participant/${P1}`, { auth: `Basic ${RESEARCHER.accessKey}:${RESEARCHER.secretKey}` });
    expect(answer.status).toBe(200);
  });

  it('never authenticates a secret containing ":"', async () => {
    const base = await start({ credentials: [{ accessKey: 'colon@study.test', secretKey: 'abc:defgh' }] });
    const answer = await call(base, 'GET', `/participant/${P1}`, { auth: basic('colon@study.test', 'abc:defgh') });
    expect(answer.status).toBe(403);
    expect(answer.json).toEqual({ error: '403.no-such-credentials' });
  });

  it('answers 404 resource-not-found when posting for a participant that does not exist', async () => {
    const base = await start();
    const answer = await call(base, 'POST', '/participant/U9999999999/sensor_event', { body: steps(1, 1) });
    expect(answer.status).toBe(404);
    expect(answer.json).toEqual({ error: '404.resource-not-found' });
    expect(sim!.countEvents().total).toBe(0);
  });

  it('answers 403 security-context-out-of-scope for another researcher’s participant', async () => {
    const base = await start({
      studies: [{ id: 'S2', researcherId: 'R2' }],
      participants: [{ id: P1, studyId: 'S1' }, { id: 'U2000000001', studyId: 'S2' }],
    });
    const answer = await call(base, 'POST', '/participant/U2000000001/sensor_event', { body: steps(1, 1) });
    expect(answer.status).toBe(403);
    expect(answer.json).toEqual({ error: '403.security-context-out-of-scope' });
  });

  it('lets a root credential write to a participant that does not exist (orphan events)', async () => {
    const base = await start({ credentials: [RESEARCHER, { accessKey: 'admin', secretKey: 'rootpass', origin: null }] });
    const root = basic('admin', 'rootpass');
    const answer = await call(base, 'POST', '/participant/U0000000000/sensor_event', { body: steps(1, 1), auth: root });
    expect(answer.json).toEqual({ data: {} });
    expect(sim!.countEvents().participants).toHaveProperty('U0000000000');
    expect((await call(base, 'GET', '/participant/U0000000000', { auth: root })).json).toEqual({ data: [] });
    const me = await call(base, 'GET', '/participant/me', { auth: root });
    expect(me.status).toBe(400);
    expect(me.json).toEqual({ error: '400.context-substitution-failed' });
  });

  it('stores events posted to /participant/me under "me", as the real server does', async () => {
    const base = await start({ credentials: [RESEARCHER, { accessKey: 'p1@study.test', secretKey: 'p1secret', origin: P1 }] });
    await call(base, 'POST', '/participant/me/sensor_event', { body: steps(1, 1), auth: basic('p1@study.test', 'p1secret') });
    expect(sim!.listEvents().map((e) => e.participantId)).toEqual(['me']);
  });

  it('lets a participant credential write into a sibling participant (same study)', async () => {
    const base = await start({ credentials: [RESEARCHER, { accessKey: 'p1@study.test', secretKey: 'p1secret', origin: P1 }] });
    const answer = await call(base, 'POST', `/participant/${P2}/sensor_event`, { body: steps(1, 1), auth: basic('p1@study.test', 'p1secret') });
    expect(answer.status).toBe(200);
    expect(sim!.countEvents().participants[P2]?.total).toBe(1);
  });
});

describe('tags', () => {
  const key = 'org.fitlamp.fitbit.status';

  it('sets a tag with PUT and reads it back with GET', async () => {
    const base = await start();
    const put = await call(base, 'PUT', `/participant/${P1}/tag/${key}/me`, { body: { connected: true, last_sync: 1_700_000_000_000 } });
    expect(put.status).toBe(200);
    expect(put.json).toEqual({ data: {} });
    const get = await call(base, 'GET', `/participant/${P1}/tag/${key}`);
    expect(get.json).toEqual({ data: { connected: true, last_sync: 1_700_000_000_000 } });
    expect((await call(base, 'GET', `/participant/${P1}/tag`)).json).toEqual({ data: [key] });
  });

  it('overwrites on a second PUT (an upsert) and deletes on null', async () => {
    const base = await start();
    await call(base, 'PUT', `/participant/${P1}/tag/${key}/me`, { body: { connected: true } });
    await call(base, 'PUT', `/participant/${P1}/tag/${key}/me`, { body: { connected: false } });
    expect((await call(base, 'GET', `/participant/${P1}/tag/${key}`)).json).toEqual({ data: { connected: false } });
    await call(base, 'PUT', `/participant/${P1}/tag/${key}/me`, { rawBody: 'null' });
    const gone = await call(base, 'GET', `/participant/${P1}/tag/${key}`);
    expect(gone.status).toBe(404);
    expect(gone.json).toEqual({ error: '404.object-not-found' });
  });

  it('answers 404 object-not-found for a missing key and for a participant with no tags', async () => {
    const base = await start();
    expect((await call(base, 'GET', `/participant/${P1}/tag/nope`)).json).toEqual({ error: '404.object-not-found' });
    const list = await call(base, 'GET', `/participant/${P1}/tag`);
    expect(list.status).toBe(404);
    expect(list.json).toEqual({ error: '404.object-not-found' });
  });

  it('serves /attachment/ as an alias of /tag/', async () => {
    const base = await start();
    await call(base, 'PUT', `/participant/${P1}/attachment/${key}/me`, { body: { a: 1 } });
    expect((await call(base, 'GET', `/participant/${P1}/tag/${key}`)).json).toEqual({ data: { a: 1 } });
  });

  it('applies a study-owned tag targeted at the Participant type to its participants', async () => {
    const base = await start();
    await call(base, 'PUT', `/study/S1/tag/${key}/Participant`, { body: { from: 'study' } });
    expect((await call(base, 'GET', `/participant/${P2}/tag/${key}`)).json).toEqual({ data: { from: 'study' } });
  });

  it('requires credentials and scope like the other routes', async () => {
    const base = await start();
    expect((await call(base, 'PUT', `/participant/${P1}/tag/${key}/me`, { body: {}, auth: null })).status).toBe(401);
    expect((await call(base, 'GET', `/participant/U9999999999/tag/${key}`)).json).toEqual({ error: '404.resource-not-found' });
  });
});

describe('unknown routes', () => {
  it('answer 404 with {"message": "404.api-endpoint-unimplemented"}, DELETE of events included', async () => {
    const base = await start();
    for (const [method, path] of [
      ['GET', '/nothing/here'],
      ['DELETE', `/participant/${P1}/sensor_event`],
    ] as const) {
      const answer = await call(base, method, path);
      expect(answer.status).toBe(404);
      expect(answer.json).toEqual({ message: '404.api-endpoint-unimplemented' });
    }
  });
});
