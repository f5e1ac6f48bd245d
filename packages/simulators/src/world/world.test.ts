import { describe, expect, it } from 'vitest';
import { createClock } from './clock.ts';
import { heartRateSeconds } from './day.ts';
import { sessionsForNight } from './sleep.ts';
import { countSyncs, lastSyncAt } from './sync.ts';
import { createUser } from './users.ts';
import { addUser, createWorld, daySteps, dayTruth, findUser, moveUser, nightTruth, syncUser, viewDay, viewDevices, viewNight } from './world.ts';
import { dayBounds, utcOfLocal } from './zones.ts';

const NOW = Date.parse('2026-11-03T15:00:00Z');

describe('determinism', () => {
  it('the same seed gives the same users and data; another seed does not', () => {
    const a = createWorld({ seed: 'alpha', now: NOW });
    const b = createWorld({ seed: 'alpha', now: NOW });
    const c = createWorld({ seed: 'beta', now: NOW });
    expect(a.users.map((u) => u.id)).toEqual(b.users.map((u) => u.id));
    expect(a.users.map((u) => u.id)).not.toEqual(c.users.map((u) => u.id));
    const ua = a.users[0];
    const ub = b.users[0];
    const uc = c.users[0];
    if (!ua || !ub || !uc) throw new Error('no users');
    // Generated in a different order, still equal.
    dayTruth(b, ub, '2026-10-11', 3);
    expect(dayTruth(a, ua, '2026-10-10', 3)).toEqual(dayTruth(b, ub, '2026-10-10', 3));
    expect(nightTruth(a, ua, '2026-10-10')).toEqual(nightTruth(b, ub, '2026-10-10'));
    expect(dayTruth(a, ua, '2026-10-10', 3).steps).not.toEqual(dayTruth(c, uc, '2026-10-10', 3).steps);
  });

  it('revisions are a function of the generation: equal for equal generations, slightly different otherwise', () => {
    const w = createWorld({ seed: 'rev', now: NOW });
    const u = w.users[0];
    if (!u) throw new Error('no user');
    const g1 = dayTruth(w, u, '2026-10-10', 1);
    const g2 = dayTruth(w, u, '2026-10-10', 2);
    expect(createWorld({ seed: 'rev', now: NOW }).users[0] && dayTruth(createWorld({ seed: 'rev', now: NOW }), u, '2026-10-10', 1)).toEqual(g1);
    const changed = g1.steps.filter((v, i) => v !== g2.steps[i]).length;
    expect(changed).toBeGreaterThan(0);
    expect(changed).toBeLessThan(g1.steps.filter((v) => v > 0).length * 0.15);
  });
});

describe('zones', () => {
  it('a DST fall-back day has 25 hours, spring-forward 23', () => {
    const ny = [{ from: -Infinity, zone: 'America/New_York' }];
    const fall = dayBounds(ny, '2026-11-01');
    expect(fall.start).toBe(Date.parse('2026-11-01T04:00:00Z'));
    expect((fall.end - fall.start) / 3_600_000).toBe(25);
    const spring = dayBounds(ny, '2026-03-08');
    expect((spring.end - spring.start) / 3_600_000).toBe(23);
    expect(utcOfLocal('America/New_York', '2026-11-01', 90)).toBe(Date.parse('2026-11-01T05:30:00Z'));
  });

  it('travel moves the day boundaries: westward long, eastward short', () => {
    const flight = Date.parse('2026-10-20T17:00:00Z');
    const west = [{ from: -Infinity, zone: 'Europe/London' }, { from: flight, zone: 'America/Los_Angeles' }];
    const long = dayBounds(west, '2026-10-20');
    expect(long).toEqual({ start: Date.parse('2026-10-19T23:00:00Z'), end: Date.parse('2026-10-21T07:00:00Z') });
    const east = [{ from: -Infinity, zone: 'America/Los_Angeles' }, { from: flight, zone: 'Asia/Tokyo' }];
    // Tokyo midnight of the 21st passed before the flight landed: the day starts at the landing.
    expect(dayBounds(east, '2026-10-21').start).toBe(flight);
    expect(dayBounds(east, '2026-10-20').end).toBe(flight);
  });

  it('a trip booked during a run moves the days from its instant on, and only forward', () => {
    const w = createWorld({ seed: 'trip', now: NOW, users: [] });
    const user = addUser(w, { id: 'TRIP01', zone: 'Europe/London' });
    const before = dayTruth(w, user, '2026-11-04', 0);
    expect(before.start).toBe(Date.parse('2026-11-04T00:00:00Z'));
    const flight = Date.parse('2026-11-03T18:00:00Z');
    moveUser(w, user, 'America/Los_Angeles', flight);
    // The cached London day is forgotten: the 4th is now a Los Angeles day.
    expect(dayTruth(w, user, '2026-11-04', 0).start).toBe(Date.parse('2026-11-04T08:00:00Z'));
    expect(user.zoneHistory.map((z) => z.zone)).toEqual(['Europe/London', 'America/Los_Angeles']);
    expect(() => moveUser(w, user, 'Asia/Tokyo', flight)).toThrow(/must come after/);
    expect(() => moveUser(w, user, 'Mars/Olympus', flight + 1)).toThrow();
    expect(user.zoneHistory).toHaveLength(2);
  });
});

