import { describe, expect, it } from 'vitest';
import { recordKey, type NormalizedRecord, type ZoneHistory } from '@fitlamp/provider';
import { normalizeActivities, normalizeDailySeries, normalizeDevices, normalizeMinuteSeries, parseDevices } from './normalize.ts';
import { normalizeSleep, sleepTimeline } from './sleep.ts';

const ny: ZoneHistory = [{ zone: 'America/New_York', validFrom: 0 }];
const iso = (ms: number) => new Date(ms).toISOString();
const keys = (records: NormalizedRecord[]) => records.map((r) => recordKey('p1', r));

describe('intraday minute series', () => {
  it('turns the DST fall-back day (2026-11-01, New York) into strictly increasing UTC minutes, repeated hour included', () => {
    // The device records the 01:xx hour twice (fitbit-web-api §4): 25 hours of minutes.
    const dataset: Array<{ time: string; value: number }> = [];
    const hhmm = (h: number, m: number) => `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}:00`;
    for (let m = 0; m < 120; m++) dataset.push({ time: hhmm(Math.floor(m / 60), m % 60), value: 1 });
    for (let m = 60; m < 120; m++) dataset.push({ time: hhmm(1, m % 60), value: 2 });
    for (let m = 120; m < 1440; m++) dataset.push({ time: hhmm(Math.floor(m / 60), m % 60), value: m % 2 === 0 ? 0 : 3 });
    const body = {
      'activities-steps': [{ dateTime: '2026-11-01', value: '0' }],
      'activities-steps-intraday': { dataset, datasetInterval: 1, datasetType: 'minute' },
    };
    const records = normalizeMinuteSeries('steps', '2026-11-01', body, ny);

    const firstRepeat = records.find((r) => r.event.data.value === 2)!;
    expect(iso(records[60]!.event.timestamp)).toBe('2026-11-01T05:00:00.000Z'); // first 01:00, EDT
    expect(iso(firstRepeat.event.timestamp)).toBe('2026-11-01T06:00:00.000Z'); // second 01:00, EST
    const times = records.map((r) => r.event.timestamp);
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    expect(new Set(times).size).toBe(times.length);
    expect(new Set(keys(records)).size).toBe(records.length);
    // Zero minutes are skipped; what remains sums to the device's total.
    expect(records.every((r) => (r.event.data.value as number) > 0)).toBe(true);
    expect(records.reduce((s, r) => s + (r.event.data.value as number), 0)).toBe(120 * 1 + 60 * 2 + 660 * 3);
    expect(records[0]).toEqual({
      stream: 'steps',
      day: '2026-11-01',
      event: { timestamp: Date.parse('2026-11-01T04:00:00Z'), sensor: 'lamp.steps', data: { value: 1, unit: 'count', type: 'step_count', source: 'com.fitbit.webapi' } },
      distinct: '',
    });
    expect(iso(records[records.length - 1]!.event.timestamp)).toBe('2026-11-02T04:59:00.000Z'); // 23:59 EST
  });

  it('adds up steps of a spring-forward gap minute instead of keying the same instant twice', () => {
    const body = { 'activities-steps-intraday': { dataset: [{ time: '02:30:00', value: 5 }, { time: '03:30:00', value: 7 }] } };
    const records = normalizeMinuteSeries('steps', '2026-03-08', body, ny);
    expect(records).toHaveLength(1);
    expect(records[0]!.event.data.value).toBe(12);
  });

  it('maps heart rate minutes to bpm', () => {
    const body = {
      'activities-heart': [{ dateTime: '2026-10-20', value: { restingHeartRate: 61 } }],
      'activities-heart-intraday': { dataset: [{ time: '00:00:00', value: 64 }, { time: '00:01:00', value: 66 }], datasetInterval: 1, datasetType: 'minute' },
    };
    const records = normalizeMinuteSeries('heart_rate', '2026-10-20', body, ny);
    expect(records.map((r) => [iso(r.event.timestamp), r.event.sensor, r.event.data])).toEqual([
      ['2026-10-20T04:00:00.000Z', 'lamp.heart_rate', { value: 64, unit: 'bpm', source: 'com.fitbit.webapi' }],
      ['2026-10-20T04:01:00.000Z', 'lamp.heart_rate', { value: 66, unit: 'bpm', source: 'com.fitbit.webapi' }],
    ]);
  });

  it('yields nothing for a day not yet synced (empty dataset)', () => {
    expect(normalizeMinuteSeries('heart_rate', '2026-10-20', { 'activities-heart': [], 'activities-heart-intraday': { dataset: [] } }, ny)).toEqual([]);
  });
});

