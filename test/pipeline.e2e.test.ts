import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack, type StackParticipant } from '@fitlamp/harness';
import { addDays, daysBetween, localDayAt, localDayBounds, syncWindow, type ZoneHistory } from '@fitlamp/provider';
import { queueCatalog } from '@fitlamp/queues';
import { dayTruth, findUser, moveUser, syncUser, viewDay, type DayTruth, type WorldUser } from '@fitlamp/simulators';
import { minuteValues, waitFor } from '@fitlamp/testing';

// The four services as processes against the simulators, with faults injected along the way:
// provider 5xx and 429, mindLAMP dropping the connection after storing and answering too late, a
// fetcher killed with SIGKILL while it verifiably holds a job (BullMQ's stalled checker alone
// re-runs it), then Redis FLUSHALL. Every fault is confirmed by the simulators' counters. At the
// end every expected event is in mindLAMP exactly once (counted per minute, never collapsed) at
// the right UTC instant, no refresh token was used twice, and every day has a status.

// The simulated world runs at this date (ticking), so the week includes New York's DST change
// on 2026-11-01. 12:59:20 puts Sydney's midnight 40 s away: whether a Sydney participant connects before or after it depends
// on how fast the machine is, and the checks below must hold either way.
const SIM_START = '2026-11-04T12:59:20Z';
const DAYS = 7;

const presets = ['new-york', 'sydney', 'kolkata', 'new-york'];
const participants: StackParticipant[] = Array.from({ length: 20 }, (_, i) => ({
  id: `U${String(i + 1).padStart(10, '0')}`,
  user:
    i === 0
      ? // The traveller connects first, in London, then flies to Los Angeles during the run (the
        // watch syncs every minute); fitlamp learns the new zone from the profile. The trip is
        // booked once fitlamp has recorded London, however long connecting took.
        { id: 'TRAVEL', zone: 'Europe/London', autoSyncMinutes: 1 }
      : { id: `E2E${String(i + 1).padStart(3, '0')}`, preset: presets[i % presets.length]! },
}));

const asZones = (user: WorldUser): ZoneHistory => user.zoneHistory.map((z) => ({ zone: z.zone, validFrom: z.from }));

