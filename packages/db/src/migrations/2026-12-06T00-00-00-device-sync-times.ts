import { sql, type Kysely } from 'kysely';

// Frozen once landed: later changes go in new migrations.

/**
 * The recent device syncs the provider reported, oldest first (at most
 * DEVICE_SYNC_HISTORY of them): the fetcher learns each participant's sync rhythm from them and
 * polls around it. Filled from now on; an existing `device_last_sync_at` seeds it.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('provider_connections')
    .addColumn('device_sync_times', sql`timestamptz[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
    .execute();
  await sql`update provider_connections set device_sync_times = array[device_last_sync_at] where device_last_sync_at is not null`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('provider_connections').dropColumn('device_sync_times').execute();
}