describe('days and nights', () => {
  const w = createWorld({ seed: 'nights', now: NOW });
  const user = w.users[0];
  if (!user) throw new Error('no user');

  it('main sleep ends on the wake date, usually having started the evening before; segments are contiguous', () => {
    const early = [...w.users].sort((a, b) => a.traits.bedMinute - b.traits.bedMinute)[0] ?? user;
    let checked = 0;
    let crossed = 0;
    for (let d = 1; d <= 10; d += 1) {
      const date = `2026-10-${String(d).padStart(2, '0')}`;
      const night = nightTruth(w, early, date);
      if (!night.main) continue;
      checked += 1;
      const bounds = dayBounds(early.zoneHistory, date);
      if (night.main.start < bounds.start) crossed += 1;
      expect(night.main.start).toBeGreaterThan(bounds.start - 8 * 3_600_000);
      expect(night.main.end).toBeGreaterThan(bounds.start);
      expect(night.main.end).toBeLessThan(bounds.start + 12 * 3_600_000);
      const segs = night.main.segments;
      expect(segs[0]?.start).toBe(night.main.start);
      expect(segs.at(-1)?.end).toBe(night.main.end);
      for (let i = 1; i < segs.length; i += 1) expect(segs[i]?.start).toBe(segs[i - 1]?.end);
      for (const s of segs) expect(['wake', 'light', 'deep', 'rem']).toContain(s.stage);
      for (const sw of night.main.shortWakes) expect(sw.end - sw.start).toBeLessThanOrEqual(180_000);
    }
    expect(checked).toBeGreaterThan(5);
    expect(crossed).toBeGreaterThan(3);
  });

  it('a fragile night is stitched at even generations and split at odd ones', () => {
    let date = '';
    for (let d = 1; d <= 28 && !date; d += 1) {
      const candidate = `2026-10-${String(d).padStart(2, '0')}`;
      if (nightTruth(w, user, candidate).main?.fragileWake) date = candidate;
    }
    expect(date).not.toBe('');
    const night = nightTruth(w, user, date);
    const stitched = sessionsForNight(w.seed, night, 2).filter((s) => s.kind === 'stages');
    const split = sessionsForNight(w.seed, night, 3).filter((s) => s.kind === 'stages');
    expect(stitched).toHaveLength(1);
    expect(split).toHaveLength(2);
    expect((split[1]?.start ?? 0) - (split[0]?.end ?? 0)).toBeGreaterThan(3_600_000);
    expect(split.filter((s) => s.isMain)).toHaveLength(1);
    expect(split.map((s) => s.id)).not.toContain(stitched[0]?.id);
  });

  it('a day has minutes for its real length, HR while worn, and resting HR only on well-worn days', () => {
    const dst = dayTruth(w, user, '2026-11-01', 0);
    expect(dst.steps).toHaveLength(1500);
    let sawThin = false;
    for (let d = 1; d <= 31; d += 1) {
      const day = dayTruth(w, user, `2026-10-${String(d).padStart(2, '0')}`, 0);
      if (day.wear === 'full') expect(day.restingHeartRate).not.toBeNull();
      else {
        expect(day.restingHeartRate).toBeNull();
        sawThin ||= day.wear === 'thin';
      }
      if (day.wear === 'none') expect(day.heartRate.every((v) => v === null)).toBe(true);
    }
    expect(sawThin).toBe(true);
    const full = dayTruth(w, user, '2026-10-10', 0);
    const asleep = full.state.filter((s) => s === 'sleep').length;
    expect(asleep).toBeGreaterThan(6 * 60);
    expect(full.steps.filter((_, i) => full.state[i] === 'sleep').every((v) => v === 0)).toBe(true);
  });

  it('per-second heart rate stays within 1 bpm of the minute value', () => {
    const day = dayTruth(w, user, '2026-10-10', 0);
    const i = day.heartRate.findIndex((v) => v !== null);
    const secs = heartRateSeconds(w.seed, day, i);
    expect(secs.length).toBeGreaterThan(3);
    for (const s of secs) expect(Math.abs(s.bpm - (day.heartRate[i] ?? 0))).toBeLessThanOrEqual(1);
    expect(heartRateSeconds(w.seed, day, i)).toEqual(secs);
  });
});

