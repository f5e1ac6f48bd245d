import { sql, type Kysely } from 'kysely';

// Frozen once landed: later changes go in new migrations.

/**
 * `day_ledger` and `day_summaries` keep a row per participant-day forever, and the rows of the
 * last few days are rewritten at every sync (the fetch watermark, delivered counts, totals). With
 * Postgres' default autovacuum trigger (dead rows > 50 + 20 % of the table), the dead versions
 * allowed to wait for VACUUM grow with the table, that is with the study's length: the heap
 * carries up to a fifth of history as debt, and storage grows faster than the rows kept. A fixed
 * trigger bounds the debt by the rewrites of a few hours instead. Vacuuming that often stays
 * cheap: the pages of days no longer rewritten are all-visible, and VACUUM skips them.
 */
const TABLES = ['day_ledger', 'day_summaries'] as const;

export async function up(db: Kysely<any>): Promise<void> {
  for (const table of TABLES) {
    await sql`alter table ${sql.table(table)} set (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000)`.execute(db);
  }
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of TABLES) {
    await sql`alter table ${sql.table(table)} reset (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold)`.execute(db);
  }
}
