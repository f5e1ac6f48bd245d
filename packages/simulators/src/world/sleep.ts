import { createRng, gaussian, hash32, intBetween, unit } from './random.ts';
import type { WorldUser } from './users.ts';
import { addDays, dayBounds, utcOfLocal, zoneAt } from './zones.ts';

/** Sleep levels: stages for stage-scored sleep, asleep/restless/awake for short ("classic") sleep. */
export type SleepStage = 'wake' | 'light' | 'deep' | 'rem' | 'asleep' | 'restless' | 'awake';

/** A contiguous stretch of one sleep level, [start, end) in epoch ms. */
export interface SleepSegment {
  start: number;
  end: number;
  stage: SleepStage;
}

/** One detected sleep period as the device's algorithm reports it at some revision. */
export interface SleepSession {
  /** Stable for identical (user, start, end); a split or stitch yields new ids. */
  id: number;
  userId: string;
  /** Local date on which the sleep ended (Fitbit's `dateOfSleep`, fitbit-web-api §7.4). */
  wakeDate: string;
  start: number;
  end: number;
  isMain: boolean;
  /** `stages` needs ≥ 3 h of sleep; shorter sleeps are scored classic (fitbit-web-api §3.3). */
  kind: 'stages' | 'classic';
  /** Contiguous, covering [start, end). */
  segments: SleepSegment[];
  /** Brief (≤ 3 min) awakenings inside sleep segments (stages only). */
  shortWakes: Array<{ start: number; end: number }>;
}

/** Nightly physiology measured during the main sleep. */
export interface NightlySummary {
  spo2: { avg: number; min: number; max: number };
  hrv: { dailyRmssd: number; deepRmssd: number };
  breathingRate: number;
  /** Skin temperature relative to the user's baseline, °C. */
  skinTempRelative: number;
}

/** What actually happened in the night ending on `wakeDate`, before any algorithm revisions. */
export interface NightTruth {
  userId: string;
  wakeDate: string;
  main: {
    start: number;
    end: number;
    segments: SleepSegment[];
    shortWakes: Array<{ start: number; end: number }>;
    /** A ~1 h awakening whose detected length flips around Fitbit's 1 h split threshold. */
    fragileWake: { start: number; end: number } | null;
  } | null;
  nap: { start: number; end: number; segments: SleepSegment[] } | null;
  summary: NightlySummary | null;
}

/** How much the device was worn on a local day. */
export type Wear = 'full' | 'thin' | 'none';

const MIN = 60_000;
const HALF = 30_000;

/** The wear pattern of a day: mostly worn, some days barely (thin), some not at all. */
export function wearOn(seed: string, user: WorldUser, date: string): Wear {
  if (date < user.since) return 'none';
  const u = unit(seed, 'wear', user.id, date);
  if (u < user.traits.notWornRate) return 'none';
  if (u < user.traits.notWornRate + user.traits.thinRate) return 'thin';
  return 'full';
}

