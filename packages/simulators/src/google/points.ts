import { heartRateSeconds, type DayTruth, type ExerciseTruth } from '../world/day.ts';
import { hash32, unit } from '../world/random.ts';
import type { SleepSession, SleepStage } from '../world/sleep.ts';
import type { WorldUser } from '../world/users.ts';
import { firstSyncAfter, viewDay, viewNight, type World } from '../world/world.ts';
import { dayBounds, offsetMs, zoneAt } from '../world/zones.ts';
import type { DataTypeInfo } from './catalogue.ts';
import type { MemberValues } from './filter.ts';
import { civilString, compact, double, duration, int64, int64Always, interval, sampleTime, timestamp } from './wire.ts';

/**
 * Renders the world's truth as Google Health data points. Every value comes from the same
 * generator and the same sync/revision views as the Fitbit simulator (`viewDay`, `viewNight`), so
 * a participant sees the same days through both APIs.
 */

/** What the renderers need about the caller and the moment. */
export interface RenderContext {
  world: World;
  user: WorldUser;
  healthUserId: string;
  now: number;
  /** Include civilStartTime/civilEndTime/civilTime (live samples omit them). */
  civilTimes: boolean;
  /** Whether this user also carries a phone that records steps (a second source in `list`). */
  phone: boolean;
}

/** One data point before JSON rendering. */
export interface Point {
  /** Interval/sample/session start (or the local day's start for daily types): the sort key. */
  order: number;
  /** Tie-breaker among equal `order` (watch before phone). */
  tie: number;
  /** Values of the filter members. */
  values: MemberValues;
  source: 'watch' | 'phone';
  /** Resource name for identifiable types (sleep, exercise). */
  name: string | undefined;
  /** The union member's value. */
  render(): Record<string, unknown>;
}

const MIN = 60_000;

function formFactor(model: string): string {
  return /Charge|Inspire|Luxe|Alta/.test(model) ? 'FITNESS_BAND' : 'WATCH';
}

/** The DataSource of the user's tracker (or the phone) for `list` responses. */
export function dataSource(ctx: RenderContext, source: Point['source'], recordingMethod = 'PASSIVELY_MEASURED'): Record<string, unknown> {
  if (source === 'phone') {
    return { recordingMethod, device: { displayName: 'Pixel 9', formFactor: 'PHONE', manufacturer: 'Google' }, platform: 'HEALTH_CONNECT' };
  }
  const model = ctx.user.devices[0]?.model ?? 'Charge 6';
  return { recordingMethod, device: { displayName: model, formFactor: formFactor(model), manufacturer: model.startsWith('Pixel') ? 'Google' : 'Fitbit' }, platform: 'FITBIT' };
}

interface Minute {
  i: number;
  at: number;
  day: DayTruth;
}

function visibleMinutes(ctx: RenderContext, date: string, fn: (m: Minute) => void): void {
  const view = viewDay(ctx.world, ctx.user, date, ctx.now);
  const day = view.day;
  if (!day) return;
  for (let i = 0; i < view.visibleMinutes; i += 1) fn({ i, at: day.start + i * MIN, day });
}

function intervalValues(ctx: RenderContext, start: number): MemberValues {
  return { 'interval.start_time': start, 'interval.civil_start_time': civilString(ctx.user.zoneHistory, start) };
}

function sampleValues(ctx: RenderContext, t: number): MemberValues {
  return { 'sample_time.physical_time': t, 'sample_time.civil_time': civilString(ctx.user.zoneHistory, t) };
}

/** The phone's step count for a minute, or 0 when the phone was not carried (derived here; the world has no phone). */
function phoneSteps(ctx: RenderContext, at: number, watch: number): number {
  if (watch < 10 || unit(ctx.world.seed, 'phone-carried', ctx.user.id, Math.floor(at / 3_600_000)) > 0.7) return 0;
  return Math.floor(watch * (0.6 + 0.35 * unit(ctx.world.seed, 'phone-steps', ctx.user.id, at)));
}

function stepsPoints(ctx: RenderContext, date: string): Point[] {
  const out: Point[] = [];
  const h = ctx.user.zoneHistory;
  visibleMinutes(ctx, date, ({ i, at, day }) => {
    const steps = day.steps[i] ?? 0;
    if (steps <= 0) return;
    const values = intervalValues(ctx, at);
    const counts: Array<[Point['source'], number]> = [['watch', steps]];
    if (ctx.phone) counts.push(['phone', phoneSteps(ctx, at, steps)]);
    counts.forEach(([source, count], tie) => {
      if (count <= 0) return;
      out.push({ order: at, tie, values, source, name: undefined, render: () => ({ interval: interval(h, at, at + MIN, ctx.civilTimes), count: String(count) }) });
    });
  });
  return out;
}

