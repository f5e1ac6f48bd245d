import { sql, type Kysely } from 'kysely';

// Frozen once landed: later changes go in new migrations.

/**
 * When each provider's webhooks last delivered a verified notification: the fetcher polls less
 * often while they are healthy (polling stays on as the safety net).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('provider_webhooks')
    .addColumn('provider', 'text', (c) => c.primaryKey().check(sql`provider in ('fitbit', 'google-health')`))
    .addColumn('last_verified_at', 'timestamptz', (c) => c.notNull())
    .addColumn('notifications', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('provider_webhooks').execute();
}