/** Generates the night that ends on `wakeDate` (null parts when the device was not worn). */
export function generateNight(seed: string, user: WorldUser, wakeDate: string): NightTruth {
  const night: NightTruth = { userId: user.id, wakeDate, main: null, nap: null, summary: null };
  if (wearOn(seed, user, wakeDate) !== 'full') return night;
  const rng = createRng(seed, 'night', user.id, wakeDate);
  const dayStart = dayBounds(user.zoneHistory, wakeDate).start;
  const bedZone = zoneAt(user.zoneHistory, dayStart - 3_600_000);
  const wakeZone = zoneAt(user.zoneHistory, dayStart + 8 * 3_600_000);
  const bedMinute = Math.round(gaussian(rng, user.traits.bedMinute, 20));
  const start = utcOfLocal(bedZone, addDays(wakeDate, -1), bedMinute) + (rng() < 0.5 ? HALF : 0);
  let end = utcOfLocal(wakeZone, wakeDate, Math.round(gaussian(rng, user.traits.wakeMinute, 15)));
  end = Math.max(end, start + 4 * 3_600_000);
  end = start + Math.round((end - start) / HALF) * HALF;

  let fragileWake: { start: number; end: number } | null = null;
  let segments: SleepSegment[];
  if (rng() < user.traits.fragileNightRate) {
    const wStart = start + Math.round(((end - start) * (0.4 + rng() * 0.15)) / HALF) * HALF;
    fragileWake = { start: wStart, end: wStart + 60 * MIN };
    segments = [
      ...stageSegments(rng, start, wStart, true),
      { start: wStart, end: wStart + 60 * MIN, stage: 'wake' },
      ...stageSegments(rng, wStart + 60 * MIN, end, false),
    ];
  } else {
    segments = stageSegments(rng, start, end, true);
  }
  night.main = { start, end, segments, shortWakes: shortWakesIn(rng, segments), fragileWake };

  if (rng() < user.traits.napRate) {
    const napStart = utcOfLocal(wakeZone, wakeDate, intBetween(rng, 13 * 60 + 30, 16 * 60));
    const napEnd = napStart + intBetween(rng, 20, 80) * MIN;
    night.nap = { start: napStart, end: napEnd, segments: classicSegments(rng, napStart, napEnd) };
  }

  const hrvBase = 25 + (hash32(seed, 'hrv', user.id) % 40);
  const spo2 = Math.round(gaussian(rng, 96.2, 0.8) * 10) / 10;
  const rmssd = Math.round(gaussian(rng, hrvBase, 4) * 1000) / 1000;
  night.summary = {
    spo2: { avg: spo2, min: Math.round((spo2 - 1.5 - rng() * 2) * 10) / 10, max: Math.min(100, Math.round((spo2 + 1 + rng() * 1.5) * 10) / 10) },
    hrv: { dailyRmssd: rmssd, deepRmssd: Math.round(rmssd * (0.9 + rng() * 0.2) * 1000) / 1000 },
    breathingRate: Math.round(gaussian(rng, 15.5, 1.2) * 10) / 10,
    skinTempRelative: Math.round(gaussian(rng, 0, 0.35) * 10) / 10,
  };
  return night;
}

// Sleep architecture: ~90 min cycles, deep sleep early in the night, REM late (30-s resolution).
function stageSegments(rng: () => number, start: number, end: number, fallingAsleep: boolean): SleepSegment[] {
  const out: SleepSegment[] = [];
  let t = start;
  const push = (stage: SleepStage, halves: number): void => {
    if (t >= end || halves <= 0) return;
    const e = Math.min(end, t + halves * HALF);
    const last = out[out.length - 1];
    if (last && last.stage === stage) last.end = e;
    else out.push({ start: t, end: e, stage });
    t = e;
  };
  if (fallingAsleep) push('wake', intBetween(rng, 4, 36));
  for (let cycle = 0; t < end; cycle += 1) {
    push('light', intBetween(rng, 30, 70));
    push('deep', cycle < 2 ? intBetween(rng, 36, 80) : cycle < 3 ? intBetween(rng, 10, 36) : intBetween(rng, 0, 12));
    push('light', intBetween(rng, 10, 30));
    push('rem', cycle === 0 ? intBetween(rng, 10, 24) : intBetween(rng, 30, 70));
    if (rng() < 0.35) push('wake', intBetween(rng, 7, 24));
  }
  return out;
}

// Short wakes (≤ 3 min) live inside light sleep; Fitbit reports them in levels.shortData.
function shortWakesIn(rng: () => number, segments: SleepSegment[]): Array<{ start: number; end: number }> {
  const out: Array<{ start: number; end: number }> = [];
  for (const s of segments) {
    if (s.stage !== 'light' || s.end - s.start < 10 * MIN || rng() > 0.45) continue;
    const len = intBetween(rng, 1, 6) * HALF;
    const offset = Math.floor((rng() * (s.end - s.start - len - 2 * MIN)) / HALF) * HALF + MIN;
    out.push({ start: s.start + offset, end: s.start + offset + len });
  }
  return out;
}