describe('daily series', () => {
  it('steps: string values, zero days skipped, one event spanning the local day and distinct from the 00:00 minute', () => {
    const body = { 'activities-steps': [{ dateTime: '2026-10-31', value: '2504' }, { dateTime: '2026-11-01', value: '3723' }, { dateTime: '2026-11-02', value: '0' }] };
    const records = normalizeDailySeries('steps', ['2026-10-31', '2026-11-01', '2026-11-02'], body, ny);
    expect(records).toHaveLength(2);
    expect(records[1]!.event).toEqual({
      timestamp: Date.parse('2026-11-01T04:00:00Z'),
      sensor: 'lamp.steps',
      data: { value: 3723, unit: 'count', type: 'step_count', source: 'com.fitbit.webapi' },
      duration: 25 * 3_600_000,
    });
    expect(records[1]!.distinct).toBe('day');
  });

  it('resting heart rate from the HR daily series, skipping days without one and days not asked for', () => {
    const body = {
      'activities-heart': [
        { dateTime: '2026-10-01', value: { customHeartRateZones: [], heartRateZones: [{ caloriesOut: 1470.2, max: 94, min: 30, minutes: 1275, name: 'Out of Range' }], restingHeartRate: 65 } },
        { dateTime: '2026-10-02', value: { customHeartRateZones: [], heartRateZones: [] } },
        { dateTime: '2026-10-03', value: { restingHeartRate: 60 } },
      ],
    };
    const records = normalizeDailySeries('resting_heart_rate', ['2026-10-01', '2026-10-02'], body, ny);
    expect(records.map((r) => [r.day, r.event.sensor, r.event.data])).toEqual([
      ['2026-10-01', 'lamp.resting_heartrate', { value: 65, unit: 'bpm', source: 'com.fitbit.webapi' }],
    ]);
  });

  it('SpO2 range (bare array), single day (bare object) and date-only days', () => {
    const range = [{ dateTime: '2021-10-04', value: { avg: 97.5, min: 94.0, max: 100.0 } }, { dateTime: '2021-10-05' }];
    expect(normalizeDailySeries('spo2', ['2021-10-04', '2021-10-05'], range, ny).map((r) => r.event.data)).toEqual([
      { value: 97.5, unit: '%', min: 94, max: 100, source: 'com.fitbit.webapi' },
    ]);
    expect(normalizeDailySeries('spo2', ['2021-10-04'], range[0], ny)).toHaveLength(1);
  });

  it('HRV is RMSSD under its own sensor; breathing rate; relative skin temperature; AZM', () => {
    const day = ['2021-10-25'];
    const hrv = normalizeDailySeries('hrv', day, { hrv: [{ dateTime: '2021-10-25', value: { dailyRmssd: 34.938, deepRmssd: 31.567 } }] }, ny);
    expect(hrv[0]!.event.sensor).toBe('lamp.heartratevariability_rmssd');
    expect(hrv[0]!.event.data).toEqual({ value: 34.938, unit: 'ms', deep_rmssd: 31.567, source: 'com.fitbit.webapi' });

    const br = normalizeDailySeries('breathing_rate', day, { br: [{ dateTime: '2021-10-25', value: { breathingRate: 17.8 } }] }, ny);
    expect(br[0]!.event).toMatchObject({ sensor: 'lamp.respiratory_rate', data: { value: 17.8, unit: 'breaths/min' } });

    const temp = normalizeDailySeries(
      'skin_temperature',
      day,
      { tempSkin: [{ dateTime: '2021-10-25', value: { nightlyRelative: -0.3 }, logType: 'dedicated_temp_sensor' }] },
      ny,
    );
    expect(temp[0]!.event).toMatchObject({ sensor: 'lamp.skin_temperature_relative', data: { value: -0.3, unit: '°C', log_type: 'dedicated_temp_sensor' } });

    const azm = normalizeDailySeries(
      'active_zone_minutes',
      ['2022-05-01'],
      { 'activities-active-zone-minutes': [{ dateTime: '2022-05-01', value: { activeZoneMinutes: 21, fatBurnActiveZoneMinutes: 5, cardioActiveZoneMinutes: 12, peakActiveZoneMinutes: 4 } }] },
      ny,
    );
    expect(azm[0]!.event.data).toEqual({ value: 21, unit: 'min', fat_burn: 5, cardio: 12, peak: 4, source: 'com.fitbit.webapi' });
  });
});

