import { sql, type Kysely } from 'kysely';

// Frozen once landed: later changes go in new migrations.

/**
 * Delivered batches leave with their events (issue 13: storage bounded by participants × the
 * retention window, not by deliveries ever made; packages/db/src/outbox.ts, compactDeliveredEvents):
 * - a delivered chunk no longer points at its batch (`batch_id` names the batch of a `sending` or
 *   `parked` chunk only), so a delivered batch is referenced by nothing once settled;
 * - `event_chunks_batch_idx` indexes the chunks that do point at a batch: the lamp-writer finds a
 *   batch's chunks through it, and deleting a batch checks the foreign key through it instead of
 *   reading the whole table. Partial, so it holds only chunks in flight or parked.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`update event_chunks set batch_id = null where status = 'delivered' and batch_id is not null`.execute(db);
  await sql`create index event_chunks_batch_idx on event_chunks (batch_id) where batch_id is not null`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index event_chunks_batch_idx`.execute(db);
}