describe('syncs', () => {
  it('automatic syncs fall on the user grid; manual ones add to it', () => {
    const user = createUser('s', 0, { preset: 'new-york', autoSyncMinutes: 15, since: '2026-10-01' }, '2026-10-01');
    const log = { manual: [] as number[] };
    const last = lastSyncAt(user, log, NOW);
    expect(last).not.toBeNull();
    expect(NOW - (last ?? 0)).toBeLessThan(15 * 60_000);
    expect(countSyncs(user, log, NOW - 3_600_000 + 1, NOW, NOW)).toBe(4);
    log.manual.push(NOW - 1);
    expect(lastSyncAt(user, log, NOW)).toBe(Math.max(last ?? 0, NOW - 1));
  });

  it('a view shows data up to the last sync and a later sync bumps the generation', () => {
    const w = createWorld({ seed: 'views', now: NOW, users: [{ preset: 'kolkata', id: 'KOL001', autoSyncMinutes: 0 }] });
    const u = findUser(w, 'KOL001');
    if (!u) throw new Error('no user');
    const date = '2026-11-03';
    expect(viewDay(w, u, date, NOW)).toMatchObject({ visibleMinutes: 0, day: null, generation: 0 });
    syncUser(w, u, NOW);
    const v1 = viewDay(w, u, date, NOW);
    expect(v1.visibleMinutes).toBe((NOW - v1.start) / 60_000);
    expect(v1.generation).toBe(1);
    syncUser(w, u, NOW + 60_000);
    expect(viewDay(w, u, date, NOW).generation).toBe(1);
    expect(viewDay(w, u, date, NOW + 60_000).generation).toBe(2);
    const sessions = viewNight(w, u, date, NOW).sessions;
    expect(sessions.length).toBeGreaterThan(0);
    expect(sessions.every((s) => s.state === 'pending')).toBe(true);
    expect(viewNight(w, u, date, NOW + 60_000).sessions.every((s) => s.state === 'ready')).toBe(true);
  });
});

describe('clock', () => {
  it('is frozen when started at an instant, and moves only when told', () => {
    const clock = createClock({ startAt: NOW });
    expect(clock.now()).toBe(NOW);
    clock.advance(1000);
    expect(clock.now()).toBe(NOW + 1000);
    clock.set(5);
    expect(clock.now()).toBe(5);
    const real = createClock();
    expect(Math.abs(real.now() - Date.now())).toBeLessThan(1000);
    expect(real.isFrozen()).toBe(false);
  });
});

