/**
 * The v4 data-type catalogue (google-health-api §3.6) and the OAuth scopes (§1.2). Types fitlamp
 * syncs are rendered from the world; the others are known (so paths and filters validate) but hold
 * no data here.
 */

const SCOPE_PREFIX = 'https://www.googleapis.com/auth/googlehealth.';

/** The read scopes, by short name. */
export const SCOPES = {
  activity: `${SCOPE_PREFIX}activity_and_fitness.readonly`,
  healthMetrics: `${SCOPE_PREFIX}health_metrics_and_measurements.readonly`,
  sleep: `${SCOPE_PREFIX}sleep.readonly`,
  settings: `${SCOPE_PREFIX}settings.readonly`,
  profile: `${SCOPE_PREFIX}profile.readonly`,
  location: `${SCOPE_PREFIX}location.readonly`,
  nutrition: `${SCOPE_PREFIX}nutrition.readonly`,
  ecg: `${SCOPE_PREFIX}ecg.readonly`,
  irn: `${SCOPE_PREFIX}irn.readonly`,
} as const;

export const CLOUD_PLATFORM = 'https://www.googleapis.com/auth/cloud-platform';

/** Every scope the consent screen accepts (health read and write scopes, identity scopes, cloud-platform). */
export const KNOWN_SCOPES: ReadonlySet<string> = new Set([
  ...Object.values(SCOPES),
  ...['activity_and_fitness', 'health_metrics_and_measurements', 'sleep', 'settings', 'profile', 'location', 'nutrition'].map((s) => `${SCOPE_PREFIX}${s}.writeonly`),
  'openid',
  'email',
  'profile',
  'https://www.googleapis.com/auth/userinfo.email',
  'https://www.googleapis.com/auth/userinfo.profile',
  CLOUD_PLATFORM,
]);

/** Scopes accepted by list/reconcile/rollUp/dailyRollUp (Discovery). */
export const DATA_METHOD_SCOPES = [SCOPES.activity, SCOPES.healthMetrics, SCOPES.location, SCOPES.sleep];
/** Scopes accepted by users.getIdentity (Discovery). */
export const IDENTITY_SCOPES = [SCOPES.activity, SCOPES.ecg, SCOPES.healthMetrics, SCOPES.irn, SCOPES.profile, SCOPES.settings, SCOPES.sleep];

/** How a type's points are placed in time, which decides its filter members. */
export type TimeShape = 'interval' | 'sample' | 'daily' | 'session' | 'sleep' | 'ecg' | 'food' | 'rollup-only' | 'write-only';

export type Operation = 'list' | 'reconcile' | 'rollUp' | 'dailyRollUp' | 'get';

export interface DataTypeInfo {
  /** kebab-case path segment. */
  path: string;
  /** snake_case filter prefix. */
  prefix: string;
  /** camelCase DataPoint union member. */
  member: string;
  shape: TimeShape;
  ops: readonly Operation[];
  scope: string;
  /** Whether AUTOMATIC webhook notifications exist for it. */
  webhook: boolean;
  /** Whether `get` works (identifiable types carry `name`). */
  identifiable: boolean;
}

const A = SCOPES.activity;
const H = SCOPES.healthMetrics;
const LRRD: Operation[] = ['list', 'reconcile', 'rollUp', 'dailyRollUp'];
const LR: Operation[] = ['list', 'reconcile'];

function t(path: string, member: string, shape: TimeShape, ops: Operation[], scope: string, webhook: boolean): DataTypeInfo {
  return { path, prefix: path.replaceAll('-', '_'), member, shape, ops, scope, webhook, identifiable: ops.includes('get') };
}

