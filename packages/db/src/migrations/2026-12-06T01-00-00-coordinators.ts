import { sql, type Kysely } from 'kysely';

// Frozen once landed: later changes go in new migrations.

/**
 * Coordinator credentials scoped to studies: besides the global ADMIN_TOKEN, an operator issues
 * a name and token per coordinator (`pnpm fitlamp coordinator add`); only the token's hash is kept.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('coordinators')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('token_hash', 'text', (c) => c.notNull())
    .addColumn('study_ids', sql`text[]`, (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addCheckConstraint('coordinators_studies', sql`cardinality(study_ids) > 0`)
    .execute();
  await db.schema.createIndex('participants_study_idx').on('participants').column('study_id').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('participants_study_idx').execute();
  await db.schema.dropTable('coordinators').execute();
}
