import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, seedWear, type TestDatabase } from '@fitlamp/testing';
import { findDayTotals } from './day-totals.ts';

describe('per-day totals (interim: from the records outbox)', () => {
  let t: TestDatabase;
  let seq = 0;
  const record = (participantId: string, stream: string, day: string, timestamp: number, data: Record<string, unknown>, duration: number | null = null) => ({
    record_key: `${participantId}/${stream}/${timestamp}/${++seq}`,
    participant_id: participantId,
    stream,
    day,
    sensor: `lamp.${stream}`,
    timestamp,
    duration,
    data: JSON.stringify(data),
    data_hash: `h${seq}`,
    status: 'pending' as const,
  });
  beforeAll(async () => {
    t = await createTestDatabase();
    await t.db.insertInto('participants').values([{ id: 'A' }, { id: 'B' }]).execute();
    await seedWear(t.db, 'A', '2026-11-02', 90);
    const at = Date.parse('2026-11-02T10:00:00Z');
    await t.db
      .insertInto('records')
      .values([
        // Two readings in one minute count once; a reading the next minute counts again.
        record('A', 'heart_rate', '2026-11-03', at, { value: 60 }),
        record('A', 'heart_rate', '2026-11-03', at + 20_000, { value: 61 }),
        record('A', 'heart_rate', '2026-11-03', at + 60_000, { value: 62 }),
        record('A', 'steps', '2026-11-03', at, { value: 120 }),
        record('A', 'steps', '2026-11-03', at + 60_000, { value: 35 }),
        // Asleep 90 minutes, awake 10: only sleep counts.
        record('A', 'sleep', '2026-11-03', at, { value: 3, representation: 'in_sleep', stage: 'light' }, 5_400_000),
        record('A', 'sleep', '2026-11-03', at, { value: 2, representation: 'in_awake', stage: 'wake' }, 600_000),
        // Other streams are not totals.
        record('A', 'spo2', '2026-11-03', at, { value: 97 }),
        record('B', 'steps', '2026-11-03', at, { value: 7 }),
      ])
      .execute();
  });
  afterAll(async () => {
    await t.drop();
  });

  it('counts minutes with heart rate, sums steps and minutes asleep, per participant and local day', async () => {
    expect(await findDayTotals(t.db, { from: '2026-11-01', to: '2026-11-30' })).toEqual([
      { participantId: 'A', day: '2026-11-02', wearMinutes: 90, steps: 0, sleepMinutes: 0 },
      { participantId: 'A', day: '2026-11-03', wearMinutes: 2, steps: 155, sleepMinutes: 90 },
      { participantId: 'B', day: '2026-11-03', wearMinutes: 0, steps: 7, sleepMinutes: 0 },
    ]);
  });

  it('keeps to the range and the participants asked for', async () => {
    expect(await findDayTotals(t.db, { participantIds: ['B'], from: '2026-11-01', to: '2026-11-30' })).toEqual([
      { participantId: 'B', day: '2026-11-03', wearMinutes: 0, steps: 7, sleepMinutes: 0 },
    ]);
    expect((await findDayTotals(t.db, { from: '2026-11-03', to: '2026-11-03' })).map((r) => r.participantId)).toEqual(['A', 'B']);
    expect(await findDayTotals(t.db, { participantIds: [], from: '2026-11-01', to: '2026-11-30' })).toEqual([]);
  });
});
