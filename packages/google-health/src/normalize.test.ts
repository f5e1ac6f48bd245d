import { describe, expect, it } from 'vitest';
import { ProviderError, recordKey, type NormalizedRecord, type ZoneHistory } from '@fitlamp/provider';
import {
  normalizeActiveZoneMinutes,
  normalizeDaily,
  normalizeDailySteps,
  normalizeDevices,
  normalizeExercise,
  normalizeHeartRate,
  normalizeSteps,
  parsePairedDevices,
} from './normalize.ts';
import { durationMs, num, timestampMs } from './proto-json.ts';
import { normalizeSleep, sleepTimeline } from './sleep.ts';

const ny: ZoneHistory = [{ zone: 'America/New_York', validFrom: 0 }];
const iso = (ms: number) => new Date(ms).toISOString();
const keys = (records: NormalizedRecord[]) => records.map((r) => recordKey('p1', r));
const src = 'com.google.health';

/** A reconciled steps point as the discovery doc shapes it: int64 count as a string. */
function stepsPoint(startMs: number, count: number | undefined, offset: string) {
  return {
    steps: {
      interval: { startTime: iso(startMs).replace('.000Z', 'Z'), startUtcOffset: offset, endTime: iso(startMs + 60_000).replace('.000Z', 'Z'), endUtcOffset: offset },
      ...(count === undefined ? {} : { count: String(count) }),
    },
  };
}

describe('proto3 JSON', () => {
  it('reads int64 strings, durations, NaN and µs timestamps', () => {
    expect(num('512')).toBe(512);
    expect(num('NaN')).toBeUndefined();
    expect(num('Infinity')).toBeUndefined();
    expect(durationMs('-18000s')).toBe(-18_000_000);
    expect(durationMs('0.500s')).toBe(500);
    expect(durationMs('900')).toBeUndefined();
    expect(timestampMs('2026-04-05T02:39:44.295167Z')).toBe(Date.parse('2026-04-05T02:39:44.295Z'));
    expect(timestampMs('2026-04-05')).toBeUndefined();
  });
});

describe('steps', () => {
  it('the DST fall-back day (2026-11-01, New York): 25 local hours of minutes, each once, on that local day', () => {
    const dayStart = Date.parse('2026-11-01T04:00:00Z');
    const points = [];
    // Newest first, as Google orders them. 1500 minutes; the repeated 01:xx hour is just more instants.
    for (let m = 1499; m >= 0; m--) {
      const at = dayStart + m * 60_000;
      points.push(stepsPoint(at, m % 3 === 0 ? undefined : 2, at < Date.parse('2026-11-01T06:00:00Z') ? '-14400s' : '-18000s'));
    }
    const records = normalizeSteps(['2026-11-01'], points, ny);
    // Omitted count = proto3 default 0: skipped like a zero minute.
    expect(records).toHaveLength(1000);
    expect(records.every((r) => r.day === '2026-11-01')).toBe(true);
    expect(iso(records[0]!.event.timestamp)).toBe('2026-11-01T04:01:00.000Z');
    expect(iso(records[records.length - 1]!.event.timestamp)).toBe('2026-11-02T04:59:00.000Z');
    expect(new Set(keys(records)).size).toBe(records.length);
    expect(records[0]).toEqual({
      stream: 'steps',
      day: '2026-11-01',
      event: { timestamp: Date.parse('2026-11-01T04:01:00Z'), sensor: 'lamp.steps', data: { value: 2, unit: 'count', type: 'step_count', source: src } },
      distinct: '',
    });
  });

  it('adds points that start in the same minute, and drops minutes of days not asked for', () => {
    const at = Date.parse('2026-03-08T07:30:00Z'); // 03:30 EDT, the morning of spring forward
    const records = normalizeSteps(['2026-03-08'], [stepsPoint(at, 5, '-14400s'), stepsPoint(at + 20_000, 7, '-14400s'), stepsPoint(Date.parse('2026-03-08T04:59:00Z'), 9, '-18000s')], ny);
    expect(records.map((r) => [iso(r.event.timestamp), r.event.data.value])).toEqual([['2026-03-08T07:30:00.000Z', 12]]);
  });

  it('daily roll-up: one delta spanning the local day (23 h on spring forward), distinct "day", zero days skipped', () => {
    const rollups = [
      { civilStartTime: { date: { year: 2026, month: 3, day: 8 } }, civilEndTime: { date: { year: 2026, month: 3, day: 9 } }, steps: { countSum: '8630' } },
      { civilStartTime: { date: { year: 2026, month: 3, day: 9 } }, civilEndTime: { date: { year: 2026, month: 3, day: 10 } }, steps: {} },
    ];
    const records = normalizeDailySteps(['2026-03-08', '2026-03-09'], rollups, ny);
    expect(records).toEqual([
      {
        stream: 'steps',
        day: '2026-03-08',
        event: { timestamp: Date.parse('2026-03-08T05:00:00Z'), sensor: 'lamp.steps', data: { value: 8630, unit: 'count', type: 'step_count', source: src }, duration: 23 * 3_600_000 },
        distinct: 'day',
      },
    ]);
  });
});

