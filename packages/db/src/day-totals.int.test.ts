import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, seedWear, type TestDatabase } from '@fitlamp/testing';
import { dayTotalOf, findDayTotals, saveDayTotal } from './day-totals.ts';

describe('per-day totals (day_summaries, kept beyond retention)', () => {
  let t: TestDatabase;
  const minute = (value: Record<string, unknown>, d: number | null = null) => ({ d, v: value });
  beforeAll(async () => {
    t = await createTestDatabase();
    await t.db.insertInto('participants').values([{ id: 'A' }, { id: 'B' }]).execute();
    await seedWear(t.db, 'A', '2026-11-02', 90);
    const totals = [
      // One heart-rate event a minute: three minutes worn.
      { participantId: 'A', stream: 'heart_rate', day: '2026-11-03', events: [minute({ value: 60 }), minute({ value: 61 }), minute({ value: 62 })] },
      { participantId: 'A', stream: 'steps', day: '2026-11-03', events: [minute({ value: 120 }), minute({ value: 35 })] },
      // Asleep 90 minutes, awake 10: only sleep counts.
      {
        participantId: 'A',
        stream: 'sleep',
        day: '2026-11-03',
        events: [minute({ value: 3, representation: 'in_sleep' }, 5_400_000), minute({ value: 2, representation: 'in_awake' }, 600_000)],
      },
      // Other streams have no total.
      { participantId: 'A', stream: 'spo2', day: '2026-11-03', events: [minute({ value: 97 })] },
      { participantId: 'B', stream: 'steps', day: '2026-11-03', events: [minute({ value: 7 })] },
    ];
    await t.db.transaction().execute(async (trx) => {
      for (const e of totals) await saveDayTotal(trx, { ...e, total: dayTotalOf(e.stream, e.events) });
    });
  });
  afterAll(async () => {
    await t.drop();
  });

  it('counts minutes with heart rate, sums steps and minutes asleep, per participant and local day; null where never fetched', async () => {
    expect(dayTotalOf('spo2', [minute({ value: 97 })])).toBeNull();
    expect(await findDayTotals(t.db, { from: '2026-11-01', to: '2026-11-30' })).toEqual([
      { participantId: 'A', day: '2026-11-02', wearMinutes: 90, steps: null, sleepMinutes: null },
      { participantId: 'A', day: '2026-11-03', wearMinutes: 3, steps: 155, sleepMinutes: 90 },
      { participantId: 'B', day: '2026-11-03', wearMinutes: null, steps: 7, sleepMinutes: null },
    ]);
  });

  it('a later fetch replaces a total; a gap filler leaves it alone', async () => {
    await t.db.transaction().execute(async (trx) => {
      await saveDayTotal(trx, { participantId: 'B', stream: 'steps', day: '2026-11-03', total: 9 });
      await saveDayTotal(trx, { participantId: 'B', stream: 'steps', day: '2026-11-03', total: 1 }, true);
    });
    expect((await findDayTotals(t.db, { participantIds: ['B'], from: '2026-11-03', to: '2026-11-03' }))[0]?.steps).toBe(9);
  });

  it('keeps to the range and the participants asked for', async () => {
    expect((await findDayTotals(t.db, { participantIds: ['B'], from: '2026-11-01', to: '2026-11-30' })).map((r) => r.participantId)).toEqual(['B']);
    expect((await findDayTotals(t.db, { from: '2026-11-03', to: '2026-11-03' })).map((r) => r.participantId)).toEqual(['A', 'B']);
    expect(await findDayTotals(t.db, { participantIds: [], from: '2026-11-01', to: '2026-11-30' })).toEqual([]);
  });
});