const AZM_ZONES = ['', 'FAT_BURN', 'CARDIO', 'PEAK'] as const;

function azmPoints(ctx: RenderContext, date: string): Point[] {
  const out: Point[] = [];
  const h = ctx.user.zoneHistory;
  visibleMinutes(ctx, date, ({ i, at, day }) => {
    const zone = day.zone[i] ?? 0;
    if (zone === 0) return;
    // Cardio and peak minutes count double (Fitbit AZM; Discovery `ActiveZoneMinutes`).
    out.push({
      order: at,
      tie: 0,
      values: intervalValues(ctx, at),
      source: 'watch',
      name: undefined,
      render: () => ({ interval: interval(h, at, at + MIN, ctx.civilTimes), heartRateZone: AZM_ZONES[zone], activeZoneMinutes: zone === 1 ? '1' : '2' }),
    });
  });
  return out;
}

/** Heart-rate samples of a day (the same per-second samples the Fitbit simulator serves at `1sec`). */
export function heartRateSamples(ctx: RenderContext, date: string): Array<{ t: number; bpm: number; active: boolean }> {
  const out: Array<{ t: number; bpm: number; active: boolean }> = [];
  visibleMinutes(ctx, date, ({ i, at, day }) => {
    if (day.heartRate[i] === null || day.heartRate[i] === undefined) return;
    const active = (day.steps[i] ?? 0) > 0;
    for (const s of heartRateSeconds(ctx.world.seed, day, i)) out.push({ t: at + s.second * 1000, bpm: s.bpm, active });
  });
  return out;
}

function heartRatePoints(ctx: RenderContext, date: string): Point[] {
  const h = ctx.user.zoneHistory;
  return heartRateSamples(ctx, date).map((s) => ({
    order: s.t,
    tie: 0,
    values: sampleValues(ctx, s.t),
    source: 'watch' as const,
    name: undefined,
    render: () => ({ sampleTime: sampleTime(h, s.t, ctx.civilTimes), beatsPerMinute: String(s.bpm), metadata: { motionContext: s.active ? 'ACTIVE' : 'SEDENTARY', sensorLocation: 'WRIST' } }),
  }));
}

function dailyPoint(ctx: RenderContext, date: string, value: Record<string, unknown>): Point {
  const [year, month, day] = date.split('-').map(Number);
  return {
    order: dayBounds(ctx.user.zoneHistory, date).start,
    tie: 0,
    values: { date },
    source: 'watch',
    name: undefined,
    render: () => ({ date: { year, month, day }, ...value }),
  };
}

function restingPoints(ctx: RenderContext, date: string): Point[] {
  // Resting HR belongs to a whole synced local day, like the Fitbit simulator's.
  const view = viewDay(ctx.world, ctx.user, date, ctx.now);
  const bpm = view.complete ? view.day?.restingHeartRate : null;
  if (bpm === null || bpm === undefined) return [];
  return [dailyPoint(ctx, date, { beatsPerMinute: String(bpm), dailyRestingHeartRateMetadata: { calculationMethod: 'WITH_SLEEP' } })];
}

/** The user's skin-temperature baseline (°C), derived here: the world only knows the nightly deviation. */
export function skinBaseline(seed: string, userId: string): number {
  return Math.round((33.2 + (hash32(seed, 'skin-baseline', userId) % 150) / 100) * 100) / 100;
}

/** Nights whose 30-day baseline is not computable yet: the live API sends `"NaN"` (google-health-api §3.1). */
export function baselineIsNaN(seed: string, userId: string, date: string): boolean {
  return unit(seed, 'skin-baseline-nan', userId, date) < 0.05;
}

