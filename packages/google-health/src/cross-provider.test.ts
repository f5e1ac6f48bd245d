import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MockAgent } from 'undici';
import { createFitbitProvider, FITBIT_SENSORS } from '@fitlamp/fitbit';
import { recordKey, type NormalizedRecord, type ProviderContext, type StreamName } from '@fitlamp/provider';
import { createGoogleHealthProvider, GOOGLE_SENSORS } from './index.ts';

/**
 * The same synthetic datum in the legacy Fitbit Web API's wire format and in the Google Health
 * API's must become the same mindLAMP record: same key (participant|sensor|timestamp|distinct),
 * same day, same `data` except `source` and the few fields only the legacy API has (listed per
 * stream, and nothing else), so a participant migrated from one API to the other is not written
 * twice. Both providers run their real fetch paths against a MockAgent.
 */

const FITBIT = 'https://api.fitbit.test';
const GOOGLE = 'https://health.google.test';
let agent: MockAgent;
beforeEach(() => {
  agent = new MockAgent();
  agent.disableNetConnect();
});
afterEach(async () => {
  await agent.close();
});

const ctx: ProviderContext = { accessToken: 'tok', zones: [{ zone: 'America/New_York', validFrom: 0 }], scopes: [], intraday: true };

function serveFitbit(path: string, body: unknown) {
  agent
    .get(FITBIT)
    .intercept({ path: (p) => p === path || p.startsWith(`${path}?`), method: 'GET' })
    .reply(200, body as object);
}
function serveGoogle(path: string, body: unknown, method: 'GET' | 'POST' = 'GET') {
  agent
    .get(GOOGLE)
    .intercept({ path: (p) => p === path || p.startsWith(`${path}?`), method })
    .reply(200, body as object);
}

async function both(stream: StreamName, days: string[], intraday = true) {
  const fitbit = createFitbitProvider({ clientId: 'c', clientSecret: 's', apiUrl: FITBIT, dispatcher: agent });
  const google = createGoogleHealthProvider({ clientId: 'c', clientSecret: 's', apiUrl: GOOGLE, dispatcher: agent });
  const c = { ...ctx, intraday };
  const f = (await Promise.all(fitbit.planRequests(stream, days, { intraday }).map((r) => fitbit.fetch(r, c)))).flat().flatMap((d) => d.records);
  const g = (await Promise.all(google.planRequests(stream, days, { intraday }).map((r) => google.fetch(r, c)))).flat().flatMap((d) => d.records);
  return { f, g };
}