describe('heart rate', () => {
  it('averages the samples of each minute to a whole bpm at the minute start; non-positive samples are not readings', () => {
    const s = (t: string, bpm: string) => ({ heartRate: { sampleTime: { physicalTime: t, utcOffset: '-14400s' }, beatsPerMinute: bpm, metadata: { motionContext: 'SEDENTARY' } } });
    const points = [s('2026-10-20T04:01:10Z', '70'), s('2026-10-20T04:00:40.5Z', '66'), s('2026-10-20T04:00:05Z', '63'), s('2026-10-20T04:00:20Z', '0')];
    expect(normalizeHeartRate(['2026-10-20'], points, ny).map((r) => [iso(r.event.timestamp), r.event.sensor, r.event.data, r.distinct])).toEqual([
      ['2026-10-20T04:00:00.000Z', 'lamp.heart_rate', { value: 65, unit: 'bpm', source: src }, ''],
      ['2026-10-20T04:01:00.000Z', 'lamp.heart_rate', { value: 70, unit: 'bpm', source: src }, ''],
    ]);
  });
});

describe('daily types', () => {
  const date = (d: number) => ({ year: 2026, month: 3, day: d });

  it('resting HR (int64 string) at the start of the local day; a second source for the same day is ignored', () => {
    const points = [
      { dailyRestingHeartRate: { date: date(8), beatsPerMinute: '58', dailyRestingHeartRateMetadata: { calculationMethod: 'WITH_SLEEP' } } },
      { dailyRestingHeartRate: { date: date(8), beatsPerMinute: '60' } },
      { dailyRestingHeartRate: { date: date(7) } },
    ];
    expect(normalizeDaily('resting_heart_rate', ['2026-03-07', '2026-03-08'], points, ny)).toEqual([
      { stream: 'resting_heart_rate', day: '2026-03-08', event: { timestamp: Date.parse('2026-03-08T05:00:00Z'), sensor: 'lamp.resting_heartrate', data: { value: 58, unit: 'bpm', source: src } }, distinct: '' },
    ]);
  });

  it('HRV is RMSSD; SpO2 bounds become min/max; breathing rate', () => {
    const hrv = normalizeDaily('hrv', ['2026-03-07'], [{ dailyHeartRateVariability: { date: date(7), averageHeartRateVariabilityMilliseconds: 42.5, nonRemHeartRateBeatsPerMinute: '58', entropy: 2.9, deepSleepRootMeanSquareOfSuccessiveDifferencesMilliseconds: 47.1 } }], ny);
    expect(hrv[0]!.event).toMatchObject({ sensor: 'lamp.heartratevariability_rmssd', data: { value: 42.5, unit: 'ms', deep_rmssd: 47.1, source: src } });
    const spo2 = normalizeDaily('spo2', ['2026-03-07'], [{ dailyOxygenSaturation: { date: date(7), averagePercentage: 95.8, lowerBoundPercentage: 93.7, upperBoundPercentage: 97.9, standardDeviationPercentage: 0.9 } }], ny);
    expect(spo2[0]!.event.data).toEqual({ value: 95.8, unit: '%', min: 93.7, max: 97.9, source: src });
    const br = normalizeDaily('breathing_rate', ['2026-03-07'], [{ dailyRespiratoryRate: { date: date(7), breathsPerMinute: 14.2 } }], ny);
    expect(br[0]!.event).toMatchObject({ sensor: 'lamp.respiratory_rate', data: { value: 14.2, unit: 'breaths/min' } });
  });

  it('skin temperature is the nightly deviation from baseline, and a "NaN" baseline yields no datum', () => {
    const points = [
      { dailySleepTemperatureDerivations: { date: date(7), nightlyTemperatureCelsius: 33.9, baselineTemperatureCelsius: 34.2, relativeNightlyStddev30dCelsius: 0.12 } },
      { dailySleepTemperatureDerivations: { date: date(8), nightlyTemperatureCelsius: 34.25, baselineTemperatureCelsius: 'NaN' } },
    ];
    const records = normalizeDaily('skin_temperature', ['2026-03-07', '2026-03-08'], points, ny);
    expect(records.map((r) => [r.day, r.event.sensor, r.event.data])).toEqual([['2026-03-07', 'lamp.skin_temperature_relative', { value: -0.3, unit: '°C', source: src }]]);
  });

  it('AZM from the daily roll-up: per-zone sums (int64 strings, cardio/peak already doubled) and their total', () => {
    const rollups = [
      { civilStartTime: { date: date(7) }, civilEndTime: { date: date(8) }, activeZoneMinutes: { sumInFatBurnHeartZone: '20', sumInCardioHeartZone: '12' } },
      { civilStartTime: { date: date(8) }, civilEndTime: { date: date(9) }, activeZoneMinutes: {} },
    ];
    expect(normalizeActiveZoneMinutes(['2026-03-07', '2026-03-08'], rollups, ny).map((r) => r.event.data)).toEqual([
      { value: 32, unit: 'min', fat_burn: 20, cardio: 12, peak: 0, source: src },
    ]);
  });
});

