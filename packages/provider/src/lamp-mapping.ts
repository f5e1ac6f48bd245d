import type { DeviceState, NormalizedRecord, StreamName } from './provider.ts';
import { localDayAt, type ZoneHistory } from './time-zones.ts';

/**
 * The mindLAMP side of the mapping (docs/mapping.md), shared by every provider so that a
 * researcher can tell the APIs apart only by `source`.
 */

/** The mindLAMP sensor of each stream. */
export const LAMP_SENSORS = {
  steps: 'lamp.steps',
  heart_rate: 'lamp.heart_rate',
  resting_heart_rate: 'lamp.resting_heartrate',
  sleep: 'lamp.sleep',
  spo2: 'lamp.oxygen_saturation',
  hrv: 'lamp.heartratevariability_rmssd',
  breathing_rate: 'lamp.respiratory_rate',
  skin_temperature: 'lamp.skin_temperature_relative',
  active_zone_minutes: 'lamp.active_zone_minutes',
  exercise: 'lamp.segment',
  device: 'lamp.wearable_device',
} as const satisfies Record<StreamName, string>;

export type SleepRepresentation = 'in_sleep' | 'in_awake' | 'in_bed';

/**
 * Sleep stages, named as the legacy Fitbit API names its levels (the `stage` written), in
 * HealthKit's numbering with Cortex's representations (mindlamp-api §3.4). Stages logs say `wake`
 * where classic logs say `awake`/`restless`.
 */
export const SLEEP_LEVELS: Readonly<Record<string, { value: number; representation: SleepRepresentation }>> = {
  light: { value: 3, representation: 'in_sleep' },
  deep: { value: 4, representation: 'in_sleep' },
  rem: { value: 5, representation: 'in_sleep' },
  asleep: { value: 1, representation: 'in_sleep' },
  wake: { value: 2, representation: 'in_awake' },
  awake: { value: 2, representation: 'in_awake' },
  restless: { value: 2, representation: 'in_awake' },
  unknown: { value: 0, representation: 'in_bed' },
};

/** A stage's value and representation; an unknown name counts as in bed. */
export function sleepLevel(stage: string): { value: number; representation: SleepRepresentation } {
  return SLEEP_LEVELS[stage] ?? SLEEP_LEVELS.unknown!;
}

/**
 * One `lamp.wearable_device` event per observed (device, last sync): re-observing the same sync
 * gives the same record key, a new sync a new event. Never-synced devices have nothing to say.
 */
export function deviceRecords(devices: readonly DeviceState[], zones: ZoneHistory, source: string): NormalizedRecord[] {
  const out: NormalizedRecord[] = [];
  for (const d of devices) {
    if (d.lastSyncAt === null) continue;
    out.push({
      stream: 'device',
      day: localDayAt(zones, d.lastSyncAt),
      event: {
        timestamp: d.lastSyncAt,
        sensor: LAMP_SENSORS.device,
        data: {
          value: d.batteryLevel ?? null,
          unit: '%',
          ...(d.battery !== undefined ? { battery: d.battery } : {}),
          device_type: d.type,
          device_id: d.id,
          last_sync: new Date(d.lastSyncAt).toISOString(),
          source,
        },
      },
      distinct: d.id,
    });
  }
  return out;
}
