import { Migrator, sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '@fitlamp/testing';
import { findDayTotals, migrateDown, migrateToLatest, migrateToNone, migrations } from './index.ts';

const TABLES = [
  'day_ledger',
  'day_summaries',
  'delivery_batches',
  'event_chunks',
  'oauth_states',
  'participant_time_zones',
  'participants',
  'provider_connections',
  'sync_cursors',
];

async function tables(t: TestDatabase): Promise<string[]> {
  const { rows } = await sql<{ table_name: string }>`
    select table_name from information_schema.tables
    where table_schema = 'public' and table_name not like 'kysely_%' order by table_name`.execute(t.db);
  return rows.map((r) => r.table_name);
}

describe('migrations', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase({ migrated: false });
  });
  afterAll(async () => {
    await t.drop();
  });

  it('go up, all the way down, and up again on an empty database', async () => {
    expect(await tables(t)).toEqual([]);
    expect(await migrateToLatest(t.db)).toEqual(Object.keys(migrations));
    const latest = await tables(t);
    expect(latest).toEqual(expect.arrayContaining(TABLES));
    // Already at latest: nothing more to apply.
    expect(await migrateToLatest(t.db)).toEqual([]);
    await migrateToNone(t.db);
    expect(await tables(t)).toEqual([]);
    await migrateToLatest(t.db);
    expect(await tables(t)).toEqual(latest);
    const last = Object.keys(migrations).at(-1)!;
    expect(await migrateDown(t.db)).toEqual([last]);
    await migrateToLatest(t.db);
    expect(await tables(t)).toEqual(latest);
  });

  it('gives the tables kept forever a fixed autovacuum trigger, and indexes the chunks that name a batch', async () => {
    await migrateToLatest(t.db);
    const { rows } = await sql<{ relname: string; reloptions: string[] | null }>`
      select relname, reloptions from pg_class where relname in ('day_ledger', 'day_summaries', 'event_chunks') order by relname`.execute(t.db);
    expect(rows).toEqual([
      { relname: 'day_ledger', reloptions: ['autovacuum_vacuum_scale_factor=0', 'autovacuum_vacuum_threshold=2000'] },
      { relname: 'day_summaries', reloptions: ['autovacuum_vacuum_scale_factor=0', 'autovacuum_vacuum_threshold=2000'] },
      { relname: 'event_chunks', reloptions: null },
    ]);
    const index = await sql<{ indexdef: string }>`select indexdef from pg_indexes where indexname = 'event_chunks_batch_idx'`.execute(t.db);
    expect(index.rows[0]?.indexdef).toMatch(/\(batch_id\) WHERE \(batch_id IS NOT NULL\)/);
  });

  it('enforces one sequence number per chunk of a day and one account per participant', async () => {
    await t.db.insertInto('participants').values([{ id: 'U1' }, { id: 'U2' }]).execute();
    const chunk = {
      participant_id: 'U1',
      stream: 'steps',
      day: '2026-11-20',
      seq: 1,
      status: 'pending' as const,
      event_count: 1,
      from_ts: 1_700_000_000_000,
      content_hash: 'h',
      events: JSON.stringify([{ k: 'U1|lamp.steps|1700000000000|', t: 1_700_000_000_000, s: 'lamp.steps', d: null, v: { value: 10 }, h: 'h' }]),
    };
    await t.db.insertInto('event_chunks').values(chunk).execute();
    await expect(t.db.insertInto('event_chunks').values(chunk).execute()).rejects.toThrow(/event_chunks_day_seq_key/);
    const row = await t.db.selectFrom('event_chunks').select(['day', 'from_ts', 'events']).executeTakeFirstOrThrow();
    expect(row.day).toBe('2026-11-20');
    expect(row.events[0]!.v).toEqual({ value: 10 });
    const { rows } = await sql<{ compression: string }>`
      select attcompression as compression from pg_attribute where attrelid = 'event_chunks'::regclass and attname = 'events'`.execute(t.db);
    expect(rows[0]!.compression).toBe('l');

    const connection = { provider: 'fitbit' as const, status: 'connected' as const, provider_user_id: 'ABC123' };
    await t.db.insertInto('provider_connections').values({ ...connection, participant_id: 'U1' }).execute();
    await expect(
      t.db.insertInto('provider_connections').values({ ...connection, participant_id: 'U2' }).execute(),
    ).rejects.toThrow(/provider_connections_account_key/);
    await expect(
      t.db
        .insertInto('provider_connections')
        .values({ ...connection, participant_id: 'U2', provider_user_id: 'OTHER', status: 'bogus' as never })
        .execute(),
    ).rejects.toThrow(/check constraint/);
  });
});

