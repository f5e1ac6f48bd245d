import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedBatch, seedLedger, seedParticipant } from '@fitlamp/testing';
import { buildTestGateway, type GatewayUnderTest } from '../test/gateway.ts';

interface StreamDay {
  status: string;
  reason: string | null;
  recordsFetched: number;
  recordsDelivered: number;
  recordsParked: number;
  revisedEvents: number;
  correctedEvents: number;
  correctionDelta: number;
  fetchedAt: string | null;
  provider: string | null;
}
interface DaysBody {
  participantId: string;
  from: string;
  to: string;
  streams: string[];
  summary: Record<string, number>;
  connections: Array<{ provider: string; status: string }>;
  days: Array<{
    day: string;
    status: string;
    reason: string | null;
    recordsFetched: number;
    recordsDelivered: number;
    recordsParked: number;
    counts: Record<string, number>;
    streams: Record<string, StreamDay>;
  }>;
}
interface ErrorBody {
  error: string;
  message: string;
  issues?: Array<{ path: string; message: string }>;
}

// The day ledger API through app.inject, on real Postgres, with rows as the fetcher writes them.
describe('GET /admin/participants/:id/days', () => {
  let gw: GatewayUnderTest;
  const get = (path: string, headers: Record<string, string> = gw.admin) => gw.inject(path, { headers });

  beforeAll(async () => {
    gw = await buildTestGateway();
    // P1: connected, three data streams scheduled (and device, which has no days of its own).
    await seedParticipant(gw.db, 'P1', { status: 'connected', streams: ['steps', 'heart_rate', 'sleep', 'device'] });
    await seedLedger(gw.db, 'P1', [
      { stream: 'steps', day: '2026-03-01', status: 'settled', fetched: 1440, delivered: 1440 },
      { stream: 'heart_rate', day: '2026-03-01', status: 'settled', fetched: 900, delivered: 900 },
      { stream: 'sleep', day: '2026-03-01', status: 'settled', fetched: 30, delivered: 30 },
      // A later sync revised 4 delivered minutes; mindLAMP got corrections for 3 of them, 7 steps in all.
      { stream: 'steps', day: '2026-03-02', status: 'settled', fetched: 1440, delivered: 1437, revised: { events: 4, corrected: 3, delta: 7 } },
      { stream: 'heart_rate', day: '2026-03-02', status: 'partial', reason: 'device last synced 2026-03-02T18:00:00.000Z: more may come', fetched: 600, delivered: 600 },
      { stream: 'sleep', day: '2026-03-02', status: 'failed', reason: 'Fitbit 500 server_error: will retry', fetched: 0, fetchedAt: null },
      { stream: 'steps', day: '2026-03-03', status: 'empty', reason: 'no data: the device was not worn, or recorded nothing this day' },
      // Written by the Google Health provider after a migration: the provider shows per day.
      { stream: 'steps', day: '2026-03-04', status: 'partial', reason: 'more may come', fetched: 12, delivered: 0, provider: 'google-health' },
      // Outside the asked range: must not appear.
      { stream: 'steps', day: '2026-02-28', status: 'failed', reason: 'outside' },
    ]);
    // Three of 2026-03-02's step records were refused by mindLAMP.
    await seedBatch(gw.db, 'P1', { status: 'parked', count: 3, day: '2026-03-02' });

    // P2: disconnected: no cursors any more, but its history stays in the ledger.
    await seedParticipant(gw.db, 'P2', { status: 'disconnected' });
    await seedLedger(gw.db, 'P2', [{ stream: 'spo2', day: '2026-03-02', status: 'settled', fetched: 1, delivered: 1 }]);

    // P3: enrolled, never connected: nothing scheduled, nothing fetched.
    await seedParticipant(gw.db, 'P3');
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('needs the admin token', async () => {
    const res = await get('/admin/participants/P1/days?from=2026-03-01&to=2026-03-02', {});
    expect(res.status).toBe(401);
    const wrong = await get('/admin/participants/P1/days?from=2026-03-01&to=2026-03-02', { authorization: 'Bearer not-the-admin-token-000000' });
    expect(wrong.status).toBe(401);
  });

  it.each([
    ['from is missing', '?to=2026-03-02', 'from'],
    ['to is missing', '?from=2026-03-01', 'to'],
    ['from is not a day', '?from=March&to=2026-03-02', 'from'],
    ['to is not a calendar day', '?from=2026-02-01&to=2026-02-30', 'to'],
    ['to is before from', '?from=2026-03-05&to=2026-03-01', 'to'],
    ['the range is longer than 366 days', '?from=2025-01-01&to=2026-01-02', 'to'],
    ['the stream is unknown', '?from=2026-03-01&to=2026-03-02&stream=steps,calories', 'stream.1'],
    ['the stream list is empty', '?from=2026-03-01&to=2026-03-02&stream=', 'stream'],
    ['a parameter is unknown', '?from=2026-03-01&to=2026-03-02&days=7', ''],
  ])('answers 400 naming the field when %s', async (_case, query, path) => {
    const res = await get(`/admin/participants/P1/days${query}`);
    expect(res.status).toBe(400);
    const body = (await res.json()) as ErrorBody;
    expect(body.error).toBe('invalid_request');
    expect(body.issues?.map((i) => i.path)).toContain(path);
    if (path) expect(body.message).toContain(`${path}:`);
  });

  it('says which streams exist when one is unknown, and why a long range is refused', async () => {
    const stream = (await (await get('/admin/participants/P1/days?from=2026-03-01&to=2026-03-02&stream=calories')).json()) as ErrorBody;
    expect(stream.message).toContain('unknown stream "calories"');
    expect(stream.message).toContain('heart_rate');
    const range = (await (await get('/admin/participants/P1/days?from=2025-01-01&to=2026-01-02')).json()) as ErrorBody;
    expect(range.message).toContain('367 days');
    expect(range.message).toContain('at most 366');
  });

  it('accepts a range of exactly 366 days and reports every one of them', async () => {
    const res = await get('/admin/participants/P1/days?from=2025-03-04&to=2026-03-04');
    expect(res.status).toBe(200);
    const body = (await res.json()) as DaysBody;
    expect(body.days).toHaveLength(366);
    expect(body.days[0]!.day).toBe('2025-03-04');
    expect(body.days.at(-1)!.day).toBe('2026-03-04');
  });

  it('answers 400 for a malformed participant id and 404 for an unknown one', async () => {
    const bad = await get('/admin/participants/not%20an%20id/days?from=2026-03-01&to=2026-03-02');
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as ErrorBody).issues?.map((i) => i.path)).toEqual(['id']);
    const unknown = await get('/admin/participants/NOBODY/days?from=2026-03-01&to=2026-03-02');
    expect(unknown.status).toBe(404);
    const body = (await unknown.json()) as ErrorBody;
    expect(body.error).toBe('participant_not_found');
    expect(body.message).toContain('NOBODY');
  });

  it('reports every stream × day, filling days without a ledger row as not fetched yet', async () => {
    const res = await get('/admin/participants/P1/days?from=2026-03-01&to=2026-03-05');
    expect(res.status).toBe(200);
    const body = (await res.json()) as DaysBody;
    expect(body.participantId).toBe('P1');
    expect([body.from, body.to]).toEqual(['2026-03-01', '2026-03-05']);
    // Catalog order, device left out (it has no days).
    expect(body.streams).toEqual(['steps', 'heart_rate', 'sleep']);
    expect(body.connections).toMatchObject([{ provider: 'fitbit', status: 'connected' }]);
    expect(body.days.map((d) => d.day)).toEqual(['2026-03-01', '2026-03-02', '2026-03-03', '2026-03-04', '2026-03-05']);
    for (const day of body.days) expect(Object.keys(day.streams).sort()).toEqual(['heart_rate', 'sleep', 'steps']);

    const march2 = body.days[1]!;
    expect(march2.streams.steps).toEqual({
      status: 'settled',
      reason: null,
      recordsFetched: 1440,
      recordsDelivered: 1437,
      recordsParked: 3,
      revisedEvents: 4,
      correctedEvents: 3,
      correctionDelta: 7,
      fetchedAt: '2026-03-02T23:00:00.000Z',
      provider: 'fitbit',
    });
    expect(march2.streams.sleep).toMatchObject({ status: 'failed', reason: 'Fitbit 500 server_error: will retry', fetchedAt: null });
    expect(body.days[3]!.streams.steps).toMatchObject({ status: 'partial', provider: 'google-health', recordsFetched: 12 });

    // Never fetched: reported, not omitted.
    expect(body.days[2]!.streams.heart_rate).toEqual({
      status: 'not_synced',
      reason: 'not fetched yet',
      recordsFetched: 0,
      recordsDelivered: 0,
      recordsParked: 0,
      revisedEvents: 0,
      correctedEvents: 0,
      correctionDelta: 0,
      fetchedAt: null,
      provider: null,
    });
    expect(Object.values(body.days[4]!.streams).map((s) => [s.status, s.reason])).toEqual([
      ['not_synced', 'not fetched yet'],
      ['not_synced', 'not fetched yet'],
      ['not_synced', 'not fetched yet'],
    ]);
    expect(body.summary).toEqual({ settled: 4, partial: 2, empty: 1, not_synced: 7, failed: 1 });
  });

  it('rolls each day up to the worst status of its streams, with totals and why', async () => {
    const body = (await (await get('/admin/participants/P1/days?from=2026-03-01&to=2026-03-05')).json()) as DaysBody;
    const [d1, d2, d3, d4, d5] = body.days;
    expect(d1).toMatchObject({ status: 'settled', reason: null, recordsFetched: 2370, recordsDelivered: 2370, recordsParked: 0 });
    expect(d1!.counts).toEqual({ settled: 3, partial: 0, empty: 0, not_synced: 0, failed: 0 });
    // settled + partial + failed: failed wins, and the day says which stream and why.
    expect(d2).toMatchObject({ status: 'failed', reason: 'sleep: Fitbit 500 server_error: will retry', recordsFetched: 2040, recordsDelivered: 2037, recordsParked: 3 });
    expect(d2!.counts).toEqual({ settled: 1, partial: 1, empty: 0, not_synced: 0, failed: 1 });
    // empty + two never fetched: not_synced is worse than empty.
    expect(d3).toMatchObject({ status: 'not_synced', reason: 'heart_rate: not fetched yet; sleep: not fetched yet' });
    expect(d4!.status).toBe('not_synced');
    expect(d5!.status).toBe('not_synced');
  });

  it('ranks empty below not synced and above partial', async () => {
    const body = (await (await get('/admin/participants/P1/days?from=2026-03-02&to=2026-03-03&stream=steps,heart_rate')).json()) as DaysBody;
    expect(body.streams).toEqual(['steps', 'heart_rate']);
    // settled + partial → partial
    expect(body.days[0]).toMatchObject({ status: 'partial', reason: 'heart_rate: device last synced 2026-03-02T18:00:00.000Z: more may come' });
    // empty + not fetched → not_synced
    expect(body.days[1]!.status).toBe('not_synced');
    const emptyOnly = (await (await get('/admin/participants/P1/days?from=2026-03-03&to=2026-03-03&stream=steps')).json()) as DaysBody;
    expect(emptyOnly.days[0]).toMatchObject({ status: 'empty', reason: 'steps: no data: the device was not worn, or recorded nothing this day' });
  });

  it('limits the answer to the streams asked for, even ones not scheduled', async () => {
    const body = (await (await get('/admin/participants/P1/days?from=2026-03-01&to=2026-03-02&stream=sleep')).json()) as DaysBody;
    expect(body.streams).toEqual(['sleep']);
    expect(body.days.map((d) => [d.day, d.status])).toEqual([
      ['2026-03-01', 'settled'],
      ['2026-03-02', 'failed'],
    ]);
    expect(Object.keys(body.days[0]!.streams)).toEqual(['sleep']);
    const spo2 = (await (await get('/admin/participants/P1/days?from=2026-03-01&to=2026-03-01&stream=spo2')).json()) as DaysBody;
    expect(spo2.days[0]!.streams.spo2).toMatchObject({ status: 'not_synced', reason: 'not fetched yet' });
  });

  it("keeps a disconnected participant's history: streams come from the ledger", async () => {
    const body = (await (await get('/admin/participants/P2/days?from=2026-03-01&to=2026-03-02')).json()) as DaysBody;
    expect(body.connections).toMatchObject([{ status: 'disconnected' }]);
    expect(body.streams).toEqual(['spo2']);
    expect(body.days.map((d) => [d.day, d.status, d.reason])).toEqual([
      ['2026-03-01', 'not_synced', 'spo2: not fetched yet'],
      ['2026-03-02', 'settled', null],
    ]);
  });

  it('reports the days of a participant with no streams at all as not fetched yet', async () => {
    const body = (await (await get('/admin/participants/P3/days?from=2026-03-01&to=2026-03-03')).json()) as DaysBody;
    expect(body.streams).toEqual([]);
    expect(body.connections).toEqual([]);
    expect(body.days.map((d) => [d.day, d.status, d.reason, d.streams])).toEqual([
      ['2026-03-01', 'not_synced', 'not fetched yet', {}],
      ['2026-03-02', 'not_synced', 'not fetched yet', {}],
      ['2026-03-03', 'not_synced', 'not fetched yet', {}],
    ]);
  });
});