function nightlyPoints(ctx: RenderContext, type: string, date: string): Point[] {
  const night = viewNight(ctx.world, ctx.user, date, ctx.now);
  const s = night.summary;
  if (!s) return [];
  switch (type) {
    case 'daily-oxygen-saturation':
      return s.spo2 ? [dailyPoint(ctx, date, { averagePercentage: s.spo2.avg, lowerBoundPercentage: s.spo2.min, upperBoundPercentage: s.spo2.max })] : [];
    case 'daily-heart-rate-variability':
      return s.hrv ? [dailyPoint(ctx, date, { averageHeartRateVariabilityMilliseconds: s.hrv.dailyRmssd, deepSleepRootMeanSquareOfSuccessiveDifferencesMilliseconds: s.hrv.deepRmssd })] : [];
    case 'daily-respiratory-rate':
      return s.breathingRate === null ? [] : [dailyPoint(ctx, date, { breathsPerMinute: s.breathingRate })];
    case 'daily-sleep-temperature-derivations': {
      if (s.skinTempRelative === null) return [];
      const base = skinBaseline(ctx.world.seed, ctx.user.id);
      const nan = baselineIsNaN(ctx.world.seed, ctx.user.id, date);
      return [
        dailyPoint(ctx, date, {
          nightlyTemperatureCelsius: Math.round((base + s.skinTempRelative) * 100) / 100,
          baselineTemperatureCelsius: nan ? double(Number.NaN) : base,
          ...(nan ? {} : { relativeNightlyStddev30dCelsius: 0.1 + (hash32(ctx.world.seed, 'skin-sd', ctx.user.id) % 20) / 100 }),
        }),
      ];
    }
    case 'respiratory-rate-sleep-summary': {
      const main = night.sessions.find((v) => v.session.isMain)?.session;
      if (s.breathingRate === null || !main) return [];
      const h = ctx.user.zoneHistory;
      return [
        {
          order: main.end,
          tie: 0,
          values: sampleValues(ctx, main.end),
          source: 'watch',
          name: undefined,
          render: () => ({ sampleTime: sampleTime(h, main.end, ctx.civilTimes), fullSleepStats: { breathsPerMinute: s.breathingRate } }),
        },
      ];
    }
    default:
      return [];
  }
}

const STAGE: Record<SleepStage, string> = { wake: 'AWAKE', light: 'LIGHT', deep: 'DEEP', rem: 'REM', asleep: 'ASLEEP', restless: 'RESTLESS', awake: 'AWAKE' };

/** Contiguous stages with short (≤ 3 min) wakes spliced in as AWAKE: Google's stages do not overlap. */
export function sleepStages(session: SleepSession): Array<{ start: number; end: number; type: string }> {
  const out: Array<{ start: number; end: number; type: string }> = [];
  const push = (start: number, end: number, type: string): void => {
    if (end <= start) return;
    const last = out[out.length - 1];
    if (last && last.type === type && last.end === start) last.end = end;
    else out.push({ start, end, type });
  };
  for (const seg of session.segments) {
    let t = seg.start;
    for (const w of session.shortWakes) {
      if (w.start < seg.start || w.end > seg.end) continue;
      push(t, w.start, STAGE[seg.stage]);
      push(w.start, w.end, 'AWAKE');
      t = w.end;
    }
    push(t, seg.end, STAGE[seg.stage]);
  }
  return out;
}

function renderSleep(ctx: RenderContext, session: SleepSession, ready: boolean): Record<string, unknown> {
  const h = ctx.user.zoneHistory;
  const delivered = firstSyncAfter(ctx.world, ctx.user, session.end, ctx.now) ?? session.end;
  const base: Record<string, unknown> = {
    interval: interval(h, session.start, session.end, ctx.civilTimes),
    type: session.kind === 'stages' ? 'STAGES' : 'CLASSIC',
  };
  if (!ready) {
    // Still processing: `processed` is false, so proto3 leaves it out; no stages or summary yet.
    return { ...base, metadata: compact({ nap: session.kind === 'classic' }), createTime: timestamp(delivered), updateTime: timestamp(delivered) };
  }
  const stages = sleepStages(session);
  const byType = new Map<string, { ms: number; count: number }>();
  for (const s of stages) {
    const e = byType.get(s.type) ?? { ms: 0, count: 0 };
    e.ms += s.end - s.start;
    e.count += 1;
    byType.set(s.type, e);
  }
  const minutes = (type: string): number => Math.round((byType.get(type)?.ms ?? 0) / MIN);
  const inPeriod = Math.round((session.end - session.start) / MIN);
  const awake = minutes('AWAKE');
  const first = stages[0];
  const processedAt = delivered + 60_000;
  return {
    ...base,
    stages: stages.map((s) => ({ startTime: timestamp(s.start), startUtcOffset: duration(offsetAt(ctx, s.start)), endTime: timestamp(s.end), endUtcOffset: duration(offsetAt(ctx, s.end)), type: s.type })),
    metadata: compact({
      processed: true,
      nap: session.kind === 'classic',
      stagesStatus: session.kind === 'stages' ? 'SUCCEEDED' : 'REJECTED_NAP',
      externalId: String(session.id),
    }),
    summary: {
      minutesInSleepPeriod: int64Always(inPeriod),
      minutesAfterWakeUp: '0',
      minutesToFallAsleep: int64Always(session.kind === 'classic' && first?.type === 'AWAKE' ? Math.round((first.end - first.start) / MIN) : 0),
      minutesAsleep: int64Always(inPeriod - awake - minutes('RESTLESS')),
      minutesAwake: int64Always(awake),
      stagesSummary: [...byType.entries()].map(([type, e]) => ({ type, minutes: int64Always(Math.round(e.ms / MIN)), count: int64Always(e.count) })),
    },
    createTime: timestamp(delivered),
    updateTime: timestamp(processedAt),
  };
}