describe('sleep', () => {
  // Crosses midnight; one short wake splits a light segment, one lies inside a wake segment.
  const log = {
    dateOfSleep: '2026-10-16',
    duration: 25_200_000,
    efficiency: 93,
    startTime: '2026-10-15T23:30:00.000',
    endTime: '2026-10-16T06:30:00.000',
    infoCode: 0,
    isMainSleep: true,
    logId: 14147924012,
    logType: 'auto_detected',
    minutesAfterWakeup: 0,
    minutesAsleep: 386,
    minutesAwake: 34,
    minutesToFallAsleep: 0,
    timeInBed: 420,
    type: 'stages',
    levels: {
      summary: { deep: { count: 1, minutes: 90 }, light: { count: 2, minutes: 206 }, rem: { count: 1, minutes: 90 }, wake: { count: 3, minutes: 34 } },
      data: [
        { dateTime: '2026-10-15T23:30:00.000', level: 'wake', seconds: 1200 },
        { dateTime: '2026-10-15T23:50:00.000', level: 'light', seconds: 3600 },
        { dateTime: '2026-10-16T00:50:00.000', level: 'deep', seconds: 5400 },
        { dateTime: '2026-10-16T02:20:00.000', level: 'rem', seconds: 5400 },
        { dateTime: '2026-10-16T03:50:00.000', level: 'wake', seconds: 600 },
        { dateTime: '2026-10-16T04:00:00.000', level: 'light', seconds: 9000 },
      ],
      shortData: [
        { dateTime: '2026-10-16T00:10:00.000', level: 'wake', seconds: 120 },
        { dateTime: '2026-10-16T03:52:00.000', level: 'wake', seconds: 60 },
        { dateTime: '2026-10-16T05:00:00.000', level: 'wake', seconds: 120 },
      ],
    },
  };

  it('tiles the log without overlaps; in_sleep sums to minutesAsleep and everything to timeInBed', () => {
    const records = normalizeSleep(['2026-10-16'], [log], ny);
    const pieces = records.map((r) => ({ start: r.event.timestamp - r.event.duration!, end: r.event.timestamp, r }));
    for (let i = 1; i < pieces.length; i++) expect(pieces[i]!.start).toBe(pieces[i - 1]!.end);
    expect(iso(pieces[0]!.start)).toBe('2026-10-16T03:30:00.000Z');
    expect(iso(pieces[pieces.length - 1]!.end)).toBe('2026-10-16T10:30:00.000Z');
    const total = (rep: string) => records.filter((r) => r.event.data.representation === rep).reduce((s, r) => s + r.event.duration!, 0);
    expect(total('in_sleep')).toBe(log.minutesAsleep * 60_000);
    expect(total('in_awake')).toBe(log.minutesAwake * 60_000);
    expect(total('in_sleep') + total('in_awake')).toBe(log.timeInBed * 60_000);
    expect(records.every((r) => r.day === '2026-10-16' && r.event.data.duration === r.event.duration)).toBe(true);
    expect(new Set(keys(records)).size).toBe(records.length);
  });

  it('stamps each piece at its end with HealthKit values and the log id', () => {
    const records = normalizeSleep(['2026-10-16'], [log], ny);
    // light 23:50–00:50 split by the 00:10 short wake.
    expect(records.slice(1, 4).map((r) => [iso(r.event.timestamp), r.event.data.stage, r.event.data.value, r.event.data.representation, r.event.duration])).toEqual([
      ['2026-10-16T04:10:00.000Z', 'light', 3, 'in_sleep', 1_200_000],
      ['2026-10-16T04:12:00.000Z', 'wake', 2, 'in_awake', 120_000],
      ['2026-10-16T04:50:00.000Z', 'light', 3, 'in_sleep', 2_280_000],
    ]);
    expect(records[0]!.event.data).toEqual({
      value: 2,
      representation: 'in_awake',
      stage: 'wake',
      duration: 1_200_000,
      log_id: 14147924012,
      main_sleep: true,
      source: 'com.fitbit.webapi',
    });
    expect(records[0]!.distinct).toBe('wake');
    expect(records[0]!.event.data.log_id).toBe(14147924012);
  });

  it('keeps only logs whose wake date was asked for', () => {
    expect(normalizeSleep(['2026-10-15'], [log], ny)).toEqual([]);
  });

  it('follows the fall-back night in order (2026-11-01, New York)', () => {
    const pieces = sleepTimeline(
      {
        data: [
          { dateTime: '2026-11-01T00:30:00.000', level: 'light', seconds: 3600 },
          { dateTime: '2026-11-01T01:30:00.000', level: 'deep', seconds: 3600 },
          { dateTime: '2026-11-01T01:30:00.000', level: 'rem', seconds: 3600 },
        ],
      },
      ny,
    );
    expect(pieces.map((p) => iso(p.start))).toEqual(['2026-11-01T04:30:00.000Z', '2026-11-01T05:30:00.000Z', '2026-11-01T06:30:00.000Z']);
  });

  it('maps classic logs (asleep/restless/awake)', () => {
    const classic = { dateOfSleep: '2026-10-16', logId: 7, type: 'classic', levels: { data: [{ dateTime: '2026-10-16T01:00:00.000', level: 'asleep', seconds: 60 }, { dateTime: '2026-10-16T01:01:00.000', level: 'restless', seconds: 60 }] } };
    expect(normalizeSleep(['2026-10-16'], [classic], ny).map((r) => [r.event.data.value, r.event.data.representation])).toEqual([
      [1, 'in_sleep'],
      [2, 'in_awake'],
    ]);
  });
});