/** The catalogue (google-health-api §3.6). */
export const DATA_TYPES: readonly DataTypeInfo[] = [
  t('steps', 'steps', 'interval', LRRD, A, true),
  t('distance', 'distance', 'interval', LRRD, A, true),
  t('floors', 'floors', 'interval', ['reconcile', 'rollUp', 'dailyRollUp'], A, true),
  t('altitude', 'altitude', 'interval', LRRD, A, true),
  t('active-zone-minutes', 'activeZoneMinutes', 'interval', LRRD, A, true),
  t('active-minutes', 'activeMinutes', 'interval', LRRD, A, false),
  t('activity-level', 'activityLevel', 'interval', LR, A, true),
  t('sedentary-period', 'sedentaryPeriod', 'interval', LRRD, A, true),
  t('active-energy-burned', 'activeEnergyBurned', 'interval', LRRD, A, false),
  t('total-calories', 'totalCalories', 'rollup-only', ['rollUp', 'dailyRollUp'], A, true),
  t('calories-in-heart-rate-zone', 'caloriesInHeartRateZone', 'rollup-only', ['rollUp', 'dailyRollUp'], A, true),
  t('time-in-heart-rate-zone', 'timeInHeartRateZone', 'interval', LRRD, A, true),
  t('swim-lengths-data', 'swimLengthsData', 'interval', LRRD, A, false),
  t('exercise', 'exercise', 'session', ['list', 'get', 'reconcile'], A, true),
  t('run-vo2-max', 'runVo2Max', 'sample', LRRD, A, true),
  t('vo2-max', 'vo2Max', 'sample', LR, A, false),
  t('daily-vo2-max', 'dailyVo2Max', 'daily', LR, A, false),
  t('heart-rate', 'heartRate', 'sample', LRRD, H, true),
  t('daily-resting-heart-rate', 'dailyRestingHeartRate', 'daily', LR, H, true),
  t('daily-heart-rate-zones', 'dailyHeartRateZones', 'daily', LR, H, true),
  t('heart-rate-variability', 'heartRateVariability', 'sample', LR, H, true),
  t('daily-heart-rate-variability', 'dailyHeartRateVariability', 'daily', LR, H, true),
  t('oxygen-saturation', 'oxygenSaturation', 'sample', LR, H, false),
  t('daily-oxygen-saturation', 'dailyOxygenSaturation', 'daily', LR, H, true),
  t('respiratory-rate-sleep-summary', 'respiratoryRateSleepSummary', 'sample', LR, H, true),
  t('daily-respiratory-rate', 'dailyRespiratoryRate', 'daily', LR, H, true),
  t('daily-sleep-temperature-derivations', 'dailySleepTemperatureDerivations', 'daily', LR, H, true),
  t('core-body-temperature', 'coreBodyTemperature', 'sample', ['list', 'get', 'reconcile', 'rollUp', 'dailyRollUp'], H, false),
  t('weight', 'weight', 'sample', ['list', 'get', 'reconcile', 'rollUp', 'dailyRollUp'], H, true),
  t('body-fat', 'bodyFat', 'sample', ['list', 'get', 'reconcile', 'rollUp', 'dailyRollUp'], H, true),
  t('height', 'height', 'sample', ['list', 'get', 'reconcile'], H, false),
  t('blood-glucose', 'bloodGlucose', 'sample', ['list', 'get', 'reconcile', 'rollUp', 'dailyRollUp'], H, false),
  t('sleep', 'sleep', 'sleep', ['list', 'get', 'reconcile'], SCOPES.sleep, true),
  t('hydration-log', 'hydrationLog', 'session', ['list', 'get', 'reconcile', 'rollUp', 'dailyRollUp'], SCOPES.nutrition, false),
  t('nutrition-log', 'nutritionLog', 'session', ['list', 'get', 'reconcile', 'rollUp', 'dailyRollUp'], SCOPES.nutrition, false),
  t('food', 'food', 'food', ['list', 'get'], SCOPES.nutrition, false),
  t('food-measurement-unit', 'foodMeasurementUnit', 'food', ['list', 'get'], SCOPES.nutrition, false),
  t('electrocardiogram', 'electrocardiogram', 'ecg', ['list'], SCOPES.ecg, false),
  t('irregular-rhythm-notification', 'irregularRhythmNotification', 'session', ['list'], SCOPES.irn, false),
  t('menstrual-period', 'menstrualPeriod', 'write-only', [], H, false),
  t('moods', 'moods', 'write-only', [], H, false),
  t('ovulation-test', 'ovulationTest', 'write-only', [], H, false),
  t('symptoms', 'symptoms', 'write-only', [], H, false),
];

/** The catalogue entry of a kebab-case path segment. */
export function findDataType(path: string): DataTypeInfo | undefined {
  return DATA_TYPES.find((d) => d.path === path);
}

/**
 * fitlamp's streams and the Google data types that carry them (google-health-api §3.6, §6):
 * legacy SpO2/HRV/breathing-rate/skin-temperature nightly summaries map to the daily types.
 */
export const STREAM_DATA_TYPES = {
  steps: 'steps',
  heart_rate: 'heart-rate',
  resting_heart_rate: 'daily-resting-heart-rate',
  sleep: 'sleep',
  spo2: 'daily-oxygen-saturation',
  hrv: 'daily-heart-rate-variability',
  breathing_rate: 'daily-respiratory-rate',
  skin_temperature: 'daily-sleep-temperature-derivations',
  active_zone_minutes: 'active-zone-minutes',
  exercise: 'exercise',
} as const;

/** Data types with data in this simulator. */
export const RENDERED_TYPES: ReadonlySet<string> = new Set([...Object.values(STREAM_DATA_TYPES), 'respiratory-rate-sleep-summary']);

/** Max dailyRollUp range in days (Discovery: 14 for these, 90 for the rest). */
export function rollupMaxDays(path: string): number {
  return ['calories-in-heart-rate-zone', 'heart-rate', 'active-minutes', 'total-calories'].includes(path) ? 14 : 90;
}