function offsetAt(ctx: RenderContext, t: number): number {
  return offsetMs(zoneAt(ctx.user.zoneHistory, t), t);
}

function sleepPoints(ctx: RenderContext, wakeDate: string): Point[] {
  return viewNight(ctx.world, ctx.user, wakeDate, ctx.now).sessions.map(({ session, state }) => ({
    order: session.start,
    tie: 0,
    values: { 'interval.end_time': session.end, 'interval.civil_end_time': civilString(ctx.user.zoneHistory, session.end) },
    source: 'watch' as const,
    name: `users/${ctx.healthUserId}/dataTypes/sleep/dataPoints/${session.id}`,
    render: () => renderSleep(ctx, session, state === 'ready'),
  }));
}

function renderExercise(ctx: RenderContext, e: ExerciseTruth): Record<string, unknown> {
  const h = ctx.user.zoneHistory;
  const synced = firstSyncAfter(ctx.world, ctx.user, e.end, ctx.now) ?? e.end;
  const durationMs = e.end - e.start;
  const distanceMm = Math.round(e.distanceKm * 1_000_000);
  const azm = e.minutesByZone[1] + 2 * e.minutesByZone[2] + 2 * e.minutesByZone[3];
  return {
    interval: interval(h, e.start, e.end, ctx.civilTimes),
    exerciseType: e.kind === 'run' ? 'RUNNING' : 'WALKING',
    displayName: e.kind === 'run' ? 'Run' : 'Walk',
    metricsSummary: compact({
      caloriesKcal: double(e.calories),
      distanceMillimeters: double(distanceMm),
      steps: int64(e.steps),
      averageHeartRateBeatsPerMinute: int64(e.averageHeartRate),
      averagePaceSecondsPerMeter: distanceMm > 0 ? durationMs / distanceMm : undefined,
      activeZoneMinutes: int64(azm),
    }),
    exerciseMetadata: {},
    activeDuration: duration(durationMs),
    exerciseEvents: [
      { eventTime: timestamp(e.start), eventUtcOffset: duration(offsetAt(ctx, e.start)), exerciseEventType: 'START' },
      { eventTime: timestamp(e.end), eventUtcOffset: duration(offsetAt(ctx, e.end)), exerciseEventType: 'STOP' },
    ],
    createTime: timestamp(synced),
    updateTime: timestamp(synced),
  };
}

function exercisePoints(ctx: RenderContext, date: string): Point[] {
  const view = viewDay(ctx.world, ctx.user, date, ctx.now);
  if (!view.day) return [];
  const syncedUpTo = view.start + view.visibleMinutes * MIN;
  return view.day.exercises
    .filter((e) => e.end <= syncedUpTo)
    .map((e) => ({
      order: e.start,
      tie: 0,
      values: { 'interval.civil_start_time': civilString(ctx.user.zoneHistory, e.start) },
      source: 'watch' as const,
      name: `users/${ctx.healthUserId}/dataTypes/exercise/dataPoints/${e.id}`,
      render: () => renderExercise(ctx, e),
    }));
}

/**
 * The points of one date bucket: the local day for minute/sample/exercise types, the wake date for
 * sleep and the nightly types (Fitbit's `dateOfSleep`).
 */
export function pointsForDate(ctx: RenderContext, type: DataTypeInfo, date: string): Point[] {
  if (date < ctx.user.since) return [];
  switch (type.path) {
    case 'steps':
      return stepsPoints(ctx, date);
    case 'active-zone-minutes':
      return azmPoints(ctx, date);
    case 'heart-rate':
      return heartRatePoints(ctx, date);
    case 'daily-resting-heart-rate':
      return restingPoints(ctx, date);
    case 'sleep':
      return sleepPoints(ctx, date);
    case 'exercise':
      return exercisePoints(ctx, date);
    default:
      return nightlyPoints(ctx, type.path, date);
  }
}

/** Whether a type's buckets are disjoint in time, so a scan may stop early once a page is full. */
export function bucketsAreDisjoint(type: DataTypeInfo): boolean {
  return type.path === 'steps' || type.path === 'heart-rate' || type.path === 'active-zone-minutes';
}
