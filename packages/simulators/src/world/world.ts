import { generateDay, type DayTruth } from './day.ts';
import { generateNight, sessionsForNight, type NightTruth, type NightlySummary, type SleepSession } from './sleep.ts';
import { firstSyncAtOrAfter, lastSyncAt, revisionGeneration, type SyncLog } from './sync.ts';
import { createUser, type DeviceTruth, type UserSpec, type WorldUser } from './users.ts';
import { addDays, assertZone, dayBounds, isoDate } from './zones.ts';

/**
 * The deterministic world: users, their device syncs, and generators of truth in absolute time.
 * API simulators render views of it into their own wire formats.
 */
export interface World {
  seed: string;
  users: WorldUser[];
  /** The users by id: a simulator serving ten thousand users looks one up per request. */
  byId: Map<string, WorldUser>;
  syncs: Map<string, SyncLog>;
  /** Default first data date for users created without `since`. */
  defaultSince: string;
  cache: Map<string, DayTruth | NightTruth>;
  /** Days and nights generated (cache misses), for benchmarks to see what the cache saves. */
  generated: number;
  /** Each generated day's total steps, kept after the day leaves the cache (the profile's average). */
  stepTotals: Map<string, number>;
}

/** Options of {@link createWorld}. */
export interface WorldOptions {
  seed?: string;
  /** Initial users; the four presets when omitted. */
  users?: UserSpec[];
  /** The current time, used only to pick the default first data date (60 days earlier). */
  now: number;
  /** Days of history before `now` for users without `since` (default 60). */
  historyDays?: number;
}

/** How long sleep processing takes after the sync that delivered the sleep (`meta.state: pending`). */
export const SLEEP_PROCESSING_MS = 60_000;

/** Delay after sync before nightly metrics appear (fitbit-web-api §3.4: ~15 min, SpO2 up to ~1 h). */
export const NIGHTLY_METRIC_DELAY_MS = {
  hrv: 15 * 60_000,
  breathingRate: 15 * 60_000,
  skinTemp: 15 * 60_000,
  spo2: 60 * 60_000,
} as const;

/**
 * Generated days and nights kept (least recently used first out), about 93 KB per day. A sync
 * asks for the same days once per stream, so the working set is the days of the users being
 * synced at once: a backfill of a week asks for ~17 per user (8 days, 9 nights), and a least-recently-used
 * cache smaller than a cyclic working set misses every time, so 32 per user, up to ~750 MB.
 */
function cacheLimit(world: World): number {
  return Math.min(8_000, Math.max(600, 32 * world.users.length));
}

/** Creates a world; the same seed and users always generate the same data. */
export function createWorld(options: WorldOptions): World {
  const world: World = {
    seed: options.seed ?? 'fitlamp',
    users: [],
    byId: new Map(),
    syncs: new Map(),
    defaultSince: isoDate(options.now - (options.historyDays ?? 60) * 86_400_000),
    cache: new Map(),
    generated: 0,
    stepTotals: new Map(),
  };
  for (const spec of options.users ?? [{ preset: 'new-york' }, { preset: 'traveler' }, { preset: 'sydney' }, { preset: 'kolkata' }]) {
    addUser(world, spec);
  }
  return world;
}

/** Adds a user (ids must be unique) and returns it. */
export function addUser(world: World, spec: UserSpec): WorldUser {
  const user = createUser(world.seed, world.users.length, spec, world.defaultSince);
  if (world.byId.has(user.id)) throw new Error(`user ${user.id} already exists`);
  world.users.push(user);
  world.byId.set(user.id, user);
  world.syncs.set(user.id, { manual: [] });
  return user;
}

/** The user with this id, or undefined. */
export function findUser(world: World, id: string): WorldUser | undefined {
  return world.byId.get(id);
}

/**
 * Moves `user` to `zone` from instant `at` on: a trip booked while a run is under way, so a test
 * can fly someone only after fitlamp has seen where they were. `at` must follow every earlier
 * move; the user's cached days are forgotten, since days from `at` on now fall in another zone.
 */
