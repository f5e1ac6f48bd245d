import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack, type StackParticipant } from '@fitlamp/harness';
import { addDays, daysBetween, localDayBounds, syncWindow, type ZoneHistory } from '@fitlamp/provider';
import { findUser, syncUser, viewDay, type WorldUser } from '@fitlamp/simulators';
import { waitFor } from '@fitlamp/testing';

// Revisions reach mindLAMP's sums (issue 16 item 5). The four services as processes against the
// simulators: a week of 5 participants is delivered, then one watch syncs again, and that sync
// recomputes its recent days (the simulator nudges about 5 % of step minutes and 4 % of
// heart-rate minutes, some of them to 0 steps). mindLAMP already holds those minutes and can
// neither update nor delete them. Without corrections, its per-minute and per-hour step sums stay
// below or above the provider's for good; with them, they equal the provider's, minute by minute
// and per UTC hour, and no datum is stored twice. Heart rate is not additive: its revisions are
// counted in the ledger, never sent.

const SIM_START = '2026-11-18T16:00:00Z';
const DAYS = 7;
const presets = ['new-york', 'sydney', 'kolkata', 'new-york', 'sydney'];
// Watches sync only when the test says so (autoSyncMinutes 0), so the one revising sync is the test's.
const participants: StackParticipant[] = presets.map((preset, i) => ({
  id: `C${String(i + 1).padStart(10, '0')}`,
  user: { id: `REV${String(i + 1).padStart(3, '0')}`, preset, autoSyncMinutes: 0 },
}));
const REVISED = participants[0]!;

const asZones = (user: WorldUser): ZoneHistory => user.zoneHistory.map((z) => ({ zone: z.zone, validFrom: z.from }));

interface StepsComparison {
  minutesDiffer: number;
  hoursDiffer: number;
  /** The provider's steps minus mindLAMP's, over all participants' windows. */
  stepsMissing: number;
  /** How many steps the differing hours are off by, in absolute value. */
  stepsOff: number;
  minutesCompared: number;
}

