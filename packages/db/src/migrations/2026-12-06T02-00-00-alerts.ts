import { sql, type Kysely } from 'kysely';

// Frozen once landed: later changes go in new migrations.

/**
 * Coordinator alerts: one row per (participant, rule) occurrence, open while its condition holds
 * (`closed_at` null), and the durable outbox of its outgoing webhook (`notify_*`).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('alerts')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('participant_id', 'text', (c) => c.notNull().references('participants.id').onDelete('cascade'))
    .addColumn('rule', 'text', (c) => c.notNull())
    .addColumn('idempotency_key', 'uuid', (c) => c.notNull().unique().defaultTo(sql`gen_random_uuid()`))
    .addColumn('opened_at', 'timestamptz', (c) => c.notNull())
    .addColumn('closed_at', 'timestamptz')
    .addColumn('acknowledged_at', 'timestamptz')
    .addColumn('acknowledged_by', 'text')
    .addColumn('notify_due_at', 'timestamptz')
    .addColumn('notify_attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('notify_last_error', 'text')
    .addColumn('notified_at', 'timestamptz')
    .addCheckConstraint(
      'alerts_rule',
      sql`rule in ('no_sync', 'low_battery', 'reconnect_needed', 'low_wear', 'deliveries_parked')`,
    )
    .execute();
  // One open alert per participant and rule.
  await sql`create unique index alerts_open_key on alerts (participant_id, rule) where closed_at is null`.execute(db);
  await sql`create index alerts_notify_due_idx on alerts (notify_due_at) where notified_at is null and notify_due_at is not null`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('alerts').execute();
}