describe('migration 2026-11-27T00-00-00-profile-checked-at', () => {
  let t: TestDatabase;
  const migrator = () => new Migrator({ db: t.db, provider: { getMigrations: async () => migrations } });
  beforeAll(async () => {
    t = await createTestDatabase({ migrated: false });
  });
  afterAll(async () => {
    await t.drop();
  });

  it('moves the profile-check time out of the device cursor into the connection, and back down', async () => {
    expect((await migrator().migrateTo('2026-11-26T02-00-00-provider-webhooks')).error).toBeUndefined();
    const db = t.db as unknown as Kysely<any>;
    await db.insertInto('participants').values([{ id: 'U1' }, { id: 'U2' }]).execute();
    await db
      .insertInto('provider_connections')
      .values([
        { participant_id: 'U1', provider: 'fitbit', status: 'connected' },
        { participant_id: 'U2', provider: 'fitbit', status: 'connected' },
      ])
      .execute();
    const checkedAt = Date.parse('2026-11-20T08:30:00.123Z');
    await db
      .insertInto('sync_cursors')
      .values([
        { participant_id: 'U1', stream: 'device', state: JSON.stringify({ profileCheckedAt: checkedAt, other: 1 }) },
        { participant_id: 'U1', stream: 'steps', state: JSON.stringify({}) },
        { participant_id: 'U2', stream: 'device', state: JSON.stringify({}) },
      ])
      .execute();

    expect((await migrator().migrateTo('2026-11-27T00-00-00-profile-checked-at')).error).toBeUndefined();
    const connections = await t.db.selectFrom('provider_connections').select(['participant_id', 'profile_checked_at']).orderBy('participant_id').execute();
    expect(connections).toEqual([
      { participant_id: 'U1', profile_checked_at: new Date(checkedAt) },
      { participant_id: 'U2', profile_checked_at: null },
    ]);
    const device = await t.db.selectFrom('sync_cursors').select(['participant_id', 'state']).where('stream', '=', 'device').orderBy('participant_id').execute();
    expect(device).toEqual([
      { participant_id: 'U1', state: { other: 1 } },
      { participant_id: 'U2', state: {} },
    ]);

    expect((await migrator().migrateTo('2026-11-26T02-00-00-provider-webhooks')).error).toBeUndefined();
    const restored = await db.selectFrom('sync_cursors').select(['participant_id', 'state']).where('stream', '=', 'device').orderBy('participant_id').execute();
    expect(restored).toEqual([
      { participant_id: 'U1', state: { other: 1, profileCheckedAt: checkedAt } },
      { participant_id: 'U2', state: {} },
    ]);
  });
});