describe('the pipeline end to end, with faults', () => {
  let stack: Stack;
  let redis: Redis;

  beforeAll(async () => {
    stack = await startStack({
      participants,
      backfillDays: DAYS,
      simStartAt: SIM_START,
      ownRedis: true,
      fetcherReplicas: 2,
      writerReplicas: 2,
      syncIntervalSeconds: 20,
      schedulerTickSeconds: 1,
      sweepSeconds: 5,
      env: { PROFILE_CHECK_SECONDS: '5', LAMP_TIMEOUT_MS: '1500' },
      seed: 'fitlamp-e2e',
    });
    redis = new Redis(stack.redisUrl, { maxRetriesPerRequest: 2 });
  }, 300_000);

  afterAll(async () => {
    redis?.disconnect();
    await stack?.stop();
  });

  it('delivers every participant-week exactly once through 5xx, 429, timeouts, a killed fetcher and a flushed Redis', async () => {
    const { fitbit, lamp } = stack;
    // Every watch synced two minutes ago (Kolkata's only syncs when told to).
    for (const p of participants) syncUser(fitbit.world, findUser(fitbit.world, p.user.id)!, fitbit.clock.now() - 120_000);

    // Provider faults: three 503s on heart rate, one 429 on sleep. The 429 names its wait
    // (Retry-After), so how long it holds its participant does not depend on how far the clock
    // happens to be from the top of the hour (a bare 429 waits for the hourly reset).
    fitbit.addFault({ path: '/1/user/-/activities/heart', kind: 'error', status: 503, count: 3 });
    fitbit.addFault({ path: '/1.2/user/-/sleep', kind: 'error', status: 429, retryAfterSeconds: 20, count: 1 });
    // mindLAMP faults: two POSTs stored then dropped, one answered after the client gave up.
    lamp.addFault({ route: 'Participant.create_sensor_events', fault: { kind: 'store-then-drop' }, times: 2 });
    lamp.addFault({ route: 'Participant.create_sensor_events', fault: { kind: 'latency', ms: 4_000 }, times: 1 });

    for (const p of participants.slice(0, 10)) await stack.connect(p);
    const traveller = findUser(fitbit.world, 'TRAVEL')!;
    const zonesOf = (id: string) =>
      stack.db.selectFrom('participant_time_zones').select('zone').where('participant_id', '=', id).orderBy('valid_from').execute();
    // Recorded at connect from the profile (or, had that call failed, at the fetcher's next check).
    await waitFor('fitlamp to record where the traveller is', async () => (await zonesOf('U0000000001')).length > 0, 120_000);
    expect((await zonesOf('U0000000001')).map((z) => z.zone)).toEqual(['Europe/London']);
    const tripAt = fitbit.clock.now() + 30_000;
    const tripDay = localDayAt(asZones(traveller), tripAt);
    // The simulator makes the booked day anew (it is now 32 hours long), so the minutes fitlamp
    // may already have fetched of it come from the world as it was before the booking: those
    // versions count as revisions of the world too.
    const truthsOfTripDay = (): DayTruth[] =>
      Array.from({ length: viewDay(fitbit.world, traveller, tripDay, fitbit.clock.now()).generation + 1 }, (_, g) =>
        dayTruth(fitbit.world, traveller, tripDay, g),
      );
    const beforeBooking = truthsOfTripDay();
    moveUser(fitbit.world, traveller, 'America/Los_Angeles', tripAt);
    // A fetcher dies while it holds a job, without a chance to clean up. Its job stays `active`
    // in Redis, locked by a dead worker: only BullMQ's stalled checker (in the other replica) can
    // hand it back. Nothing else touches Redis until that has happened.
    const victim = stack.processes.fetcher[0]!;
    const syncQueue = new Queue(queueCatalog.sync.name, { connection: redis, prefix: stack.queuePrefix });
    const queueEvents = new QueueEvents(queueCatalog.sync.name, { connection: { url: stack.redisUrl }, prefix: stack.queuePrefix });
    await queueEvents.waitUntilReady();
    const stalled = new Set<string>();
    const rerun = new Map<string, number>();
    queueEvents.on('stalled', ({ jobId }) => void stalled.add(jobId));
    queueEvents.on('active', ({ jobId }) => void (stalled.has(jobId) && rerun.set(jobId, (rerun.get(jobId) ?? 0) + 1)));
    const victimName = `-${victim.proc.pid}`;
    const heldByVictim = async () => (await syncQueue.getActive()).filter((j) => j.processedBy?.endsWith(victimName)).map((j) => j.id!);
    let held: string[] = [];
    for (const started = Date.now(); held.length === 0; ) {
      if (Date.now() - started > 120_000) throw new Error('the fetcher to be killed never held a job');
      held = await heldByVictim();
    }
    victim.proc.kill('SIGKILL');
    expect(await victim.exited).toBe('SIGKILL');
    // Still active after its worker died: the job was held at the kill.
    const orphaned = (await heldByVictim()).filter((id) => held.includes(id));
    expect(orphaned.length).toBeGreaterThan(0);
    await waitFor('the stalled checker to re-run the killed fetcher’s job', () => orphaned.every((id) => (rerun.get(id) ?? 0) > 0), 180_000);
    await queueEvents.close();
    await syncQueue.close();

    for (const p of participants.slice(10)) await stack.connect(p);
    // Redis loses every job; Postgres still knows what is due and what is undelivered.
    expect(await redis.flushall()).toBe('OK');
    await stack.startService('fetcher');

    // fitlamp learns of the trip at the traveller's first poll that finds a device sync after it
    // (the profile is read then). Nothing else waits for that poll: on a loaded machine every
    // day can be delivered before it comes, so the test waits for it, then for what it fetched.
    await waitFor('fitlamp to record the trip', async () => (await zonesOf('U0000000001')).length === 2, 180_000);
    const final = await stack.waitUntilCaughtUp();
    expect(final.connected).toBe(20);

    // Nothing twice: no datum (participant, sensor, instant, stage or span) stored more than once.
    expect(lamp.findRepeats().groups).toEqual([]);
    // No refresh token was used twice.
    expect(fitbit.counters().refreshTokenReuse).toBe(0);
    // Every injected fault fired, by the simulators' own counts: three 503s and one 429 at the
    // provider; two POSTs stored then dropped and one answered after the client gave up at mindLAMP.
    expect(fitbit.counters().faultsApplied).toBe(4);
    const lampFaults = lamp.listRequests().flatMap((r) => r.faults ?? []);
    expect({ storeThenDrop: lampFaults.filter((f) => f === 'store-then-drop').length, late: lampFaults.filter((f) => f === 'latency').length }).toEqual({
      storeThenDrop: 2,
      late: 1,
    });

    // Every window day of every stream has a final status. The window is each participant's own,
    // on the clock the services use (the simulators'): wherever that clock is by now, e.g. past
    // Sydney's midnight, the same rule the fetcher plans by says which days must be there.
    const ledger = await stack.db.selectFrom('day_ledger').select(['participant_id', 'stream', 'day', 'status', 'reason']).execute();
    const now = fitbit.clock.now();
    const windowOf = (user: WorldUser) => syncWindow(asZones(user), now, DAYS);
    for (const p of participants) {
      const user = findUser(fitbit.world, p.user.id)!;
      const { first, today } = windowOf(user);
      for (const stream of stack.dataStreams) {
        for (const day of daysBetween(first, today)) {
          const row = ledger.find((r) => r.participant_id === p.id && r.stream === stream && r.day === day);
          expect(row?.status, `${p.id} ${stream} ${day}`).toMatch(/^(settled|partial|empty|not_synced)$/);
          // Not synced only where the watch has not synced that day (Sydney is a day ahead).
          if (row?.status === 'not_synced') expect(row.reason, `${p.id} ${stream} ${day}`).toMatch(/device has not synced/);
        }
      }
    }

    // Steps and heart rate of every settled day (no more revisions: 48 h after its end) are in
    // mindLAMP minute by minute at the right UTC instant, including the 25-hour DST day.
    let checkedDays = 0;
    for (const p of participants) {
      const user = findUser(fitbit.world, p.user.id)!;
      // Every stored minute as an [instant, value] pair, never collapsed: a copy is an extra pair; a
      // correction is added to the minute it corrects (minuteValues).
      const steps = minuteValues(lamp, p.id, 'lamp.steps');
      const heart = minuteValues(lamp, p.id, 'lamp.heart_rate');
      const { first, today } = windowOf(user);
      for (let day = addDays(today, -3); day >= first; day = addDays(day, -1)) {
        const view = viewDay(fitbit.world, user, day, now);
        if (!view.day) continue;
        const truth = view.day;
        const expectedSteps = truth.steps.flatMap((v, m) => (v > 0 ? [[truth.start + m * 60_000, v] as [number, number]] : []));
        const expectedHeart = truth.heartRate.flatMap((v, m) => (v !== null ? [[truth.start + m * 60_000, v] as [number, number]] : []));
        const inDay = (pairs: [number, number][]) => pairs.filter(([t]) => t >= truth.start && t < truth.end).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
        expect(inDay(steps), `${p.id} steps ${day}`).toEqual(expectedSteps);
        expect(inDay(heart), `${p.id} heart rate ${day}`).toEqual(expectedHeart);
        if (day === '2026-11-01' && user.zoneHistory.at(-1)!.zone === 'America/New_York') {
          expect(truth.end - truth.start).toBe(25 * 3_600_000);
        }
        checkedDays++;
      }
    }
    expect(checkedDays).toBeGreaterThanOrEqual(19 * 4);

    // The traveller: every step minute of the trip day (with its corrections) sits on a minute that
    // had those steps in some revision of the world (an 8-hour zone error would put them on other minutes).
    const { start, end } = localDayBounds(tripDay, asZones(traveller));
    const revisions = [...beforeBooking, ...truthsOfTripDay()];
    const tripSteps = lamp
      .listCorrectedDatums({ participantId: 'U0000000001', sensor: 'lamp.steps' })
      .filter((d) => !(d.corrections > 0 && d.value === 0))
      .map((d) => ({ t: d.timestamp, v: d.value }))
      .filter((e) => e.t >= start && e.t < end);
    expect(tripSteps.length).toBeGreaterThan(0);
    for (const { t, v } of tripSteps) {
      expect(revisions.some((r) => r.steps[(t - r.start) / 60_000] === v), `trip-day step event at ${new Date(t).toISOString()}`).toBe(true);
    }
    expect((await zonesOf('U0000000001')).map((z) => z.zone)).toEqual(['Europe/London', 'America/Los_Angeles']);
  }, 900_000);
});