describe('sleep', () => {
  const stage = (start: string, end: string, type: string) => ({ startTime: start, startUtcOffset: '-18000s', endTime: end, endUtcOffset: '-18000s', type });
  const night = {
    name: 'users/2515/dataTypes/sleep/dataPoints/a1b2c3d4-e5f6-7890-1234-567890abcdef',
    sleep: {
      interval: { startTime: '2026-01-15T03:30:00Z', startUtcOffset: '-18000s', endTime: '2026-01-15T11:00:00Z', endUtcOffset: '-18000s' },
      type: 'STAGES',
      stages: [
        stage('2026-01-15T10:00:00Z', '2026-01-15T11:00:00Z', 'REM'),
        stage('2026-01-15T03:30:00Z', '2026-01-15T05:30:00Z', 'LIGHT'), // 22:30 → 00:30 local: crosses midnight
        stage('2026-01-15T05:30:00Z', '2026-01-15T05:33:00Z', 'AWAKE'),
        stage('2026-01-15T05:33:00Z', '2026-01-15T07:00:00Z', 'DEEP'),
        stage('2026-01-15T07:00:00Z', '2026-01-15T10:00:00Z', 'LIGHT'),
      ],
      metadata: { processed: true, stagesStatus: 'SUCCEEDED' },
      summary: { minutesAsleep: '447', minutesAwake: '3', minutesInSleepPeriod: '450' },
    },
  };

  it('one event per stage at its end, on the local date the night ended, stage-keyed, tiling the night exactly once', () => {
    const records = normalizeSleep(['2026-01-15'], [night], ny);
    expect(records.map((r) => [iso(r.event.timestamp), r.event.data.stage, r.event.data.representation, r.event.data.value, r.distinct])).toEqual([
      ['2026-01-15T05:30:00.000Z', 'light', 'in_sleep', 3, 'light'],
      ['2026-01-15T05:33:00.000Z', 'wake', 'in_awake', 2, 'wake'],
      ['2026-01-15T07:00:00.000Z', 'deep', 'in_sleep', 4, 'deep'],
      ['2026-01-15T10:00:00.000Z', 'light', 'in_sleep', 3, 'light'],
      ['2026-01-15T11:00:00.000Z', 'rem', 'in_sleep', 5, 'rem'],
    ]);
    expect(records.every((r) => r.day === '2026-01-15')).toBe(true);
    const asleepMs = records.filter((r) => r.event.data.representation === 'in_sleep').reduce((s, r) => s + r.event.duration!, 0);
    expect(asleepMs / 60_000).toBe(447);
    expect(records.reduce((s, r) => s + r.event.duration!, 0) / 60_000).toBe(450);
    expect(records[0]!.event.data).toEqual({ value: 3, representation: 'in_sleep', stage: 'light', duration: 7_200_000, source: src });
    // The night belongs to the day it ended: asking for the 14th gives nothing.
    expect(normalizeSleep(['2026-01-14'], [night], ny)).toEqual([]);
  });

  it('classic sleep says "awake"/"asleep"/"restless"; overlapping stages are clipped, never counted twice', () => {
    const classic = {
      sleep: {
        interval: { startTime: '2026-04-04T18:39:00Z', startUtcOffset: '7200s', endTime: '2026-04-05T02:39:00Z', endUtcOffset: '7200s' },
        type: 'CLASSIC',
        stages: [
          { startTime: '2026-04-04T18:39:00Z', endTime: '2026-04-04T22:00:00Z', type: 'ASLEEP' },
          { startTime: '2026-04-04T21:50:00Z', endTime: '2026-04-04T22:10:00Z', type: 'AWAKE' },
          { startTime: '2026-04-04T22:10:00Z', endTime: '2026-04-05T02:39:00Z', type: 'RESTLESS' },
        ],
        metadata: { stagesStatus: 'REJECTED_SERVER', processed: true, externalId: '' },
      },
    };
    const pieces = sleepTimeline(classic.sleep);
    expect(pieces.map((p) => [iso(p.start), iso(p.end), p.level])).toEqual([
      ['2026-04-04T18:39:00.000Z', '2026-04-04T22:00:00.000Z', 'asleep'],
      ['2026-04-04T22:00:00.000Z', '2026-04-04T22:10:00.000Z', 'awake'],
      ['2026-04-04T22:10:00.000Z', '2026-04-05T02:39:00.000Z', 'restless'],
    ]);
    // Offset +02:00: ends 04:39 local on the 5th.
    expect(normalizeSleep(['2026-04-05'], [classic], ny)).toHaveLength(3);
  });

  it('a session still being processed fails the request as unavailable/pending', () => {
    const pending = { sleep: { ...night.sleep, stages: undefined, metadata: { stagesStatus: 'PROCESSING_INTERNAL_ERROR' } } };
    let err: unknown;
    try {
      normalizeSleep(['2026-01-15'], [pending], ny);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ProviderError);
    expect(err).toMatchObject({ code: 'unavailable', details: { reason: 'pending' } });
  });
});

