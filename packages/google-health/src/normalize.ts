import { LAMP_SENSORS, deviceRecords, localDayAt, localDayBounds, type DeviceState, type NormalizedRecord, type ZoneHistory } from '@fitlamp/provider';
import { civilDate, dateString, durationMs, intOrZero, isObject, num, objectAt, stringAt, timestampMs, type Json } from './proto-json.ts';

/** Reverse-DNS `source` on every event fitlamp writes from the Google Health API. */
export const GOOGLE_SOURCE = 'com.google.health';

/** The mindLAMP sensor of each stream (shared by every provider). */
export const SENSORS = LAMP_SENSORS;

const MINUTE = 60_000;

function dropUndefined(data: Record<string, unknown>): Record<string, unknown> {
  for (const [k, v] of Object.entries(data)) if (v === undefined) delete data[k];
  return data;
}

/**
 * Steps (`steps` interval points, count an int64 string) as one `lamp.steps` delta per minute,
 * stamped at the minute's start like the legacy intraday series. Points are bucketed by the
 * minute their interval starts in and summed (reconcile answers one point per minute; a longer
 * interval lands whole on its first minute rather than being split into fractions). Zero minutes
 * are skipped, as the legacy provider skips them. The day is the participant's local day at the
 * minute, through the zone history, which is also how the request's range was drawn.
 */
export function normalizeSteps(days: readonly string[], points: readonly unknown[], zones: ZoneHistory): NormalizedRecord[] {
  const wanted = new Set(days);
  const byMinute = new Map<number, number>();
  for (const p of points) {
    const steps = objectAt(p, 'steps');
    const start = timestampMs(objectAt(steps, 'interval')?.startTime);
    const count = intOrZero(steps?.count);
    if (start === undefined || count === undefined || count <= 0) continue;
    const minute = Math.floor(start / MINUTE) * MINUTE;
    byMinute.set(minute, (byMinute.get(minute) ?? 0) + count);
  }
  const out: NormalizedRecord[] = [];
  for (const [minute, value] of [...byMinute].sort((a, b) => a[0] - b[0])) {
    const day = localDayAt(zones, minute);
    if (!wanted.has(day)) continue;
    out.push({
      stream: 'steps',
      day,
      event: { timestamp: minute, sensor: SENSORS.steps, data: { value, unit: 'count', type: 'step_count', source: GOOGLE_SOURCE } },
      distinct: '',
    });
  }
  return out;
}

/**
 * Heart-rate samples (`heartRate.beatsPerMinute`, int64 string, at `sampleTime.physicalTime`) as
 * one `lamp.heart_rate` event per minute at the minute's start: the mean of the minute's samples,
 * rounded to a whole bpm. That is the legacy API's 1-minute intraday detail, which the Fitbit
 * provider syncs, so the same minute gets the same key through either API. Non-positive samples
 * are not readings and are skipped.
 */
export function normalizeHeartRate(days: readonly string[], points: readonly unknown[], zones: ZoneHistory): NormalizedRecord[] {
  const wanted = new Set(days);
  const byMinute = new Map<number, { sum: number; n: number }>();
  for (const p of points) {
    const hr = objectAt(p, 'heartRate');
    const at = timestampMs(objectAt(hr, 'sampleTime')?.physicalTime);
    const bpm = num(hr?.beatsPerMinute);
    if (at === undefined || bpm === undefined || bpm <= 0) continue;
    const minute = Math.floor(at / MINUTE) * MINUTE;
    const acc = byMinute.get(minute) ?? { sum: 0, n: 0 };
    acc.sum += bpm;
    acc.n += 1;
    byMinute.set(minute, acc);
  }
  const out: NormalizedRecord[] = [];
  for (const [minute, { sum, n }] of [...byMinute].sort((a, b) => a[0] - b[0])) {
    const day = localDayAt(zones, minute);
    if (!wanted.has(day)) continue;
    out.push({
      stream: 'heart_rate',
      day,
      event: { timestamp: minute, sensor: SENSORS.heart_rate, data: { value: Math.round(sum / n), unit: 'bpm', source: GOOGLE_SOURCE } },
      distinct: '',
    });
  }
  return out;
}

export type DailyStream = 'resting_heart_rate' | 'spo2' | 'hrv' | 'breathing_rate' | 'skin_temperature';

/** Fields are rounded to 6 decimals where fitlamp computes them, so float noise never reaches mindLAMP. */
function round6(n: number): number {
  return Math.round(n * 1e6) / 1e6;
}

/**
 * The daily data type of each daily stream (google-health-api §3.6, migration table), its union
 * member, and how a point becomes `data` (undefined: no datum that day). Field meanings follow
 * the legacy series the Fitbit provider reads, so `data` matches field for field.
 */
