import { sql, type Kysely } from 'kysely';

// Frozen once landed: later changes go in new migrations.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('participants')
    // The mindLAMP participant id: fitlamp's identity for a person.
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('study_id', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('provider_connections')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('participant_id', 'text', (c) => c.notNull().references('participants.id').onDelete('cascade'))
    .addColumn('provider', 'text', (c) => c.notNull().check(sql`provider in ('fitbit', 'google-health')`))
    .addColumn('status', 'text', (c) =>
      c
        .notNull()
        .check(sql`status in ('connected', 'reconnect_needed', 'needs_reconsent', 'revoked', 'disconnected')`),
    )
    .addColumn('status_reason', 'text')
    .addColumn('provider_user_id', 'text')
    // Google Health's identity maps a Google user to the legacy Fitbit user id (migration).
    .addColumn('legacy_user_id', 'text')
    // AES-256-GCM ciphertexts (v1.<keyId>.…); null once a connection is revoked or deleted.
    .addColumn('access_token_enc', 'text')
    .addColumn('refresh_token_enc', 'text')
    .addColumn('key_id', 'text')
    // Bumped on every successful refresh: the compare-and-set guard that makes refresh single-use.
    .addColumn('token_version', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('access_token_expires_at', 'timestamptz')
    .addColumn('refresh_token_expires_at', 'timestamptz')
    .addColumn('scopes', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'::text[]`))
    // null: unknown yet; false: the provider refused intraday detail (403), fall back to daily.
    .addColumn('intraday_access', 'boolean')
    .addColumn('device_last_sync_at', 'timestamptz')
    // The participant's provider rate budget as last reported (headers) or counted by fitlamp.
    .addColumn('rate_limit_remaining', 'integer')
    .addColumn('rate_limit_reset_at', 'timestamptz')
    .addColumn('connected_at', 'timestamptz')
    .addColumn('disconnected_at', 'timestamptz')
    .addColumn('last_sync_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('provider_connections_participant_provider_key', ['participant_id', 'provider'])
    .execute();
  // One provider account may feed only one participant while it holds tokens.
  await sql`create unique index provider_connections_account_key on provider_connections (provider, provider_user_id)
    where provider_user_id is not null and status in ('connected', 'reconnect_needed', 'needs_reconsent')`.execute(db);

  await db.schema
    .createTable('oauth_states')
    // SHA-256 of the state value: the value itself lives only in the participant's browser.
    .addColumn('state_hash', 'text', (c) => c.primaryKey())
    .addColumn('participant_id', 'text', (c) => c.notNull().references('participants.id').onDelete('cascade'))
    .addColumn('provider', 'text', (c) => c.notNull())
    .addColumn('code_verifier_enc', 'text', (c) => c.notNull())
    .addColumn('scopes_requested', sql`text[]`, (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('used_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('oauth_states_expires_idx').on('oauth_states').column('expires_at').execute();

  await db.schema
    .createTable('participant_time_zones')
    .addColumn('participant_id', 'text', (c) => c.notNull().references('participants.id').onDelete('cascade'))
    .addColumn('zone', 'text', (c) => c.notNull())
    // From this instant on, the participant's device used `zone` (until the next row).
    .addColumn('valid_from', 'timestamptz', (c) => c.notNull())
    .addColumn('source', 'text', (c) => c.notNull())
    .addColumn('recorded_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('participant_time_zones_pkey', ['participant_id', 'valid_from'])
    .execute();

  await db.schema
    .createTable('sync_cursors')
    .addColumn('participant_id', 'text', (c) => c.notNull().references('participants.id').onDelete('cascade'))
    .addColumn('stream', 'text', (c) => c.notNull())
    .addColumn('next_due_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('last_attempt_at', 'timestamptz')
    .addColumn('last_success_at', 'timestamptz')
    .addColumn('last_error', 'text')
    // Provider-specific progress (e.g. a page token or the newest log id seen).
    .addColumn('state', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('sync_cursors_pkey', ['participant_id', 'stream'])
    .execute();
  await db.schema.createIndex('sync_cursors_due_idx').on('sync_cursors').column('next_due_at').execute();

  await db.schema
    .createTable('day_ledger')
    .addColumn('participant_id', 'text', (c) => c.notNull().references('participants.id').onDelete('cascade'))
    .addColumn('stream', 'text', (c) => c.notNull())
    // The participant's local calendar day.
    .addColumn('day', 'date', (c) => c.notNull())
    .addColumn('status', 'text', (c) =>
      c.notNull().check(sql`status in ('settled', 'partial', 'empty', 'not_synced', 'failed')`),
    )
    .addColumn('reason', 'text')
    .addColumn('provider', 'text')
    .addColumn('records_fetched', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('records_delivered', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('content_hash', 'text')
    .addColumn('fetch_count', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('fetched_at', 'timestamptz')
    // The device's last sync time when this day was fetched: re-fetch only after a newer sync.
    .addColumn('synced_through', 'timestamptz')
    .addColumn('settled_at', 'timestamptz')
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('day_ledger_pkey', ['participant_id', 'stream', 'day'])
    .execute();

  await db.schema
    .createTable('delivery_batches')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('participant_id', 'text', (c) => c.notNull().references('participants.id').onDelete('cascade'))
    .addColumn('status', 'text', (c) =>
      c.notNull().check(sql`status in ('sending', 'delivered', 'unknown', 'parked', 'abandoned')`),
    )
    .addColumn('event_count', 'integer', (c) => c.notNull())
    .addColumn('bytes', 'integer', (c) => c.notNull())
    .addColumn('from_ts', 'bigint', (c) => c.notNull())
    .addColumn('to_ts', 'bigint', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('last_error', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('completed_at', 'timestamptz')
    .execute();
  await db.schema
    .createIndex('delivery_batches_open_idx')
    .on('delivery_batches')
    .columns(['participant_id', 'status'])
    .execute();

  await db.schema
    .createTable('records')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    // Deterministic: participant, sensor, timestamp and what distinguishes the record.
    .addColumn('record_key', 'text', (c) => c.notNull().unique())
    .addColumn('participant_id', 'text', (c) => c.notNull().references('participants.id').onDelete('cascade'))
    .addColumn('stream', 'text', (c) => c.notNull())
    .addColumn('day', 'date', (c) => c.notNull())
    .addColumn('sensor', 'text', (c) => c.notNull())
    // mindLAMP's timestamp: UTC epoch milliseconds.
    .addColumn('timestamp', 'bigint', (c) => c.notNull())
    .addColumn('duration', 'bigint')
    .addColumn('data', 'jsonb', (c) => c.notNull())
    .addColumn('data_hash', 'text', (c) => c.notNull())
    // Hash of the version mindLAMP received; differs from data_hash when the provider revised it later.
    .addColumn('delivered_hash', 'text')
    .addColumn('revision', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('pending', 'sending', 'delivered', 'parked')`))
    .addColumn('batch_id', 'bigint', (c) => c.references('delivery_batches.id'))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('delivered_at', 'timestamptz')
    .execute();
  await sql`create index records_pending_idx on records (participant_id, timestamp) where status = 'pending'`.execute(db);
  await sql`create index records_undelivered_idx on records (updated_at) where status in ('pending', 'sending')`.execute(db);
  await db.schema.createIndex('records_batch_idx').on('records').column('batch_id').execute();
  await db.schema.createIndex('records_day_idx').on('records').columns(['participant_id', 'stream', 'day']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of [
    'records',
    'delivery_batches',
    'day_ledger',
    'sync_cursors',
    'participant_time_zones',
    'oauth_states',
    'provider_connections',
    'participants',
  ]) {
    await db.schema.dropTable(table).ifExists().execute();
  }
}
