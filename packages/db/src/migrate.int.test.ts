import { Migrator, sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '@fitlamp/testing';
import { migrateDown, migrateToLatest, migrateToNone, migrations } from './index.ts';

const TABLES = [
  'day_ledger',
  'delivery_batches',
  'oauth_states',
  'participant_time_zones',
  'participants',
  'provider_connections',
  'records',
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

  it('enforces one deterministic key per record and one account per participant', async () => {
    await t.db.insertInto('participants').values([{ id: 'U1' }, { id: 'U2' }]).execute();
    const record = {
      record_key: 'U1|lamp.steps|1700000000000',
      participant_id: 'U1',
      stream: 'steps',
      day: '2026-11-20',
      sensor: 'lamp.steps',
      timestamp: 1_700_000_000_000,
      data: JSON.stringify({ value: 10 }),
      data_hash: 'h',
      status: 'pending' as const,
    };
    await t.db.insertInto('records').values(record).execute();
    await expect(t.db.insertInto('records').values(record).execute()).rejects.toThrow(/records_record_key_key/);
    const row = await t.db.selectFrom('records').select(['day', 'timestamp']).executeTakeFirstOrThrow();
    expect(row.day).toBe('2026-11-20');

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