export const DAILY: Record<DailyStream, { type: string; member: string; pick: (v: Json) => Record<string, unknown> | undefined }> = {
  resting_heart_rate: {
    type: 'daily-resting-heart-rate',
    member: 'dailyRestingHeartRate',
    pick: (v) => {
      const value = num(v.beatsPerMinute);
      return value && value > 0 ? { value, unit: 'bpm', source: GOOGLE_SOURCE } : undefined;
    },
  },
  // Percent 0–100 like the legacy `avg/min/max`; the lower/upper bounds are the night's range.
  spo2: {
    type: 'daily-oxygen-saturation',
    member: 'dailyOxygenSaturation',
    pick: (v) => {
      const value = num(v.averagePercentage);
      if (value === undefined) return undefined;
      return { value, unit: '%', min: num(v.lowerBoundPercentage), max: num(v.upperBoundPercentage), source: GOOGLE_SOURCE };
    },
  },
  // RMSSD (the discovery doc says so), never SDNN: the legacy `dailyRmssd`/`deepRmssd`.
  hrv: {
    type: 'daily-heart-rate-variability',
    member: 'dailyHeartRateVariability',
    pick: (v) => {
      const value = num(v.averageHeartRateVariabilityMilliseconds);
      if (value === undefined) return undefined;
      return { value, unit: 'ms', deep_rmssd: num(v.deepSleepRootMeanSquareOfSuccessiveDifferencesMilliseconds), source: GOOGLE_SOURCE };
    },
  },
  breathing_rate: {
    type: 'daily-respiratory-rate',
    member: 'dailyRespiratoryRate',
    pick: (v) => {
      const value = num(v.breathsPerMinute);
      return value === undefined ? undefined : { value, unit: 'breaths/min', source: GOOGLE_SOURCE };
    },
  },
  // The legacy series reports the night's deviation from baseline (`nightlyRelative`); Google
  // reports both temperatures, so the deviation is nightly − baseline. A `"NaN"` baseline (seen
  // live, google-health-api §3.1) leaves no deviation to report: no datum that day.
  skin_temperature: {
    type: 'daily-sleep-temperature-derivations',
    member: 'dailySleepTemperatureDerivations',
    pick: (v) => {
      const nightly = num(v.nightlyTemperatureCelsius);
      const baseline = num(v.baselineTemperatureCelsius);
      if (nightly === undefined || baseline === undefined) return undefined;
      return { value: round6(nightly - baseline), unit: '°C', source: GOOGLE_SOURCE };
    },
  },
};

/**
 * Daily points (`date` in the participant's zone) as one event per day, stamped at the start of
 * that local day like the legacy daily series. Days not asked for are dropped; a second point
 * for the same day (another source) is ignored so a record key is never produced twice.
 */
export function normalizeDaily(stream: DailyStream, days: readonly string[], points: readonly unknown[], zones: ZoneHistory): NormalizedRecord[] {
  const spec = DAILY[stream];
  const wanted = new Set(days);
  const seen = new Set<string>();
  const out: NormalizedRecord[] = [];
  for (const p of points) {
    const v = objectAt(p, spec.member);
    const day = dateString(v?.date);
    if (!v || !day || !wanted.has(day) || seen.has(day)) continue;
    const data = spec.pick(v);
    if (!data) continue;
    seen.add(day);
    out.push({ stream, day, event: { timestamp: localDayBounds(day, zones).start, sensor: SENSORS[stream], data: dropUndefined(data) }, distinct: '' });
  }
  return out;
}

/** The civil day a `dailyRollUp` window starts on. */
function rollupDay(p: unknown): string | undefined {
  return dateString(objectAt(objectAt(p, 'civilStartTime'), 'date'));
}

/**
 * `dailyRollUp` of `steps` (`countSum`, int64 string) as one delta per local day spanning the
 * day, with `distinct: 'day'` to keep it apart from the 00:00 minute: the legacy daily fallback
 * exactly. Zero days are skipped.
 */
export function normalizeDailySteps(days: readonly string[], rollups: readonly unknown[], zones: ZoneHistory): NormalizedRecord[] {
  const wanted = new Set(days);
  const out: NormalizedRecord[] = [];
  for (const p of rollups) {
    const day = rollupDay(p);
    const value = intOrZero(objectAt(p, 'steps')?.countSum);
    if (!day || !wanted.has(day) || !value || value <= 0) continue;
    const { start, end } = localDayBounds(day, zones);
    out.push({
      stream: 'steps',
      day,
      event: { timestamp: start, sensor: SENSORS.steps, data: { value, unit: 'count', type: 'step_count', source: GOOGLE_SOURCE }, duration: end - start },
      distinct: 'day',
    });
  }
  return out;
}

/**
 * `dailyRollUp` of `active-zone-minutes` as the day's AZM at the start of the local day. The
 * per-zone sums already count cardio and peak minutes double (`ActiveZoneMinutes` description),
 * like the legacy `fatBurn/cardio/peakActiveZoneMinutes`, so the total is their sum. Days
 * without AZM are skipped.
 */