function classicSegments(rng: () => number, start: number, end: number): SleepSegment[] {
  const out: SleepSegment[] = [];
  let t = start;
  while (t < end) {
    const r = rng();
    const stage: SleepStage = out.length === 0 ? 'awake' : r < 0.12 ? 'restless' : r < 0.18 ? 'awake' : 'asleep';
    const len = (stage === 'asleep' ? intBetween(rng, 5, 25) : intBetween(rng, 1, 3)) * MIN;
    const e = Math.min(end, t + len);
    const last = out[out.length - 1];
    if (last && last.stage === stage) last.end = e;
    else out.push({ start: t, end: e, stage });
    t = e;
  }
  return out;
}

function logId(seed: string, userId: string, start: number, end: number): number {
  return 30_000_000_000 + (hash32(seed, 'log', userId, start) % 100_000) * 100_000 + (hash32(seed, 'log', userId, end) % 100_000);
}

/**
 * The sleep logs of a night as the algorithm reports them at revision `generation`. A fragile
 * night's awakening is detected as 66 min at odd generations (split into two logs: "wake time
 * greater than 1 hour") and 52 min at even ones (stitched into one), fitbit-web-api §3.3.
 */
export function sessionsForNight(seed: string, night: NightTruth, generation: number): SleepSession[] {
  const sessions: SleepSession[] = [];
  const make = (start: number, end: number, kind: SleepSession['kind'], segments: SleepSegment[], shortWakes: SleepSession['shortWakes']): SleepSession => ({
    id: logId(seed, night.userId, start, end),
    userId: night.userId,
    wakeDate: night.wakeDate,
    start,
    end,
    isMain: false,
    kind,
    segments,
    shortWakes,
  });
  const main = night.main;
  if (main) {
    const fw = main.fragileWake;
    if (fw && generation % 2 === 1) {
      const a = fw.start - 3 * MIN;
      const b = fw.end + 3 * MIN;
      sessions.push(make(main.start, a, 'stages', clip(main.segments, main.start, a), main.shortWakes.filter((w) => w.end <= a)));
      sessions.push(make(b, main.end, 'stages', clip(main.segments, b, main.end), main.shortWakes.filter((w) => w.start >= b)));
    } else if (fw) {
      const segments = main.segments.map((s) => {
        if (s.stage === 'wake' && s.start === fw.start) return { ...s, start: fw.start + 4 * MIN, end: fw.end - 4 * MIN };
        if (s.end === fw.start) return { ...s, end: fw.start + 4 * MIN };
        if (s.start === fw.end) return { ...s, start: fw.end - 4 * MIN };
        return { ...s };
      });
      sessions.push(make(main.start, main.end, 'stages', segments, main.shortWakes));
    } else {
      sessions.push(make(main.start, main.end, 'stages', main.segments.map((s) => ({ ...s })), main.shortWakes));
    }
    const longest = sessions.reduce((a, b) => (b.end - b.start > a.end - a.start ? b : a));
    longest.isMain = true;
  }
  if (night.nap) sessions.push(make(night.nap.start, night.nap.end, 'classic', night.nap.segments.map((s) => ({ ...s })), []));
  return sessions;
}

function clip(segments: SleepSegment[], start: number, end: number): SleepSegment[] {
  return segments
    .filter((s) => s.end > start && s.start < end)
    .map((s) => ({ ...s, start: Math.max(s.start, start), end: Math.min(s.end, end) }));
}

/** The sleep level at instant `t` of the night's true (unrevised) main sleep or nap, if asleep. */
export function stageAt(night: NightTruth, t: number): SleepStage | null {
  for (const part of [night.main, night.nap]) {
    if (!part || t < part.start || t >= part.end) continue;
    for (const s of part.segments) if (t >= s.start && t < s.end) return s.stage;
  }
  return null;
}