describe('revisions of delivered steps reach mindLAMP as corrections', () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack({
      participants,
      backfillDays: DAYS,
      simStartAt: SIM_START,
      syncIntervalSeconds: 10,
      schedulerTickSeconds: 1,
      sweepSeconds: 5,
      seed: 'fitlamp-corrections-e2e',
    });
  }, 300_000);

  afterAll(async () => {
    await stack?.stop();
  });

  /**
   * mindLAMP's `lamp.steps` against the world as the API shows it now, per minute and per UTC
   * hour, over each participant's window up to its watch's last sync. `withCorrections` false
   * leaves correction events out: what mindLAMP would hold had fitlamp sent nothing for revisions.
   */
  function compareSteps(withCorrections: boolean): StepsComparison {
    const { fitbit, lamp } = stack;
    const now = fitbit.clock.now();
    const out: StepsComparison = { minutesDiffer: 0, hoursDiffer: 0, stepsMissing: 0, stepsOff: 0, minutesCompared: 0 };
    for (const p of participants) {
      const user = findUser(fitbit.world, p.user.id)!;
      const { first, today } = syncWindow(asZones(user), now, DAYS);
      const from = localDayBounds(first, asZones(user)).start;
      const to = localDayBounds(today, asZones(user)).end;
      const truth = new Map<number, number>();
      for (const day of daysBetween(first, today)) {
        const view = viewDay(fitbit.world, user, day, now);
        for (let m = 0; view.day && m < view.visibleMinutes; m++) {
          const steps = view.day.steps[m] ?? 0;
          if (steps > 0) truth.set(view.start + m * 60_000, steps);
        }
      }
      const stored = new Map<number, number>();
      for (const { event } of lamp.listEvents({ participantId: p.id, sensor: 'lamp.steps' })) {
        const t = Number(event.timestamp);
        const data = event.data as { value: number; correction?: boolean };
        if (t < from || t >= to || (!withCorrections && data.correction === true)) continue;
        stored.set(t, (stored.get(t) ?? 0) + data.value);
      }
      const hours = new Map<number, number>();
      for (const t of new Set([...truth.keys(), ...stored.keys()])) {
        const diff = (truth.get(t) ?? 0) - (stored.get(t) ?? 0);
        out.minutesCompared++;
        if (diff !== 0) out.minutesDiffer++;
        out.stepsMissing += diff;
        const hour = Math.floor(t / 3_600_000);
        hours.set(hour, (hours.get(hour) ?? 0) + diff);
      }
      for (const diff of hours.values()) {
        if (diff !== 0) out.hoursDiffer++;
        out.stepsOff += Math.abs(diff);
      }
    }
    return out;
  }

  const corrections = (sensor?: string) =>
    stack.lamp.listEvents(sensor ? { sensor } : {}).filter((e) => (e.event.data as { correction?: boolean }).correction === true);

  it('a device sync that revises delivered minutes leaves mindLAMP short without corrections, and equal to the provider with them', async () => {
    const { fitbit, lamp } = stack;
    const syncAll = (at: number) => {
      for (const p of participants) syncUser(fitbit.world, findUser(fitbit.world, p.user.id)!, at);
    };
    syncAll(fitbit.clock.now() - 60_000);
    for (const p of participants) await stack.connect(p);
    await stack.waitUntilCaughtUp();
    // The week as first delivered: equal to the provider, and nothing needed correcting.
    const delivered = compareSteps(true);
    expect(delivered).toMatchObject({ minutesDiffer: 0, hoursDiffer: 0, stepsMissing: 0 });
    expect(delivered.minutesCompared).toBeGreaterThan(5_000);
    expect(corrections()).toEqual([]);

    // One watch syncs again: the sync recomputes its recent days, minutes mindLAMP already holds.
    const user = findUser(fitbit.world, REVISED.user.id)!;
    const syncAt = fitbit.clock.now() - 5_000;
    syncUser(fitbit.world, user, syncAt);
    const { today } = syncWindow(asZones(user), fitbit.clock.now(), DAYS);
    // The re-fetch window (REFETCH_DAYS 3): the days a sync still revises (up to 48 h after their end).
    const revisedDays = daysBetween(addDays(today, -2), today);
    await waitFor(
      'fitlamp to fetch the revised days after the new sync',
      async () => {
        const rows = await stack.db
          .selectFrom('day_ledger')
          .select(['day', 'synced_through'])
          .where('participant_id', '=', REVISED.id)
          .where('stream', '=', 'steps')
          .where('day', 'in', revisedDays)
          .execute();
        return rows.length === revisedDays.length && rows.every((r) => (r.synced_through?.getTime() ?? 0) >= syncAt);
      },
      180_000,
    );
    await stack.waitUntilCaughtUp();

    const without = compareSteps(false);
    const withCorrections = compareSteps(true);
    console.log(JSON.stringify({ revisedParticipant: REVISED.id, revisedDays, without, withCorrections, corrections: corrections().length }));
    // The revision hit minutes mindLAMP held: without corrections its sums would stay wrong.
    expect(without.minutesDiffer).toBeGreaterThan(0);
    expect(without.hoursDiffer).toBeGreaterThan(0);
    // With them, every minute and every UTC hour equals the provider's.
    expect(withCorrections).toMatchObject({ minutesDiffer: 0, hoursDiffer: 0, stepsMissing: 0, stepsOff: 0 });

    // Corrections are the revised participant's steps only, each counted apart, none twice.
    const sent = corrections();
    expect(sent.length).toBeGreaterThan(0);
    expect(new Set(sent.map((e) => e.participantId))).toEqual(new Set([REVISED.id]));
    expect(new Set(sent.map((e) => e.event.sensor))).toEqual(new Set(['lamp.steps']));
    expect(lamp.findRepeats().groups).toEqual([]);
    for (const e of sent) {
      expect(e.event.data).toMatchObject({ correction: true, unit: 'count', type: 'step_count', source: 'com.fitbit.webapi' });
      expect(Number.isInteger((e.event.data as { revision: unknown }).revision)).toBe(true);
    }

    // The ledger and the day API tell the coordinator which days changed and by how much.
    const ledger = await stack.db
      .selectFrom('day_ledger')
      .select(['stream', 'day', 'revised_events', 'corrected_events', 'correction_delta'])
      .where('participant_id', '=', REVISED.id)
      .execute();
    const steps = ledger.filter((r) => r.stream === 'steps');
    expect(steps.reduce((n, r) => n + r.correction_delta, 0)).toBe(sent.reduce((n, e) => n + (e.event.data as { value: number }).value, 0));
    expect(steps.reduce((n, r) => n + r.corrected_events, 0)).toBe(new Set(sent.map((e) => e.event.timestamp)).size);
    // Heart rate was revised too, and only counted.
    expect(ledger.filter((r) => r.stream === 'heart_rate').reduce((n, r) => n + r.revised_events, 0)).toBeGreaterThan(0);
    expect(ledger.filter((r) => r.stream !== 'steps').every((r) => r.corrected_events === 0)).toBe(true);
    const revisedDay = steps.find((r) => r.corrected_events > 0)!;
    const api = await fetch(`${stack.gatewayUrl}/admin/participants/${REVISED.id}/days?from=${revisedDay.day}&to=${revisedDay.day}`, {
      headers: { authorization: `Bearer ${stack.adminToken}` },
    });
    const body = (await api.json()) as { days: Array<{ streams: Record<string, { correctedEvents: number; correctionDelta: number }> }> };
    expect(body.days[0]!.streams.steps).toMatchObject({ correctedEvents: revisedDay.corrected_events, correctionDelta: revisedDay.correction_delta });
  }, 900_000);
});