export function moveUser(world: World, user: WorldUser, zone: string, at: number): void {
  assertZone(zone);
  const last = user.zoneHistory.at(-1);
  if (!Number.isFinite(at) || (last && at <= last.from)) throw new Error(`a move must come after ${last ? new Date(last.from).toISOString() : 'the start'}`);
  user.zoneHistory = [...user.zoneHistory, { from: at, zone }];
  for (const key of [...world.cache.keys()]) if (key.split('|')[1] === user.id) world.cache.delete(key);
  for (const key of [...world.stepTotals.keys()]) if (key.startsWith(`${user.id}|`)) world.stepTotals.delete(key);
}

/** Records a device sync of `user` at instant `at`. */
export function syncUser(world: World, user: WorldUser, at: number): void {
  const log = syncLog(world, user);
  log.manual.push(at);
  log.manual.sort((a, b) => a - b);
}

function syncLog(world: World, user: WorldUser): SyncLog {
  let log = world.syncs.get(user.id);
  if (!log) {
    log = { manual: [] };
    world.syncs.set(user.id, log);
  }
  return log;
}

/** The user's last device sync at or before `now`, or null. */
export function lastSync(world: World, user: WorldUser, now: number): number | null {
  return lastSyncAt(user, syncLog(world, user), now);
}

function cached<T extends DayTruth | NightTruth>(world: World, key: string, make: () => T): T {
  const hit = world.cache.get(key);
  if (hit) {
    world.cache.delete(key);
    world.cache.set(key, hit);
    return hit as T;
  }
  const value = make();
  world.generated += 1;
  world.cache.set(key, value);
  if (world.cache.size > cacheLimit(world)) {
    const oldest = world.cache.keys().next().value;
    if (oldest !== undefined) world.cache.delete(oldest);
  }
  return value;
}

/** The true night ending on `wakeDate` (independent of syncs). */
export function nightTruth(world: World, user: WorldUser, wakeDate: string): NightTruth {
  return cached(world, `night|${user.id}|${wakeDate}`, () => generateNight(world.seed, user, wakeDate));
}

/** The true local day `date` at revision `generation`. */
export function dayTruth(world: World, user: WorldUser, date: string, generation: number): DayTruth {
  return cached(world, `day|${user.id}|${date}|${generation}`, () =>
    generateDay(world.seed, user, date, generation, {
      today: nightTruth(world, user, date),
      tomorrow: nightTruth(world, user, addDays(date, 1)),
    }),
  );
}

/**
 * The total steps of local day `date` as viewed at `now` (the whole day's truth, as `viewDay`
 * gives it), or null when nothing of it has synced or the device was not worn that day. Kept per
 * day and revision, and generated outside the cache when not there: the profile's 30-day average
 * asks for a month of days that the data requests do not, and must not evict theirs.
 */
export function daySteps(world: World, user: WorldUser, date: string, now: number): number | null {
  const bounds = dayBounds(user.zoneHistory, date);
  const log = syncLog(world, user);
  const synced = lastSyncAt(user, log, now);
  if (synced === null || Math.floor((synced - bounds.start) / 60_000) <= 0) return null;
  const generation = revisionGeneration(user, log, bounds, now);
  const key = `${user.id}|${date}|${generation}`;
  let total = world.stepTotals.get(key);
  if (total === undefined) {
    const day =
      (world.cache.get(`day|${user.id}|${date}|${generation}`) as DayTruth | undefined) ??
      generateDay(world.seed, user, date, generation, { today: nightTruth(world, user, date), tomorrow: nightTruth(world, user, addDays(date, 1)) });
    total = day.wear === 'none' ? -1 : day.steps.reduce((s, n) => s + n, 0);
    if (world.stepTotals.size > 200_000) world.stepTotals.clear();
    world.stepTotals.set(key, total);
  }
  return total < 0 ? null : total;
}

/** A local day as an API sees it at `now`: the revision of the latest sync, visible up to that sync. */
export interface DayView {
  date: string;
  start: number;
  end: number;
  generation: number;
  /** Minutes from `start` the device has synced; later minutes are not yet known to the API. */
  visibleMinutes: number;
  /** Whether the whole day has been synced. */
  complete: boolean;
  /** Null when nothing of the day has been synced. */
  day: DayTruth | null;
}

