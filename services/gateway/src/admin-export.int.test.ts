import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedLedger, seedParticipant, seedWear } from '@fitlamp/testing';
import { buildTestGateway, type GatewayUnderTest } from '../test/gateway.ts';

// The CSV exports through app.inject on real Postgres, read back with a CSV parser.
describe('CSV exports', () => {
  let gw: GatewayUnderTest;
  const get = (path: string) => gw.inject(path, { headers: gw.admin });
  const rowsOf = async (res: Response) => parse(await res.text(), { columns: true }) as Array<Record<string, string>>;

  beforeAll(async () => {
    gw = await buildTestGateway();
    await seedParticipant(gw.db, 'E1', {
      status: 'reconnect_needed',
      statusReason: 'Fitbit said "invalid_grant", then:\nthe token was revoked, again',
      device: { syncedAt: new Date('2026-03-04T07:00:00Z'), battery: 41 },
    });
    await seedParticipant(gw.db, 'E2', { studyId: 'S2' });
    await seedLedger(gw.db, 'E1', [
      { stream: 'steps', day: '2026-03-02', status: 'settled' },
      { stream: 'heart_rate', day: '2026-03-02', status: 'settled' },
      { stream: 'sleep', day: '2026-03-03', status: 'failed', reason: 'scope not granted' },
    ]);
    await seedWear(gw.db, 'E1', '2026-03-02', 75);
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('compliance.csv: one row per participant-day with totals and each stream’s ledger status', async () => {
    const res = await get('/admin/export/compliance.csv?from=2026-03-02&to=2026-03-03');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    expect(res.headers.get('content-disposition')).toBe('attachment; filename="compliance-2026-03-02-2026-03-03.csv"');
    const rows = await rowsOf(res);
    expect(rows.map((r) => `${r.participant_id}/${r.day}`)).toEqual(['E1/2026-03-02', 'E1/2026-03-03', 'E2/2026-03-02', 'E2/2026-03-03']);
    expect(rows[0]).toMatchObject({ study_id: 'S1', wear_minutes: '75', steps: '0', sleep_minutes: '0', steps_status: 'settled', heart_rate_status: 'settled', sleep_status: '' });
    expect(rows[1]).toMatchObject({ wear_minutes: '0', sleep_status: 'failed', steps_status: '' });
    expect(rows[2]).toMatchObject({ study_id: 'S2', wear_minutes: '0' });
    expect(Object.keys(rows[0]!)).not.toContain('device_status');
  });

  it('participants.csv: a reason with commas, quotes and a line break survives the round trip', async () => {
    const res = await get('/admin/export/participants.csv');
    expect(res.status).toBe(200);
    const rows = await rowsOf(res);
    expect(rows.map((r) => r.participant_id)).toEqual(['E1', 'E2']);
    expect(rows[0]).toMatchObject({
      study_id: 'S1',
      provider: 'fitbit',
      status: 'reconnect_needed',
      status_reason: 'Fitbit said "invalid_grant", then:\nthe token was revoked, again',
      device_last_sync_at: '2026-03-04T07:00:00.000Z',
      battery_percent: '41',
    });
    expect(rows[1]).toMatchObject({ provider: '', status: 'not_connected' });
  });

  it('refuses a malformed or reversed range, and anyone without the token', async () => {
    for (const query of ['from=2026-03-02', 'from=2026-03-05&to=2026-03-02', 'from=2026-02-30&to=2026-03-02', 'from=2025-01-01&to=2026-03-02']) {
      const res = await get(`/admin/export/compliance.csv?${query}`);
      expect(res.status, query).toBe(400);
    }
    expect((await gw.inject('/admin/export/participants.csv')).status).toBe(401);
  });
});
