import { createRng, gaussian, hash32, hashPrefix, hashWith, intBetween, unit, unitWith } from './random.ts';
import { generateNight, stageAt, wearOn, type NightTruth, type SleepStage, type Wear } from './sleep.ts';
import type { WorldUser } from './users.ts';
import { addDays, dayBounds, offsetMs, zoneAt } from './zones.ts';

/** What the user was doing in a minute. */
export type MinuteState = 'off' | 'sleep' | 'awake';

/** Heart-rate zone of a minute: 0 below fat burn, 1 fat burn, 2 cardio, 3 peak. */
export type HrZone = 0 | 1 | 2 | 3;

/** A recorded exercise (auto-detected walk ≥ 15 min, or a run). */
export interface ExerciseTruth {
  id: number;
  kind: 'walk' | 'run';
  start: number;
  end: number;
  steps: number;
  calories: number;
  distanceKm: number;
  averageHeartRate: number;
  /** Minutes per intensity while exercising. */
  minutesByZone: [number, number, number, number];
}

/**
 * One local day of truth at one revision: per-minute arrays indexed from `start` (UTC minutes;
 * a DST or travel day has more or fewer than 1440 of them).
 */
export interface DayTruth {
  userId: string;
  date: string;
  start: number;
  end: number;
  generation: number;
  wear: Wear;
  state: MinuteState[];
  steps: number[];
  /** Beats per minute, null when not worn. */
  heartRate: Array<number | null>;
  /** Total energy expenditure per minute (BMR included), kcal. */
  calories: number[];
  /** Basal share of `calories`, kcal. */
  caloriesBmr: number[];
  distanceKm: number[];
  floors: number[];
  zone: HrZone[];
  /** Null on days with too little heart-rate data (fitbit-web-api §3.3). */
  restingHeartRate: number | null;
  exercises: ExerciseTruth[];
}

/** Lower bounds (bpm) of the fat-burn, cardio and peak zones, from heart-rate reserve. */
export function heartRateZones(user: WorldUser): { fatBurn: number; cardio: number; peak: number } {
  const { restingHr, maxHr } = user.traits;
  const reserve = maxHr - restingHr;
  return {
    fatBurn: Math.round(restingHr + 0.4 * reserve),
    cardio: Math.round(restingHr + 0.6 * reserve),
    peak: Math.round(restingHr + 0.85 * reserve),
  };
}

const MIN = 60_000;
const DAY_MS = 86_400_000;

/** Basal energy expenditure per minute (Mifflin-St Jeor), kcal; burnt whether or not the device is worn. */
export function basalKcalPerMinute(user: WorldUser): number {
  const t = user.traits;
  return Math.round(((10 * t.weightKg + 6.25 * t.heightCm - 5 * t.age + (t.gender === 'MALE' ? 5 : -161)) / 1440) * 1000) / 1000;
}

interface Bout {
  from: number;
  to: number;
  cadence: number;
  kind: 'walk' | 'run';
}

/**
 * Generates the local day `date` at revision `generation`. The base day is a pure function of
 * (seed, user, date); each generation perturbs a few minute values (a later sync recomputing the
 * day, fitbit-web-api §7.3), deterministically.
 */