describe('exercise', () => {
  it('a workout as lamp.segment at its end, seconds, lower-cased display name, int64 steps', () => {
    const point = {
      name: 'users/2515055256096816351/dataTypes/exercise/dataPoints/8896720705097069096',
      dataSource: { recordingMethod: 'MANUAL', platform: 'FITBIT' },
      exercise: {
        interval: { startTime: '2026-02-23T13:10:00Z', startUtcOffset: '-18000s', endTime: '2026-02-23T13:25:00Z', endUtcOffset: '-18000s' },
        exerciseType: 'WALKING',
        metricsSummary: { caloriesKcal: 16, distanceMillimeters: 1609344, steps: '2038', averagePaceSecondsPerMeter: 0.5592340730136005, activeZoneMinutes: '0' },
        exerciseMetadata: {},
        displayName: 'Walk',
        activeDuration: '900s',
        updateTime: '2026-02-24T01:19:22.450466Z',
      },
    };
    expect(normalizeExercise(['2026-02-23'], [point], ny)).toEqual([
      {
        stream: 'exercise',
        day: '2026-02-23',
        event: {
          timestamp: Date.parse('2026-02-23T13:25:00Z'),
          sensor: 'lamp.segment',
          data: { value: 900, unit: 's', type: 'walk', duration: 900, active_duration: 900, calories: 16, steps: 2038, source: src },
          duration: 900_000,
        },
        distinct: '',
      },
    ]);
  });
});

describe('devices', () => {
  it('paired devices: instant last sync, battery, product name; same shape as the Fitbit device stream', () => {
    const devices = parsePairedDevices([
      { name: 'users/me/pairedDevices/123', deviceType: 'TRACKER', deviceVersion: 'Charge 6', batteryLevel: 80, batteryStatus: 'High', lastSyncTime: '2026-03-07T17:29:05Z', features: ['STEPS'] },
      { name: 'users/me/pairedDevices/456', deviceType: 'SCALE', batteryStatus: 'Empty' },
    ]);
    expect(devices).toEqual([
      { id: '123', type: 'Charge 6', lastSyncAt: Date.parse('2026-03-07T17:29:05Z'), batteryLevel: 80, battery: 'High' },
      { id: '456', type: 'SCALE', lastSyncAt: null, batteryLevel: 0, battery: 'Empty' },
    ]);
    expect(normalizeDevices(devices, ny)).toEqual([
      {
        stream: 'device',
        day: '2026-03-07',
        event: {
          timestamp: Date.parse('2026-03-07T17:29:05Z'),
          sensor: 'lamp.wearable_device',
          data: { value: 80, unit: '%', battery: 'High', device_type: 'Charge 6', device_id: '123', last_sync: '2026-03-07T17:29:05.000Z', source: src },
        },
        distinct: '123',
      },
    ]);
  });
});
