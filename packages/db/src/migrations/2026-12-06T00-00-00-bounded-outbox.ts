import { sql, type Kysely } from 'kysely';

// Frozen once landed: later changes go in new migrations.

/** Delivered days younger than this keep their events in Postgres after the upgrade (the default EVENT_RETENTION_DAYS). */
const KEEP_DELIVERED_DAYS = 7;

/**
 * Bounded storage (issue 13). The outbox stops being one row per event kept forever:
 * - `event_chunks`: one row per participant × stream × day × seq holding that chunk's events as
 *   one lz4-compressed jsonb array, with one status for all of them. Delivered chunks leave once
 *   their day is older than the retention window (packages/db/src/outbox.ts).
 * - `day_summaries`: per participant-day totals (wear minutes, steps, sleep minutes), kept forever.
 * - `day_ledger` gains `day_total` (the stream's total for the day), `revised_events` and
 *   `events_compacted_at`.
 * Existing `records` become chunks (undelivered ones, and delivered ones of the last
 * {@link KEEP_DELIVERED_DAYS} days), fill the summaries, and the table goes.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('event_chunks')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('participant_id', 'text', (c) => c.notNull().references('participants.id').onDelete('cascade'))
    .addColumn('stream', 'text', (c) => c.notNull())
    .addColumn('day', 'date', (c) => c.notNull())
    .addColumn('seq', 'integer', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('pending', 'sending', 'delivered', 'parked')`))
    .addColumn('batch_id', 'bigint', (c) => c.references('delivery_batches.id'))
    .addColumn('event_count', 'integer', (c) => c.notNull())
    // The earliest event's timestamp (UTC epoch ms): delivery goes in time order.
    .addColumn('from_ts', 'bigint', (c) => c.notNull())
    .addColumn('content_hash', 'text', (c) => c.notNull())
    // [{k: key, t: timestamp, s: sensor, d: duration, v: data, h: hash}, ...] in time order.
    .addColumn('events', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('delivered_at', 'timestamptz')
    .addUniqueConstraint('event_chunks_day_seq_key', ['participant_id', 'stream', 'day', 'seq'])
    .execute();
  await sql`alter table event_chunks alter column events set compression lz4`.execute(db);
  await sql`create index event_chunks_open_idx on event_chunks (participant_id, status, from_ts) where status <> 'delivered'`.execute(db);

  await db.schema
    .createTable('day_summaries')
    .addColumn('participant_id', 'text', (c) => c.notNull().references('participants.id').onDelete('cascade'))
    .addColumn('day', 'date', (c) => c.notNull())
    .addColumn('wear_minutes', 'integer')
    .addColumn('steps', 'integer')
    .addColumn('sleep_minutes', 'integer')
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('day_summaries_pkey', ['participant_id', 'day'])
    .execute();

  await db.schema
    .alterTable('day_ledger')
    .addColumn('day_total', 'double precision')
    .addColumn('revised_events', 'integer', (c) => c.notNull().defaultTo(0))
    // When retention deleted the day's delivered events: a later fetch can no longer diff it.
    .addColumn('events_compacted_at', 'timestamptz')
    .execute();

  // Per-stream day totals and summaries from every record, delivered or not, old or recent.
  await sql`
    with totals as (
      select participant_id, stream, day,
        case stream
          when 'heart_rate' then count(*)::double precision
          when 'steps' then sum((data->>'value')::double precision)
          when 'sleep' then coalesce(sum(duration) filter (where data->>'representation' = 'in_sleep'), 0) / 60000.0
        end as total
      from records where stream in ('heart_rate', 'steps', 'sleep')
      group by participant_id, stream, day
    )
    update day_ledger l set day_total = t.total
    from totals t where l.participant_id = t.participant_id and l.stream = t.stream and l.day = t.day`.execute(db);
  await sql`
    insert into day_summaries (participant_id, day, wear_minutes, steps, sleep_minutes)
    select participant_id, day,
      round(max(day_total) filter (where stream = 'heart_rate'))::int,
      round(max(day_total) filter (where stream = 'steps'))::int,
      round(max(day_total) filter (where stream = 'sleep'))::int
    from day_ledger where stream in ('heart_rate', 'steps', 'sleep') and day_total is not null
    group by participant_id, day`.execute(db);

  await sql`
    update day_ledger l set events_compacted_at = now()
    from (select distinct participant_id, stream, day from records
          where status = 'delivered' and day < current_date - ${KEEP_DELIVERED_DAYS}::int) r
    where l.participant_id = r.participant_id and l.stream = r.stream and l.day = r.day`.execute(db);

  // One chunk per participant × stream × day × status × batch, of the records kept.
  await sql`
    insert into event_chunks (participant_id, stream, day, seq, status, batch_id, event_count, from_ts, content_hash, events, created_at, updated_at, delivered_at)
    select participant_id, stream, day,
      row_number() over (partition by participant_id, stream, day order by min(id))::int,
      status, batch_id, count(*), min(timestamp),
      md5(string_agg(record_key || ':' || data_hash, ',' order by timestamp, record_key)),
      jsonb_agg(jsonb_build_object('k', record_key, 't', timestamp, 's', sensor, 'd', duration, 'v', data,
                                   'h', coalesce(delivered_hash, data_hash)) order by timestamp, record_key),
      min(created_at), max(updated_at), max(delivered_at)
    from records
    where status <> 'delivered' or day >= current_date - ${KEEP_DELIVERED_DAYS}::int
    group by participant_id, stream, day, status, batch_id`.execute(db);

  await db.schema.dropTable('records').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('records')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('record_key', 'text', (c) => c.notNull().unique())
    .addColumn('participant_id', 'text', (c) => c.notNull().references('participants.id').onDelete('cascade'))
    .addColumn('stream', 'text', (c) => c.notNull())
    .addColumn('day', 'date', (c) => c.notNull())
    .addColumn('sensor', 'text', (c) => c.notNull())
    .addColumn('timestamp', 'bigint', (c) => c.notNull())
    .addColumn('duration', 'bigint')
    .addColumn('data', 'jsonb', (c) => c.notNull())
    .addColumn('data_hash', 'text', (c) => c.notNull())
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
  // Compacted events are gone from Postgres (mindLAMP, and the optional archive, have them).
  await sql`
    insert into records (record_key, participant_id, stream, day, sensor, timestamp, duration, data, data_hash,
                         delivered_hash, status, batch_id, created_at, updated_at, delivered_at)
    select e->>'k', c.participant_id, c.stream, c.day, e->>'s', (e->>'t')::bigint, (e->>'d')::bigint, e->'v', e->>'h',
      case when c.status = 'delivered' then e->>'h' end, c.status, c.batch_id, c.created_at, c.updated_at, c.delivered_at
    from event_chunks c cross join lateral jsonb_array_elements(c.events) e
    on conflict (record_key) do nothing`.execute(db);
  await db.schema.dropTable('event_chunks').execute();
  await db.schema.dropTable('day_summaries').execute();
  await db.schema.alterTable('day_ledger').dropColumn('day_total').dropColumn('revised_events').dropColumn('events_compacted_at').execute();
}