export function normalizeActiveZoneMinutes(days: readonly string[], rollups: readonly unknown[], zones: ZoneHistory): NormalizedRecord[] {
  const wanted = new Set(days);
  const out: NormalizedRecord[] = [];
  for (const p of rollups) {
    const day = rollupDay(p);
    const azm = objectAt(p, 'activeZoneMinutes');
    if (!day || !wanted.has(day) || !azm) continue;
    const fatBurn = intOrZero(azm.sumInFatBurnHeartZone) ?? 0;
    const cardio = intOrZero(azm.sumInCardioHeartZone) ?? 0;
    const peak = intOrZero(azm.sumInPeakHeartZone) ?? 0;
    const value = fatBurn + cardio + peak;
    if (value <= 0) continue;
    out.push({
      stream: 'active_zone_minutes',
      day,
      event: {
        timestamp: localDayBounds(day, zones).start,
        sensor: SENSORS.active_zone_minutes,
        data: { value, unit: 'min', fat_burn: fatBurn, cardio, peak, source: GOOGLE_SOURCE },
      },
      distinct: '',
    });
  }
  return out;
}

/**
 * A session's local day at one end: the civil date Google gives (`civilStartTime`/`civilEndTime`,
 * often omitted, §3.7), else the instant plus the offset recorded with it, else the zone history.
 */
export function sessionDay(interval: Json | undefined, end: 'start' | 'end', zones: ZoneHistory): string | undefined {
  const instant = timestampMs(interval?.[`${end}Time`]);
  if (instant === undefined) return undefined;
  const civil = end === 'start' ? interval?.civilStartTime : interval?.civilEndTime;
  return dateString(objectAt(civil, 'date')) ?? civilDate(instant, interval?.[`${end}UtcOffset`]) ?? localDayAt(zones, instant);
}

/**
 * Exercise sessions as `lamp.segment` events stamped at their end, with `duration` in seconds as
 * iOS sends it and `type` the lower-cased display name ("Walk" → "walk", the legacy
 * `activityName`). The day is the local date the session started on, like the legacy
 * `startTime`'s date (and the `civil_start_time` filter that selected it). `distinct` is empty:
 * the end instant identifies a participant's workout, and the data point id cannot match the
 * legacy `logId`.
 */
export function normalizeExercise(days: readonly string[], points: readonly unknown[], zones: ZoneHistory): NormalizedRecord[] {
  const wanted = new Set(days);
  const out: NormalizedRecord[] = [];
  const seen = new Set<number>();
  for (const p of points) {
    const ex = objectAt(p, 'exercise');
    const interval = objectAt(ex, 'interval');
    const start = timestampMs(interval?.startTime);
    const end = timestampMs(interval?.endTime);
    const day = sessionDay(interval, 'start', zones);
    if (!ex || start === undefined || end === undefined || end <= start || !day || !wanted.has(day) || seen.has(end)) continue;
    seen.add(end);
    const durationMsTotal = end - start;
    const seconds = Math.round(durationMsTotal / 1000);
    const active = durationMs(ex.activeDuration);
    const summary = objectAt(ex, 'metricsSummary');
    const name = stringAt(ex, 'displayName') ?? stringAt(ex, 'exerciseType');
    const data = dropUndefined({
      value: seconds,
      unit: 's',
      type: name ? name.toLowerCase() : 'activity',
      duration: seconds,
      active_duration: active === undefined ? undefined : Math.round(active / 1000),
      calories: num(summary?.caloriesKcal),
      steps: num(summary?.steps),
      source: GOOGLE_SOURCE,
    });
    out.push({ stream: 'exercise', day, event: { timestamp: end, sensor: SENSORS.exercise, data, duration: durationMsTotal }, distinct: '' });
  }
  return out;
}

/**
 * `users/me/pairedDevices` entries (google-health-api §2) as device states. `lastSyncTime` is an
 * instant (no zone history needed, unlike the legacy floating time). The id is the last segment
 * of `name`; `type` the product name (`deviceVersion`), falling back to `deviceType`. A battery
 * level of 0 is omitted by proto3 JSON, so it is only inferred when the status says "Empty".
 */
export function parsePairedDevices(devices: readonly unknown[]): DeviceState[] {
  const out: DeviceState[] = [];
  for (const d of devices) {
    if (!isObject(d)) continue;
    const name = stringAt(d, 'name');
    if (!name) continue;
    const battery = stringAt(d, 'batteryStatus');
    const level = num(d.batteryLevel) ?? (battery === 'Empty' ? 0 : undefined);
    out.push({
      id: name.slice(name.lastIndexOf('/') + 1),
      type: stringAt(d, 'deviceVersion') ?? stringAt(d, 'deviceType') ?? 'unknown',
      lastSyncAt: timestampMs(d.lastSyncTime) ?? null,
      ...(level !== undefined ? { batteryLevel: level } : {}),
      ...(battery !== undefined ? { battery } : {}),
    });
  }
  return out;
}

/**
 * One `lamp.wearable_device` event per observed (device, last sync), shaped exactly as the
 * Fitbit provider's: re-observing the same sync gives the same key, a new sync a new event.
 */
export function normalizeDevices(devices: readonly DeviceState[], zones: ZoneHistory): NormalizedRecord[] {
  return deviceRecords(devices, zones, GOOGLE_SOURCE);
}