export function generateDay(seed: string, user: WorldUser, date: string, generation: number, nights?: { today: NightTruth; tomorrow: NightTruth }): DayTruth {
  const { start, end } = dayBounds(user.zoneHistory, date);
  const n = Math.round((end - start) / MIN);
  const wear = wearOn(seed, user, date);
  const today = nights?.today ?? generateNight(seed, user, date);
  const tomorrow = nights?.tomorrow ?? generateNight(seed, user, addDays(date, 1));
  const rng = createRng(seed, 'day', user.id, date);
  const t = user.traits;
  const rhrToday = Math.round(gaussian(rng, t.restingHr, 1.5));
  const zones = heartRateZones(user);

  // Awake window in minutes from the day's start; bouts happen inside it.
  const wakeIdx = today.main ? Math.max(0, Math.ceil((today.main.end - start) / MIN)) : 7 * 60;
  const bedIdx = tomorrow.main ? Math.min(n, Math.floor((tomorrow.main.start - start) / MIN)) : Math.min(n, 23 * 60);
  const thinFrom = 13 * 60 + intBetween(rng, 0, 60);
  const thinTo = thinFrom + intBetween(rng, 90, 200);
  const bouts: Bout[] = [];
  const boutCount = Math.round(3 + 6 * t.activity * rng());
  for (let i = 0; i < boutCount && bedIdx - wakeIdx > 120; i += 1) {
    const from = intBetween(rng, wakeIdx + 30, bedIdx - 60);
    const len = rng() < 0.25 ? intBetween(rng, 15, 40) : intBetween(rng, 3, 14);
    bouts.push({ from, to: from + len, cadence: intBetween(rng, 88, 118), kind: 'walk' });
  }
  if (rng() < t.runRate) {
    const from = Math.min(bedIdx - 60, Math.max(wakeIdx + 30, intBetween(rng, 17 * 60, 19 * 60)));
    bouts.push({ from, to: from + intBetween(rng, 20, 45), cadence: intBetween(rng, 150, 172), kind: 'run' });
  }
  bouts.sort((a, b) => a.from - b.from);

  const bmrPerMinute = basalKcalPerMinute(user);
  const day: DayTruth = {
    userId: user.id,
    date,
    start,
    end,
    generation,
    wear,
    state: new Array<MinuteState>(n),
    steps: new Array<number>(n).fill(0),
    heartRate: new Array<number | null>(n).fill(null),
    calories: new Array<number>(n),
    caloriesBmr: new Array<number>(n).fill(bmrPerMinute),
    distanceKm: new Array<number>(n).fill(0),
    floors: new Array<number>(n).fill(0),
    zone: new Array<HrZone>(n).fill(0),
    restingHeartRate: null,
    exercises: [],
  };

  // Each minute's values hash (seed, purpose, user, minute): the shared prefixes are hashed once.
  const hrKey = hashPrefix(seed, 'hr', user.id);
  const cadKey = hashPrefix(seed, 'cad', user.id);
  const fidgetKey = hashPrefix(seed, 'fidget', user.id);
  const fidgetNKey = hashPrefix(seed, 'fidget-n', user.id);
  const floorKey = hashPrefix(seed, 'floor', user.id);
  let boutIdx = 0;
  for (let i = 0; i < n; i += 1) {
    const at = start + i * MIN;
    const stage: SleepStage | null = stageAt(today, at) ?? stageAt(tomorrow, at);
    const worn =
      wear === 'full' ? !(i >= bedIdx && !tomorrow.main) : wear === 'thin' ? i >= thinFrom && i < thinTo : false;
    if (!worn) {
      day.state[i] = 'off';
      continue;
    }
    if (stage) {
      day.state[i] = 'sleep';
      const delta = stage === 'deep' ? -6 : stage === 'light' || stage === 'asleep' ? -3 : stage === 'rem' ? 1 : 7;
      day.heartRate[i] = rhrToday + delta + (hashWith(hrKey, at) % 5) - 2;
      continue;
    }
    day.state[i] = 'awake';
    while (boutIdx < bouts.length && (bouts[boutIdx]?.to ?? 0) <= i) boutIdx += 1;
    const bout = bouts[boutIdx];
    const inBout = bout !== undefined && i >= bout.from && i < bout.to;
    // The local hour and minute (minutes are whole in every zone's offset), as hour + minute / 60.
    const minuteOfDay = Math.floor((((at + offsetMs(zoneAt(user.zoneHistory, at), at)) % DAY_MS) + DAY_MS) % DAY_MS / MIN);
    const hour = Math.floor(minuteOfDay / 60) + (minuteOfDay % 60) / 60;
    const circadian = 5 * Math.cos((2 * Math.PI * (hour - 15)) / 24);
    const noise = (hashWith(hrKey, at) % 7) - 3;
    let steps = 0;
    if (inBout) steps = Math.max(0, bout.cadence + (hashWith(cadKey, at) % 11) - 5);
    else if (unitWith(fidgetKey, at) < 0.25) steps = 1 + (hashWith(fidgetNKey, at) % 24);
    const effort = inBout ? (bout.kind === 'run' ? 0.55 : 0.3) * (user.traits.maxHr - rhrToday) : steps * 0.15;
    day.steps[i] = steps;
    day.heartRate[i] = Math.round(rhrToday + 14 + circadian + noise + effort);
    if (inBout && bout.kind === 'walk' && unitWith(floorKey, at) < 0.04) day.floors[i] = 1;
  }

  reviseMinutes(seed, day, generation);

  for (let i = 0; i < n; i += 1) {
    const hr = day.heartRate[i];
    const steps = day.steps[i] ?? 0;
    day.zone[i] = hr === null || hr === undefined ? 0 : hr >= zones.peak ? 3 : hr >= zones.cardio ? 2 : hr >= zones.fatBurn ? 1 : 0;
    const running = steps >= 140;
    day.distanceKm[i] = Math.round(((steps * t.strideCm * (running ? 1.35 : 1)) / 100_000) * 100_000) / 100_000;
    day.calories[i] = Math.round((bmrPerMinute + steps * t.weightKg * (running ? 0.0011 : 0.0006)) * 1000) / 1000;
  }

  const sleptHr = day.heartRate.filter((v, i) => v !== null && day.state[i] === 'sleep').length;
  if (wear === 'full' && sleptHr > 120) {
    day.restingHeartRate = rhrToday + (unit(seed, 'rhr-rev', user.id, date, generation) < 0.3 ? (generation % 2 === 0 ? 1 : -1) : 0);
  }

  for (const bout of bouts) {
    if (bout.kind === 'walk' && bout.to - bout.from < 15) continue;
    const idx = Array.from({ length: Math.min(n, bout.to) - bout.from }, (_, k) => bout.from + k).filter((i) => day.state[i] === 'awake');
    if (idx.length < 10) continue;
    const hrs = idx.map((i) => day.heartRate[i] ?? 0);
    const byZone: [number, number, number, number] = [0, 0, 0, 0];
    for (const i of idx) byZone[day.zone[i] ?? 0] += 1;
    day.exercises.push({
      id: 40_000_000_000 + (hash32(seed, 'exercise', user.id, date, bout.from) % 10_000_000) * 1000 + (bout.from % 1000),
      kind: bout.kind,
      start: start + bout.from * MIN,
      end: start + bout.to * MIN,
      steps: idx.reduce((s, i) => s + (day.steps[i] ?? 0), 0),
      calories: Math.round(idx.reduce((s, i) => s + (day.calories[i] ?? 0), 0)),
      distanceKm: Math.round(idx.reduce((s, i) => s + (day.distanceKm[i] ?? 0), 0) * 1000) / 1000,
      averageHeartRate: Math.round(hrs.reduce((s, v) => s + v, 0) / hrs.length),
      minutesByZone: byZone,
    });
  }
  return day;
}

