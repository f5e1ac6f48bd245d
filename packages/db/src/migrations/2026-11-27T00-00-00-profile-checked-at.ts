import { sql, type Kysely } from 'kysely';

// Frozen once landed: later changes go in new migrations.

/**
 * When the fetcher last read the account's profile (its time zone) gets a column of its own.
 * It used to live as `profileCheckedAt` (epoch ms) in the `state` of the participant's `device`
 * sync cursor, which the scheduler also created as a placeholder to find connections without
 * cursors. The value moves to the participant's connections; the cursor keeps only sync progress.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('provider_connections').addColumn('profile_checked_at', 'timestamptz').execute();
  await sql`
    update provider_connections c
    set profile_checked_at = to_timestamp((s.state->>'profileCheckedAt')::double precision / 1000)
    from sync_cursors s
    where s.participant_id = c.participant_id and s.stream = 'device'
      and jsonb_typeof(s.state->'profileCheckedAt') = 'number'`.execute(db);
  await sql`update sync_cursors set state = state - 'profileCheckedAt' where state ? 'profileCheckedAt'`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`
    update sync_cursors s
    set state = s.state || jsonb_build_object('profileCheckedAt', floor(extract(epoch from c.checked) * 1000))
    from (
      select participant_id, max(profile_checked_at) as checked from provider_connections
      where profile_checked_at is not null group by participant_id
    ) c
    where s.participant_id = c.participant_id and s.stream = 'device'`.execute(db);
  await db.schema.alterTable('provider_connections').dropColumn('profile_checked_at').execute();
}