/** The view of local day `date` at `now`. */
export function viewDay(world: World, user: WorldUser, date: string, now: number): DayView {
  const bounds = dayBounds(user.zoneHistory, date);
  const log = syncLog(world, user);
  const synced = lastSyncAt(user, log, now);
  const total = Math.round((bounds.end - bounds.start) / 60_000);
  const visibleMinutes = synced === null ? 0 : Math.max(0, Math.min(total, Math.floor((synced - bounds.start) / 60_000)));
  const generation = revisionGeneration(user, log, bounds, now);
  return {
    date,
    ...bounds,
    generation,
    visibleMinutes,
    complete: visibleMinutes === total,
    day: visibleMinutes > 0 ? dayTruth(world, user, date, generation) : null,
  };
}

/** A sleep session as an API sees it: `pending` while the sleep is still being processed. */
export interface SessionView {
  session: SleepSession;
  state: 'ready' | 'pending';
}

/** The view of the night ending on `wakeDate` at `now`. */
export interface NightView {
  sessions: SessionView[];
  /** Each nightly metric once processed, else null. */
  summary: { [K in keyof NightlySummary]: NightlySummary[K] | null } | null;
}

/** The sleep logs and nightly metrics of the night ending on `wakeDate`, as visible at `now`. */
export function viewNight(world: World, user: WorldUser, wakeDate: string, now: number): NightView {
  const night = nightTruth(world, user, wakeDate);
  const log = syncLog(world, user);
  const generation = revisionGeneration(user, log, dayBounds(user.zoneHistory, wakeDate), now);
  const sessions: SessionView[] = [];
  for (const session of sessionsForNight(world.seed, night, generation)) {
    const deliveredAt = firstSyncAtOrAfter(user, log, session.end, now);
    if (deliveredAt === null) continue;
    sessions.push({ session, state: now >= deliveredAt + SLEEP_PROCESSING_MS ? 'ready' : 'pending' });
  }
  let summary: NightView['summary'] = null;
  const main = night.main;
  const deliveredAt = main ? firstSyncAtOrAfter(user, log, main.end, now) : null;
  if (night.summary && deliveredAt !== null) {
    const ready = (delay: number): boolean => now >= deliveredAt + delay;
    summary = {
      spo2: ready(NIGHTLY_METRIC_DELAY_MS.spo2) ? night.summary.spo2 : null,
      hrv: ready(NIGHTLY_METRIC_DELAY_MS.hrv) ? night.summary.hrv : null,
      breathingRate: ready(NIGHTLY_METRIC_DELAY_MS.breathingRate) ? night.summary.breathingRate : null,
      skinTempRelative: ready(NIGHTLY_METRIC_DELAY_MS.skinTemp) ? night.summary.skinTempRelative : null,
    };
  }
  return { sessions, summary };
}

/** A device's state as of its last sync. */
export interface DeviceView {
  device: DeviceTruth;
  lastSyncAt: number | null;
  /** Percent, as reported at the last sync. */
  batteryLevel: number;
}

/** The user's devices with their last sync and battery at `now`. */
export function viewDevices(world: World, user: WorldUser, now: number): DeviceView[] {
  const synced = lastSync(world, user, now);
  return user.devices.map((device) => {
    if (device.batteryPercent !== undefined) return { device, lastSyncAt: synced, batteryLevel: device.batteryPercent };
    const cycle = device.batteryDays * 86_400_000;
    const at = synced ?? now;
    const phase = (((at - device.batteryPhaseMs) % cycle) + cycle) % cycle;
    return { device, lastSyncAt: synced, batteryLevel: Math.max(1, Math.round(100 - (phase / cycle) * 96)) };
  });
}

/** The first sync of `user` at or after `t` that has happened by `now`, or null. */
export function firstSyncAfter(world: World, user: WorldUser, t: number, now: number): number | null {
  return firstSyncAtOrAfter(user, syncLog(world, user), t, now);
}
