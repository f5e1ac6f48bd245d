import { existsSync } from 'node:fs';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { startPostgresServer } from './postgres-server.ts';

describe('startPostgresServer', () => {
  it('runs a cluster of its own on a free port, its WAL moving with its writes, and deletes it on stop', async () => {
    const server = await startPostgresServer();
    try {
      expect(existsSync(server.dataDir)).toBe(true);
      const client = new pg.Client({ connectionString: server.adminUrl });
      await client.connect();
      try {
        const lsn = async () => (await client.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')).rows[0]!.lsn;
        const before = await lsn();
        await client.query('create table t (v text)');
        await client.query("insert into t select repeat('x', 100) from generate_series(1, 10000)");
        const after = await lsn();
        const { rows } = await client.query<{ bytes: string }>('select pg_wal_lsn_diff($1, $2) as bytes', [after, before]);
        // 10,000 rows of ~130 bytes cannot be logged in less than their own size.
        expect(Number(rows[0]!.bytes)).toBeGreaterThan(1_000_000);
        expect(new URL(server.databaseUrl('x')).port).toBe(String(server.port));
      } finally {
        await client.end();
      }
    } finally {
      await server.stop();
    }
    expect(existsSync(server.dataDir)).toBe(false);
    await server.stop();
  }, 120_000); // initdb and a server start are slow on a loaded 2-core machine
});