describe('migration 2026-12-06T00-00-00-bounded-outbox', () => {
  let t: TestDatabase;
  const migrator = () => new Migrator({ db: t.db, provider: { getMigrations: async () => migrations } });
  beforeAll(async () => {
    t = await createTestDatabase({ migrated: false });
  });
  afterAll(async () => {
    await t.drop();
  });

  it('turns records into chunks and day summaries, drops old delivered ones, and restores records going down', async () => {
    expect((await migrator().migrateTo('2026-11-27T00-00-00-profile-checked-at')).error).toBeUndefined();
    const db = t.db as unknown as Kysely<any>;
    await db.insertInto('participants').values([{ id: 'U1' }]).execute();
    const recent = new Date(Date.now() - 2 * 86_400_000).toISOString().slice(0, 10);
    const old = '2025-01-10';
    const batch = await db
      .insertInto('delivery_batches')
      .values({ participant_id: 'U1', status: 'parked', event_count: 1, bytes: 10, from_ts: 5, to_ts: 5, last_error: '400' })
      .returning('id')
      .executeTakeFirstOrThrow();
    const rec = (key: string, stream: string, day: string, timestamp: number, data: object, status: string, extra: object = {}) => ({
      record_key: key,
      participant_id: 'U1',
      stream,
      day,
      sensor: `lamp.${stream}`,
      timestamp,
      data: JSON.stringify(data),
      data_hash: `h-${key}`,
      status,
      ...extra,
    });
    await db
      .insertInto('records')
      .values([
        // An old delivered day: leaves Postgres, its totals stay.
        rec('s1', 'steps', old, 1, { value: 100 }, 'delivered', { delivered_hash: 'h-s1' }),
        rec('s2', 'steps', old, 2, { value: 50 }, 'delivered', { delivered_hash: 'h-s2' }),
        rec('h1', 'heart_rate', old, 1, { value: 60 }, 'delivered'),
        rec('h2', 'heart_rate', old, 2, { value: 61 }, 'delivered'),
        rec('h3', 'heart_rate', old, 3, { value: 62 }, 'delivered'),
        rec('z1', 'sleep', old, 4, { representation: 'in_sleep' }, 'delivered', { duration: 1_800_000 }),
        rec('z2', 'sleep', old, 5, { representation: 'in_awake' }, 'delivered', { duration: 600_000 }),
        // An old parked event: kept whatever its age.
        rec('p1', 'steps', old, 6, { value: 7 }, 'parked', { batch_id: batch.id }),
        // A recent day: delivered and pending events both kept.
        rec('r1', 'steps', recent, 10, { value: 3 }, 'delivered'),
        rec('r2', 'steps', recent, 11, { value: 4 }, 'pending'),
      ])
      .execute();
    await db
      .insertInto('day_ledger')
      .values([
        { participant_id: 'U1', stream: 'steps', day: old, status: 'settled', records_fetched: 3, records_delivered: 2 },
        { participant_id: 'U1', stream: 'heart_rate', day: old, status: 'settled', records_fetched: 3, records_delivered: 3 },
        { participant_id: 'U1', stream: 'sleep', day: old, status: 'settled', records_fetched: 2, records_delivered: 2 },
        { participant_id: 'U1', stream: 'steps', day: recent, status: 'partial', records_fetched: 2, records_delivered: 1 },
      ])
      .execute();

    expect((await migrator().migrateTo('2026-12-06T00-00-00-bounded-outbox')).error).toBeUndefined();
    const chunks = await t.db
      .selectFrom('event_chunks')
      .select(['stream', 'day', 'status', 'batch_id', 'event_count', 'events'])
      .orderBy('day')
      .orderBy('status')
      .execute();
    expect(chunks.map((c) => [c.stream, c.day, c.status, c.event_count, c.events.map((e) => e.k)])).toEqual([
      ['steps', old, 'parked', 1, ['p1']],
      ['steps', recent, 'delivered', 1, ['r1']],
      ['steps', recent, 'pending', 1, ['r2']],
    ]);
    expect(chunks[0]!.batch_id).toBe(batch.id);
    expect(chunks[2]!.events[0]).toEqual({ k: 'r2', t: 11, s: 'lamp.steps', d: null, v: { value: 4 }, h: 'h-r2' });
    // Totals come from every record, including those that left (the parked 7 steps count too).
    expect(await findDayTotals(t.db, { from: '2020-01-01', to: '2099-01-01' })).toEqual([
      { participantId: 'U1', day: old, wearMinutes: 3, steps: 157, sleepMinutes: 30 },
      { participantId: 'U1', day: recent, wearMinutes: null, steps: 7, sleepMinutes: null },
    ]);
    const ledger = await t.db.selectFrom('day_ledger').select(['stream', 'day', 'day_total']).where('day', '=', old).orderBy('stream').execute();
    expect(ledger.map((l) => [l.stream, l.day_total])).toEqual([
      ['heart_rate', 3],
      ['sleep', 30],
      ['steps', 157],
    ]);

    expect((await migrator().migrateTo('2026-11-27T00-00-00-profile-checked-at')).error).toBeUndefined();
    const restored = await db.selectFrom('records').select(['record_key', 'status', 'data', 'batch_id']).orderBy('record_key').execute();
    expect(restored).toEqual([
      { record_key: 'p1', status: 'parked', data: { value: 7 }, batch_id: batch.id },
      { record_key: 'r1', status: 'delivered', data: { value: 3 }, batch_id: null },
      { record_key: 'r2', status: 'pending', data: { value: 4 }, batch_id: null },
    ]);
  });
});
