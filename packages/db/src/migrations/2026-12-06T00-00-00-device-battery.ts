import type { Kysely } from 'kysely';

// Frozen once landed: later changes go in new migrations.

/**
 * The battery level (percent) of the participant's most recently synced device, as the provider
 * reported it with the device list (Fitbit `devices.json` `batteryLevel`, Google Health
 * `pairedDevices` `batteryLevel`), for the coordinator's overview and the low-battery alert.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('provider_connections').addColumn('device_battery_level', 'smallint').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('provider_connections').dropColumn('device_battery_level').execute();
}
