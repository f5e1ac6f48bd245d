import type { Kysely } from 'kysely';

// Frozen once landed: later changes go in new migrations.

/**
 * Corrections of revised additive events (issue 16 item 5, outbox.ts): each ledger day keeps how
 * many of its delivered events received a correction event (`corrected_events`: minutes, for
 * steps) and the net difference the corrections carry (`correction_delta`: steps, or active zone
 * minutes), so a coordinator knows which days changed after delivery and by how much.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('day_ledger')
    .addColumn('corrected_events', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('correction_delta', 'double precision', (c) => c.notNull().defaultTo(0))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('day_ledger').dropColumn('corrected_events').dropColumn('correction_delta').execute();
}
