import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '@fitlamp/testing';
import { createDb } from './db.ts';

describe('createDb', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(async () => {
    await t.drop();
  });

  it('survives Postgres ending a connection that is checked out between queries (held transaction)', async () => {
    const db = createDb(t.url, { max: 2, applicationName: 'fitlamp-held' });
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let pid!: number;
    const transaction = db.transaction().execute(async (trx) => {
      pid = (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx)).rows[0]!.pid;
      // Idle in transaction, as the scheduler is while it holds its lock through an interval.
      await held;
      await sql`select 1`.execute(trx);
    });
    while (pid === undefined) await new Promise((r) => setTimeout(r, 20));
    const { rows } = await sql<{ ok: boolean }>`select pg_terminate_backend(${pid}) as ok`.execute(t.db);
    expect(rows[0]!.ok).toBe(true);
    // The socket closes while nobody is querying on it: an 'error' event nobody listened for would
    // end the process here.
    for (let i = 0; i < 50 && (await sql<{ n: string }>`select count(*) as n from pg_stat_activity where pid = ${pid}`.execute(t.db)).rows[0]!.n !== '0'; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 200));
    release();
    await expect(transaction).rejects.toThrow();
    // The dead connection is not handed out again.
    expect((await sql<{ one: number }>`select 1 as one`.execute(db)).rows).toEqual([{ one: 1 }]);
    await db.destroy();
  });
});