/** What must agree: key, day, event duration, and data without source and the legacy-only fields. */
function comparable(records: NormalizedRecord[], source: string, legacyOnly: readonly string[] = []) {
  return records
    .map((r) => {
      expect(r.event.data.source).toBe(source);
      const data = { ...r.event.data };
      delete data.source;
      for (const k of legacyOnly) delete data[k];
      return { key: recordKey('p1', r), day: r.day, stream: r.stream, duration: r.event.duration, data };
    })
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

function expectSame(f: NormalizedRecord[], g: NormalizedRecord[], legacyOnly: readonly string[] = []) {
  expect(f.length).toBeGreaterThan(0);
  expect(comparable(g, 'com.google.health')).toEqual(comparable(f, 'com.fitbit.webapi', legacyOnly));
  // The legacy-only fields really are there on the Fitbit side (so the list stays honest).
  for (const k of legacyOnly) expect(f.some((r) => k in r.event.data)).toBe(true);
}

const utc = (s: string) => s; // readability: Google times are UTC instants

describe('same datum, same record, whichever API it came through', () => {
  it('uses the same sensor for every stream', () => {
    expect(GOOGLE_SENSORS).toEqual(FITBIT_SENSORS);
  });

  it('steps minutes on the DST fall-back day, repeated hour included', async () => {
    serveFitbit('/1/user/-/activities/steps/date/2026-11-01/1d/1min.json', {
      'activities-steps': [{ dateTime: '2026-11-01', value: '150' }],
      'activities-steps-intraday': {
        dataset: [
          { time: '00:59:00', value: 10 },
          { time: '01:30:00', value: 20 },
          { time: '01:30:00', value: 30 },
          { time: '02:00:00', value: 40 },
          { time: '23:59:00', value: 50 },
        ],
        datasetInterval: 1,
        datasetType: 'minute',
      },
    });
    const pt = (start: string, end: string, offset: string, count: string) => ({
      steps: { interval: { startTime: start, startUtcOffset: offset, endTime: end, endUtcOffset: offset }, count },
      dataSource: { platform: 'FITBIT', recordingMethod: 'PASSIVELY_MEASURED' },
    });
    serveGoogle('/v4/users/me/dataTypes/steps/dataPoints:reconcile', {
      dataPoints: [
        pt(utc('2026-11-02T04:59:00Z'), '2026-11-02T05:00:00Z', '-18000s', '50'),
        pt(utc('2026-11-01T07:00:00Z'), '2026-11-01T07:01:00Z', '-18000s', '40'),
        pt(utc('2026-11-01T06:30:00Z'), '2026-11-01T06:31:00Z', '-18000s', '30'),
        pt(utc('2026-11-01T05:30:00Z'), '2026-11-01T05:31:00Z', '-14400s', '20'),
        pt(utc('2026-11-01T04:59:00Z'), '2026-11-01T05:00:00Z', '-14400s', '10'),
      ],
      nextPageToken: '',
    });
    const { f, g } = await both('steps', ['2026-11-01']);
    expect(f).toHaveLength(5);
    expectSame(f, g);
  });

  it('heart-rate minutes (Google samples averaged to Fitbit’s 1-minute values)', async () => {
    serveFitbit('/1/user/-/activities/heart/date/2026-11-01/1d/1min.json', {
      'activities-heart': [{ dateTime: '2026-11-01', value: { restingHeartRate: 58 } }],
      'activities-heart-intraday': { dataset: [{ time: '01:30:00', value: 64 }, { time: '01:30:00', value: 70 }], datasetInterval: 1, datasetType: 'minute' },
    });
    const s = (t: string, offset: string, bpm: string) => ({ heartRate: { sampleTime: { physicalTime: t, utcOffset: offset }, beatsPerMinute: bpm } });
    serveGoogle('/v4/users/me/dataTypes/heart-rate/dataPoints:reconcile', {
      dataPoints: [s('2026-11-01T06:30:05Z', '-18000s', '70'), s('2026-11-01T05:30:40.250Z', '-14400s', '65'), s('2026-11-01T05:30:10Z', '-14400s', '63')],
    });
    const { f, g } = await both('heart_rate', ['2026-11-01']);
    expectSame(f, g);
  });

  it('daily steps (no intraday detail) and active zone minutes', async () => {
    serveFitbit('/1/user/-/activities/steps/date/2026-03-08/2026-03-08.json', { 'activities-steps': [{ dateTime: '2026-03-08', value: '8630' }] });
    serveGoogle(
      '/v4/users/me/dataTypes/steps/dataPoints:dailyRollUp',
      { rollupDataPoints: [{ civilStartTime: { date: { year: 2026, month: 3, day: 8 } }, civilEndTime: { date: { year: 2026, month: 3, day: 9 } }, steps: { countSum: '8630' } }] },
      'POST',
    );
    const steps = await both('steps', ['2026-03-08'], false);
    expectSame(steps.f, steps.g);

    serveFitbit('/1/user/-/activities/active-zone-minutes/date/2026-03-08/2026-03-08.json', {
      'activities-active-zone-minutes': [{ dateTime: '2026-03-08', value: { activeZoneMinutes: 41, fatBurnActiveZoneMinutes: 5, cardioActiveZoneMinutes: 24, peakActiveZoneMinutes: 12 } }],
    });
    serveGoogle(
      '/v4/users/me/dataTypes/active-zone-minutes/dataPoints:dailyRollUp',
      { rollupDataPoints: [{ civilStartTime: { date: { year: 2026, month: 3, day: 8 } }, activeZoneMinutes: { sumInFatBurnHeartZone: '5', sumInCardioHeartZone: '24', sumInPeakHeartZone: '12' } }] },
      'POST',
    );
    const azm = await both('active_zone_minutes', ['2026-03-08']);
    expectSame(azm.f, azm.g);
  });

  it('nightly values: resting HR, SpO2, HRV, breathing rate, skin temperature', async () => {
    const day = '2026-11-01';
    const date = { year: 2026, month: 11, day: 1 };
    serveFitbit(`/1/user/-/activities/heart/date/${day}/${day}.json`, { 'activities-heart': [{ dateTime: day, value: { customHeartRateZones: [], heartRateZones: [], restingHeartRate: 58 } }] });
    serveGoogle('/v4/users/me/dataTypes/daily-resting-heart-rate/dataPoints:reconcile', { dataPoints: [{ dailyRestingHeartRate: { date, beatsPerMinute: '58' } }] });
    const rhr = await both('resting_heart_rate', [day]);
    expectSame(rhr.f, rhr.g);

    serveFitbit(`/1/user/-/spo2/date/${day}/${day}.json`, [{ dateTime: day, value: { avg: 95.8, min: 93.7, max: 97.9 } }]);
    serveGoogle('/v4/users/me/dataTypes/daily-oxygen-saturation/dataPoints:reconcile', {
      dataPoints: [{ dailyOxygenSaturation: { date, averagePercentage: 95.8, lowerBoundPercentage: 93.7, upperBoundPercentage: 97.9, standardDeviationPercentage: 0.9 } }],
    });
    const spo2 = await both('spo2', [day]);
    expectSame(spo2.f, spo2.g);

    serveFitbit(`/1/user/-/hrv/date/${day}/${day}.json`, { hrv: [{ dateTime: day, value: { dailyRmssd: 34.938, deepRmssd: 31.567 } }] });
    serveGoogle('/v4/users/me/dataTypes/daily-heart-rate-variability/dataPoints:reconcile', {
      dataPoints: [{ dailyHeartRateVariability: { date, averageHeartRateVariabilityMilliseconds: 34.938, deepSleepRootMeanSquareOfSuccessiveDifferencesMilliseconds: 31.567, nonRemHeartRateBeatsPerMinute: '57' } }],
    });
    const hrv = await both('hrv', [day]);
    expectSame(hrv.f, hrv.g);

    serveFitbit(`/1/user/-/br/date/${day}/${day}.json`, { br: [{ dateTime: day, value: { breathingRate: 14.2 } }] });
    serveGoogle('/v4/users/me/dataTypes/daily-respiratory-rate/dataPoints:reconcile', { dataPoints: [{ dailyRespiratoryRate: { date, breathsPerMinute: 14.2 } }] });
    const br = await both('breathing_rate', [day]);
    expectSame(br.f, br.g);

    // The legacy API names the sensor kind (`logType`); Google does not.
    serveFitbit(`/1/user/-/temp/skin/date/${day}/${day}.json`, { tempSkin: [{ dateTime: day, value: { nightlyRelative: -0.3 }, logType: 'dedicated_temp_sensor' }] });
    serveGoogle('/v4/users/me/dataTypes/daily-sleep-temperature-derivations/dataPoints:reconcile', {
      dataPoints: [{ dailySleepTemperatureDerivations: { date, nightlyTemperatureCelsius: 33.9, baselineTemperatureCelsius: 34.2 } }],
    });
    const temp = await both('skin_temperature', [day]);
    expectSame(temp.f, temp.g, ['log_type']);
  });

  it('a night of sleep crossing midnight, short wakes included: same stage events and keys (log ids aside)', async () => {
    const log = {
      dateOfSleep: '2026-10-16',
      duration: 25_200_000,
      startTime: '2026-10-15T23:30:00.000',
      endTime: '2026-10-16T06:30:00.000',
      isMainSleep: true,
      logId: 14147924012,
      logType: 'auto_detected',
      minutesAsleep: 386,
      minutesAwake: 34,
      timeInBed: 420,
      type: 'stages',
      levels: {
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
    serveFitbit('/1.2/user/-/sleep/date/2026-10-16/2026-10-16.json', { sleep: [log] });
    // Google's stages are contiguous and non-overlapping: the short wakes are their own stages.
    const st = (start: string, end: string, type: string) => ({ startTime: `2026-10-16T${start}:00Z`, startUtcOffset: '-14400s', endTime: `2026-10-16T${end}:00Z`, endUtcOffset: '-14400s', type });
    serveGoogle('/v4/users/me/dataTypes/sleep/dataPoints:reconcile', {
      dataPoints: [
        {
          dataPointName: 'users/2515/dataTypes/sleep/dataPoints/a1b2c3d4-e5f6-7890-1234-567890abcdef',
          sleep: {
            interval: { startTime: '2026-10-16T03:30:00Z', startUtcOffset: '-14400s', endTime: '2026-10-16T10:30:00Z', endUtcOffset: '-14400s' },
            type: 'STAGES',
            stages: [
              st('03:30', '03:50', 'AWAKE'),
              st('03:50', '04:10', 'LIGHT'),
              st('04:10', '04:12', 'AWAKE'),
              st('04:12', '04:50', 'LIGHT'),
              st('04:50', '06:20', 'DEEP'),
              st('06:20', '07:50', 'REM'),
              st('07:50', '08:00', 'AWAKE'),
              st('08:00', '09:00', 'LIGHT'),
              st('09:00', '09:02', 'AWAKE'),
              st('09:02', '10:30', 'LIGHT'),
            ],
            metadata: { processed: true, stagesStatus: 'SUCCEEDED' },
            summary: { minutesAsleep: '386', minutesAwake: '34', minutesInSleepPeriod: '420' },
          },
        },
      ],
      nextPageToken: '',
    });
    const { f, g } = await both('sleep', ['2026-10-16']);
    expect(g).toHaveLength(10);
    expectSame(f, g, ['log_id', 'main_sleep']);
  });

  it('a workout', async () => {
    serveFitbit('/1/user/-/activities/list.json', {
      activities: [
        {
          activeDuration: 1536000,
          activityName: 'Walk',
          activityTypeId: 90013,
          calories: 204,
          duration: 1536000,
          logId: 19018673358,
          logType: 'auto_detected',
          startTime: '2026-10-16T12:08:29.000-04:00',
          steps: 1799,
        },
      ],
      pagination: { next: '', previous: '' },
    });
    serveGoogle('/v4/users/me/dataTypes/exercise/dataPoints:reconcile', {
      dataPoints: [
        {
          dataPointName: 'users/2515/dataTypes/exercise/dataPoints/2026443605080188808',
          exercise: {
            interval: { startTime: '2026-10-16T16:08:29Z', startUtcOffset: '-14400s', endTime: '2026-10-16T16:34:05Z', endUtcOffset: '-14400s' },
            exerciseType: 'WALKING',
            displayName: 'Walk',
            activeDuration: '1536s',
            metricsSummary: { caloriesKcal: 204, steps: '1799', distanceMillimeters: 1609344 },
          },
        },
      ],
    });
    const { f, g } = await both('exercise', ['2026-10-16']);
    expectSame(f, g, ['activity_type_id', 'log_id', 'log_type']);
  });

  it('device state (same device id assumed; the two APIs’ ids are not known to match)', async () => {
    serveFitbit('/1/user/-/devices.json', [
      { battery: 'Medium', batteryLevel: 60, deviceVersion: 'Charge 6', features: [], id: '816713257', lastSyncTime: '2026-10-16T12:00:58.000', mac: '16ADD56D54GD', type: 'TRACKER' },
    ]);
    serveGoogle('/v4/users/me/pairedDevices', {
      pairedDevices: [{ name: 'users/me/pairedDevices/816713257', deviceType: 'TRACKER', deviceVersion: 'Charge 6', batteryLevel: 60, batteryStatus: 'Medium', lastSyncTime: '2026-10-16T16:00:58Z' }],
    });
    const { f, g } = await both('device', ['2026-10-16']);
    expectSame(f, g);
  });
});