describe('activities', () => {
  it('turns a logged walk into a lamp.segment ending at start + duration, on its local start day', () => {
    const walk = {
      activeDuration: 1536000,
      activityLevel: [{ minutes: 3, name: 'sedentary' }],
      activityName: 'Walk',
      activityTypeId: 90013,
      calories: 204,
      duration: 1536000,
      elevationGain: 0,
      lastModified: '2019-01-04T19:31:15.000Z',
      logId: 19018673358,
      logType: 'auto_detected',
      originalDuration: 1536000,
      originalStartTime: '2019-01-03T12:08:29.000-08:00',
      startTime: '2019-01-03T12:08:29.000-08:00',
      steps: 1799,
    };
    const records = normalizeActivities(['2019-01-03'], [walk], [{ zone: 'America/Los_Angeles', validFrom: 0 }]);
    expect(records).toEqual([
      {
        stream: 'exercise',
        day: '2019-01-03',
        event: {
          timestamp: Date.parse('2019-01-03T20:08:29.000Z') + 1536000,
          sensor: 'lamp.segment',
          duration: 1536000,
          data: {
            value: 1536,
            unit: 's',
            type: 'walk',
            duration: 1536,
            active_duration: 1536,
            calories: 204,
            steps: 1799,
            activity_type_id: 90013,
            log_id: 19018673358,
            log_type: 'auto_detected',
            source: 'com.fitbit.webapi',
          },
        },
        distinct: '',
      },
    ]);
    expect(normalizeActivities(['2019-01-04'], [walk], ny)).toEqual([]);
  });
});

describe('devices', () => {
  it('converts lastSyncTime through the zone history and emits one event per (device, sync)', () => {
    const body = [
      { battery: 'Medium', batteryLevel: 60, deviceVersion: 'Charge 2', features: [], id: '816713257', lastSyncTime: '2019-11-07T12:00:58.000', mac: '16ADD56D54GD', type: 'TRACKER' },
      { battery: 'High', deviceVersion: 'Aria', id: '99', lastSyncTime: '', type: 'SCALE' },
    ];
    const devices = parseDevices(body, ny);
    expect(devices[0]).toEqual({ id: '816713257', type: 'Charge 2', lastSyncAt: Date.parse('2019-11-07T17:00:58.000Z'), batteryLevel: 60, battery: 'Medium' });
    expect(devices[1]!.lastSyncAt).toBeNull();
    const records = normalizeDevices(devices, ny);
    expect(records).toEqual([
      {
        stream: 'device',
        day: '2019-11-07',
        event: {
          timestamp: Date.parse('2019-11-07T17:00:58.000Z'),
          sensor: 'lamp.wearable_device',
          data: { value: 60, unit: '%', battery: 'Medium', device_type: 'Charge 2', device_id: '816713257', last_sync: '2019-11-07T17:00:58.000Z', source: 'com.fitbit.webapi' },
        },
        distinct: '816713257',
      },
    ]);
  });
});

describe('a trip the zone history does not know yet', () => {
  it('stops placing minutes once the wall clock goes back unexplained, instead of storing them at wrong instants', () => {
    const body = {
      'activities-steps-intraday': {
        dataset: [
          { time: '12:58:00', value: 5 },
          { time: '12:59:00', value: 6 },
          // London → Los Angeles: the watch now shows 05:00 again.
          { time: '05:00:00', value: 7 },
          { time: '05:01:00', value: 8 },
        ],
      },
    };
    const london = [{ zone: 'Europe/London', validFrom: 0 }];
    const records = normalizeMinuteSeries('steps', '2026-11-04', body, london);
    expect(records.map((r) => [new Date(r.event.timestamp).toISOString(), r.event.data.value])).toEqual([
      ['2026-11-04T12:58:00.000Z', 5],
      ['2026-11-04T12:59:00.000Z', 6],
    ]);
    // Once the profile shows the new zone, the same answer places every minute.
    const known = [...london, { zone: 'America/Los_Angeles', validFrom: Date.parse('2026-11-04T12:59:30Z') }];
    expect(normalizeMinuteSeries('steps', '2026-11-04', body, known).map((r) => new Date(r.event.timestamp).toISOString())).toEqual([
      '2026-11-04T12:58:00.000Z',
      '2026-11-04T12:59:00.000Z',
      '2026-11-04T13:00:00.000Z',
      '2026-11-04T13:01:00.000Z',
    ]);
  });
});
