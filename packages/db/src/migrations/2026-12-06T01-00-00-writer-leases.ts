import { sql, type Kysely } from 'kysely';

// Frozen once landed: later changes go in new migrations.

/**
 * One lamp-writer per participant at a time: a lease row per participant, held by one running
 * deliver job until it releases it or `expires_at` passes (its process died). See
 * `writer-leases.ts`.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('writer_leases')
    .addColumn('participant_id', 'text', (c) => c.primaryKey().references('participants.id').onDelete('cascade'))
    .addColumn('holder', 'text', (c) => c.notNull())
    .addColumn('acquired_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('writer_leases').execute();
}