// A recomputation nudges ~5% of step minutes by ±1–2 and ~4% of heart-rate minutes by ±1.
function reviseMinutes(seed: string, day: DayTruth, generation: number): void {
  const stepsKey = hashPrefix(seed, 'rev-steps', day.userId, day.date, generation);
  const stepsDeltaKey = hashPrefix(seed, 'rev-steps-d', day.userId, day.date, generation);
  const hrKey = hashPrefix(seed, 'rev-hr', day.userId, day.date, generation);
  const hrDeltaKey = hashPrefix(seed, 'rev-hr-d', day.userId, day.date, generation);
  for (let i = 0; i < day.steps.length; i += 1) {
    const steps = day.steps[i] ?? 0;
    if (steps > 0 && unitWith(stepsKey, i) < 0.05) {
      const d = (hashWith(stepsDeltaKey, i) % 4) - 2;
      day.steps[i] = Math.max(0, steps + (d >= 0 ? d + 1 : d));
    }
    const hr = day.heartRate[i];
    if (hr !== null && hr !== undefined && unitWith(hrKey, i) < 0.04) {
      day.heartRate[i] = hr + (hashWith(hrDeltaKey, i) % 2 === 0 ? 1 : -1);
    }
  }
}

/**
 * Heart-rate samples within minute `index` of a day: every second during exercise, otherwise
 * every 5–15 s ("1sec may not always return data in 1 second sampling outside of a recorded
 * exercise", fitbit-web-api §3.2). Each sample is within ±1 bpm of the minute's value.
 */
export function heartRateSeconds(seed: string, day: DayTruth, index: number): Array<{ second: number; bpm: number }> {
  const bpm = day.heartRate[index];
  if (bpm === null || bpm === undefined) return [];
  const at = day.start + index * MIN;
  const exercising = day.exercises.some((e) => at >= e.start && at < e.end);
  const out: Array<{ second: number; bpm: number }> = [];
  const secKey = hashPrefix(seed, 'sec', day.userId, at);
  const gapKey = hashPrefix(seed, 'gap', day.userId, at);
  for (let s = hash32(seed, 'sec0', day.userId, at) % 5; s < 60; ) {
    out.push({ second: s, bpm: bpm + (hashWith(secKey, s) % 3) - 1 });
    s += exercising ? 1 : 5 + (hashWith(gapKey, s) % 11);
  }
  return out;
}
