import {
  LAMP_SENSORS,
  deviceRecords,
  localDayAt,
  localDayBounds,
  localToUtc,
  type DeviceState,
  type NormalizedRecord,
  type StreamName,
  type ZoneHistory,
} from '@fitlamp/provider';

/** Reverse-DNS `source` on every event fitlamp writes from the legacy Fitbit Web API. */
export const FITBIT_SOURCE = 'com.fitbit.webapi';

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function arrayAt(body: unknown, key: string): unknown[] {
  const v = isObject(body) ? body[key] : undefined;
  return Array.isArray(v) ? v : [];
}

/** Fitbit sends daily series values as strings and intraday values as numbers (fitbit-web-api §7.7). */
function num(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v === 'string' && v.trim() !== '') {
    const n = Number(v);
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

/** The mindLAMP sensor each minute series and daily value goes to (DESIGN.md mapping, docs/mapping.md). */
/** The mindLAMP sensor of each stream (shared by every provider). */
export const SENSORS = LAMP_SENSORS;

/**
 * An intraday dataset (`{"time":"HH:mm:ss","value":n}` relative to `day`, fitbit-web-api §3.3)
 * as events at each minute's start. Points are converted in series order, each no earlier than
 * the one before, so a fall-back day's repeated hour lands on its second occurrence. Steps are
 * deltas: zero minutes are skipped, and two points that resolve to the same instant (a
 * spring-forward gap minute) are added together rather than keyed twice. Heart rate keeps the
 * first reading of such an instant and skips non-positive values.
 */
export function normalizeMinuteSeries(
  stream: 'steps' | 'heart_rate',
  day: string,
  body: unknown,
  zones: ZoneHistory,
): NormalizedRecord[] {
  const key = stream === 'steps' ? 'activities-steps-intraday' : 'activities-heart-intraday';
  const intraday = isObject(body) ? body[key] : undefined;
  const dataset = isObject(intraday) && Array.isArray(intraday.dataset) ? intraday.dataset : [];
  const byInstant = new Map<number, NormalizedRecord>();
  let previous: number | undefined;
  for (const point of dataset) {
    if (!isObject(point) || typeof point.time !== 'string') continue;
    const instant = localToUtc(`${day}T${point.time}`, zones, previous === undefined ? {} : { notBefore: previous + 1 });
    // The device's clock went back and no known zone explains it (a trip fitlamp has not seen
    // in the profile yet): the rest of the series cannot be placed. It is left for the next
    // fetch of this day, after the zone history has caught up, rather than stored at a wrong instant.
    if (previous !== undefined && instant < previous) break;
    previous = instant;
    const value = num(point.value);
    if (value === undefined || value <= 0) continue;
    const existing = byInstant.get(instant);
    if (existing) {
      if (stream === 'steps') (existing.event.data as { value: number }).value += value;
      continue;
    }
    const data =
      stream === 'steps'
        ? { value, unit: 'count', type: 'step_count', source: FITBIT_SOURCE }
        : { value, unit: 'bpm', source: FITBIT_SOURCE };
    byInstant.set(instant, { stream, day, event: { timestamp: instant, sensor: SENSORS[stream], data }, distinct: '' });
  }
  return [...byInstant.values()];
}

/** How one entry of a daily series becomes an event's `data` (undefined: no datum that day). */
type DailyPick = (entry: Json) => Record<string, unknown> | undefined;

const DAILY: Record<
  'steps' | 'resting_heart_rate' | 'spo2' | 'hrv' | 'breathing_rate' | 'skin_temperature' | 'active_zone_minutes',
  { key: string; pick: DailyPick; distinct: string; spansDay: boolean }
> = {
  // A day's total as one delta spanning the day; `distinct` keeps it apart from the 00:00 minute.
  // Zero days are skipped like zero minutes: a tracker not worn reports "0" (fitbit-web-api §3.4).
  steps: {
    key: 'activities-steps',
    distinct: 'day',
    spansDay: true,
    pick: (e) => {
      const value = num(e.value);
      return value && value > 0 ? { value, unit: 'count', type: 'step_count', source: FITBIT_SOURCE } : undefined;
    },
  },
  // `restingHeartRate` is absent on days with too little data (fitbit-web-api §3.3).
  resting_heart_rate: {
    key: 'activities-heart',
    distinct: '',
    spansDay: false,
    pick: (e) => {
      const value = isObject(e.value) ? num(e.value.restingHeartRate) : undefined;
      return value && value > 0 ? { value, unit: 'bpm', source: FITBIT_SOURCE } : undefined;
    },
  },
  // Percent 0–100 as Fitbit reports it (iOS HealthKit sends fractions; mindlamp-api §3.5).
  spo2: {
    key: '',
    distinct: '',
    spansDay: false,
    pick: (e) => {
      const v = isObject(e.value) ? e.value : undefined;
      const value = v ? num(v.avg) : undefined;
      if (!v || value === undefined) return undefined;
      return { value, unit: '%', min: num(v.min), max: num(v.max), source: FITBIT_SOURCE };
    },
  },
  // Fitbit's HRV is RMSSD, not SDNN: never `lamp.heartratevariability_sdnn` (mindlamp-api §3.5).
  hrv: {
    key: 'hrv',
    distinct: '',
    spansDay: false,
    pick: (e) => {
      const v = isObject(e.value) ? e.value : undefined;
      const value = v ? num(v.dailyRmssd) : undefined;
      if (!v || value === undefined) return undefined;
      return { value, unit: 'ms', deep_rmssd: num(v.deepRmssd), source: FITBIT_SOURCE };
    },
  },
  breathing_rate: {
    key: 'br',
    distinct: '',
    spansDay: false,
    pick: (e) => {
      const value = isObject(e.value) ? num(e.value.breathingRate) : undefined;
      return value === undefined ? undefined : { value, unit: 'breaths/min', source: FITBIT_SOURCE };
    },
  },
  // Nightly deviation from the participant's baseline, °C without Accept-Language (fitbit-web-api §3).
  skin_temperature: {
    key: 'tempSkin',
    distinct: '',
    spansDay: false,
    pick: (e) => {
      const value = isObject(e.value) ? num(e.value.nightlyRelative) : undefined;
      if (value === undefined) return undefined;
      return { value, unit: '°C', ...(typeof e.logType === 'string' ? { log_type: e.logType } : {}), source: FITBIT_SOURCE };
    },
  },
  active_zone_minutes: {
    key: 'activities-active-zone-minutes',
    distinct: '',
    spansDay: false,
    pick: (e) => {
      const v = isObject(e.value) ? e.value : undefined;
      const value = v ? num(v.activeZoneMinutes) : undefined;
      if (!v || !value || value <= 0) return undefined;
      return {
        value,
        unit: 'min',
        fat_burn: num(v.fatBurnActiveZoneMinutes) ?? 0,
        cardio: num(v.cardioActiveZoneMinutes) ?? 0,
        peak: num(v.peakActiveZoneMinutes) ?? 0,
        source: FITBIT_SOURCE,
      };
    },
  },
};

export type DailyStream = keyof typeof DAILY;

/**
 * A daily series (`[{"dateTime":"YYYY-MM-DD","value":…}]` under the stream's key; SpO2's range
 * answer is a bare array, its single-day answer a bare object, fitbit-web-api §3.3) as one event
 * per day with a datum, stamped at the start of that local day. Entries outside `days` (a range
 * spanning gaps) are dropped; fields Fitbit left out are dropped from `data`.
 */
export function normalizeDailySeries(stream: DailyStream, days: readonly string[], body: unknown, zones: ZoneHistory): NormalizedRecord[] {
  const spec = DAILY[stream];
  const entries = spec.key === '' ? (Array.isArray(body) ? body : isObject(body) ? [body] : []) : arrayAt(body, spec.key);
  const wanted = new Set(days);
  const out: NormalizedRecord[] = [];
  for (const entry of entries) {
    if (!isObject(entry) || typeof entry.dateTime !== 'string' || !wanted.has(entry.dateTime)) continue;
    const data = spec.pick(entry);
    if (!data) continue;
    for (const [k, v] of Object.entries(data)) if (v === undefined) delete data[k];
    const { start, end } = localDayBounds(entry.dateTime, zones);
    out.push({
      stream,
      day: entry.dateTime,
      event: { timestamp: start, sensor: SENSORS[stream], data, ...(spec.spansDay ? { duration: end - start } : {}) },
      distinct: spec.distinct,
    });
  }
  return out;
}

const OFFSET = /(?:Z|[+-]\d{2}:?\d{2})$/;

/**
 * Activity-log exercises as `lamp.segment` events stamped at their end, like the iOS app's
 * workouts (mindlamp-api §3.2), with `duration` in seconds as iOS sends it. `startTime` carries an
 * offset (fitbit-web-api §3.3), so its date is the participant's local day and no zone history is
 * needed; a time without one is read as floating local time.
 */
export function normalizeActivities(days: readonly string[], activities: readonly unknown[], zones: ZoneHistory): NormalizedRecord[] {
  const wanted = new Set(days);
  const out: NormalizedRecord[] = [];
  for (const a of activities) {
    if (!isObject(a) || typeof a.startTime !== 'string') continue;
    const day = a.startTime.slice(0, 10);
    const durationMs = num(a.duration);
    if (!wanted.has(day) || durationMs === undefined || durationMs <= 0) continue;
    const start = OFFSET.test(a.startTime) ? Date.parse(a.startTime) : localToUtc(a.startTime, zones);
    if (!Number.isFinite(start)) continue;
    const seconds = Math.round(durationMs / 1000);
    const activeMs = num(a.activeDuration);
    const data: Record<string, unknown> = {
      value: seconds,
      unit: 's',
      type: typeof a.activityName === 'string' ? a.activityName.toLowerCase() : 'activity',
      duration: seconds,
      active_duration: activeMs === undefined ? undefined : Math.round(activeMs / 1000),
      calories: num(a.calories),
      steps: num(a.steps),
      activity_type_id: num(a.activityTypeId),
      log_id: num(a.logId),
      log_type: typeof a.logType === 'string' ? a.logType : undefined,
      source: FITBIT_SOURCE,
    };
    for (const [k, v] of Object.entries(data)) if (v === undefined) delete data[k];
    out.push({
      stream: 'exercise',
      day,
      event: { timestamp: start + durationMs, sensor: SENSORS.exercise, data, duration: durationMs },
      // Log ids differ between the two APIs; one workout ends at a given instant.
      distinct: '',
    });
  }
  return out;
}

/**
 * `GET /1/user/-/devices.json` entries (fitbit-web-api §3.3) as device states. `lastSyncTime` is
 * floating local time; in a fall-back hour the earlier reading is taken, which can only make a
 * day look less settled than it is. `type` is the model (`deviceVersion`, e.g. "Charge 2"),
 * falling back to Fitbit's `type` (TRACKER, SCALE).
 */
export function parseDevices(body: unknown, zones: ZoneHistory): DeviceState[] {
  const list = Array.isArray(body) ? body : [];
  const out: DeviceState[] = [];
  for (const d of list) {
    if (!isObject(d) || (typeof d.id !== 'string' && typeof d.id !== 'number')) continue;
    const level = num(d.batteryLevel);
    out.push({
      id: String(d.id),
      type: typeof d.deviceVersion === 'string' && d.deviceVersion !== '' ? d.deviceVersion : String(d.type ?? 'unknown'),
      lastSyncAt: typeof d.lastSyncTime === 'string' && d.lastSyncTime !== '' ? localToUtc(d.lastSyncTime, zones) : null,
      ...(level !== undefined ? { batteryLevel: level } : {}),
      ...(typeof d.battery === 'string' ? { battery: d.battery } : {}),
    });
  }
  return out;
}

/**
 * One `lamp.wearable_device` event per observed (device, last sync): re-observing the same sync
 * gives the same record key, a new sync a new event. Never-synced devices have nothing to say.
 */
export function normalizeDevices(devices: readonly DeviceState[], zones: ZoneHistory): NormalizedRecord[] {
  return deviceRecords(devices, zones, FITBIT_SOURCE);
}
