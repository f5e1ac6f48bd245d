import type { StreamName } from '@fitlamp/provider';

/**
 * The Google Health data types a webhook notification can name (google-health-api §3.6, §4.4),
 * mapped to the fitlamp stream they feed. Types fitlamp does not sync are absent.
 */
const DATA_TYPE_STREAMS: Readonly<Record<string, StreamName>> = {
  steps: 'steps',
  'heart-rate': 'heart_rate',
  'daily-resting-heart-rate': 'resting_heart_rate',
  sleep: 'sleep',
  'daily-oxygen-saturation': 'spo2',
  'oxygen-saturation': 'spo2',
  'daily-heart-rate-variability': 'hrv',
  'heart-rate-variability': 'hrv',
  'daily-respiratory-rate': 'breathing_rate',
  'respiratory-rate-sleep-summary': 'breathing_rate',
  'daily-sleep-temperature-derivations': 'skin_temperature',
  'active-zone-minutes': 'active_zone_minutes',
  exercise: 'exercise',
};

/** The stream a notified data type feeds, or `undefined` for types fitlamp does not sync. */
export function streamOfDataType(dataType: string): StreamName | undefined {
  return Object.hasOwn(DATA_TYPE_STREAMS, dataType) ? DATA_TYPE_STREAMS[dataType] : undefined;
}