describe('per-user options for a cockpit to look at', () => {
  it('a non-compliant user leaves the watch off on most days, a low battery stays low, and the rest of the user is unchanged', () => {
    const base = createWorld({ seed: 'alpha', now: NOW, users: [{ id: 'AAAAAA', preset: 'new-york' }, { id: 'BBBBBB', preset: 'sydney' }] });
    const tuned = createWorld({
      seed: 'alpha',
      now: NOW,
      users: [{ id: 'AAAAAA', preset: 'new-york', notWornRate: 0.6, thinRate: 0.3 }, { id: 'BBBBBB', preset: 'sydney', batteryPercent: 7 }],
    });
    const dates = Array.from({ length: 30 }, (_, i) => new Date(NOW - (i + 1) * 86_400_000).toISOString().slice(0, 10));
    const fullDays = (world: typeof base) => dates.filter((d) => dayTruth(world, world.users[0]!, d, 1).wear === 'full').length;
    expect(fullDays(base)).toBeGreaterThanOrEqual(15);
    expect(fullDays(tuned)).toBeLessThanOrEqual(6);
    const b = tuned.users[1]!;
    syncUser(tuned, b, NOW - 3_600_000);
    expect(viewDevices(tuned, b, NOW).map((d) => d.batteryLevel)).toEqual([7]);
    const { batteryPercent: _, ...device } = b.devices[0]!;
    expect(device).toEqual(base.users[1]!.devices[0]);
    expect(b.traits).toEqual(base.users[1]!.traits);
    expect(() => createWorld({ seed: 'alpha', now: NOW, users: [{ notWornRate: 0.8, thinRate: 0.3 }] })).toThrow('add up to at most 1');
    expect(() => createWorld({ seed: 'alpha', now: NOW, users: [{ batteryPercent: 0 }] })).toThrow('batteryPercent');
  });
});

describe('daySteps', () => {
  it('is the step total viewDay gives (null before a sync or on an unworn day), and leaves the day cache alone', () => {
    const w = createWorld({ seed: 'steps', now: NOW });
    let checked = 0;
    let nulls = 0;
    for (const u of w.users) {
      const sizeBefore = w.cache.size;
      const generatedBefore = w.generated;
      const totals = Array.from({ length: 30 }, (_, i) => daySteps(w, u, `2026-10-${String(i + 1).padStart(2, '0')}`, NOW));
      // Nights may be cached; no day is.
      expect([...w.cache.keys()].filter((k) => k.startsWith(`day|${u.id}|`))).toHaveLength(0);
      expect(w.cache.size - sizeBefore).toBeLessThanOrEqual(31);
      expect(w.generated - generatedBefore).toBeLessThanOrEqual(31);
      for (let i = 0; i < 30; i += 1) {
        const view = viewDay(w, u, `2026-10-${String(i + 1).padStart(2, '0')}`, NOW);
        const expected = !view.day || view.day.wear === 'none' ? null : view.day.steps.reduce((a, b) => a + b, 0);
        expect(totals[i]).toBe(expected);
        if (expected === null) nulls += 1;
        checked += 1;
      }
    }
    expect(checked).toBe(120);
    // A day asked for before anything of it synced has no total.
    const future = daySteps(w, w.users[0]!, '2026-11-20', NOW);
    expect(future).toBeNull();
    expect(nulls).toBeLessThan(120);
  });

  it("forgets a moved user's totals: the days from the move on are other days", () => {
    const w = createWorld({ seed: 'steps', now: NOW });
    const u = w.users[0]!;
    const date = '2026-10-20';
    daySteps(w, u, date, NOW);
    moveUser(w, u, 'Asia/Tokyo', Date.parse('2026-10-19T00:00:00Z'));
    const view = viewDay(w, u, date, NOW);
    expect(daySteps(w, u, date, NOW)).toBe(!view.day || view.day.wear === 'none' ? null : view.day.steps.reduce((a, b) => a + b, 0));
  });
});
