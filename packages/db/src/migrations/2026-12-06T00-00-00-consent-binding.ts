import type { Kysely } from 'kysely';

// Frozen once landed: later changes go in new migrations.

/**
 * A consent in progress is bound to the browser that started it and to the link that started it:
 * - `browser_nonce_hash`: SHA-256 of the nonce in the browser's consent cookie; the callback
 *   refuses a state whose cookie does not match (RFC 9700 §4.7.1). Rows from before the upgrade
 *   have none, and are refused: they expire within 10 minutes anyway.
 * - `link_issued_at`: when the enrollment link that started it was issued (`null`: unknown, an
 *   unsigned or older link). Only a link issued after a connection may replace its account.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('oauth_states')
    .addColumn('browser_nonce_hash', 'text')
    .addColumn('link_issued_at', 'timestamptz')
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('oauth_states').dropColumn('browser_nonce_hash').dropColumn('link_issued_at').execute();
}
