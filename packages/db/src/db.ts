import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { Database } from './schema.ts';

// `date` columns stay YYYY-MM-DD strings: a participant's local day is not an instant, and
// turning it into a JS Date would shift it by the server's offset.
pg.types.setTypeParser(pg.types.builtins.DATE, (value: string) => value);

export interface DbOptions {
  /** Pool size; each fetcher or writer replica needs roughly its concurrency plus two. */
  max?: number;
  applicationName?: string;
}

/** A Kysely instance on a pg pool. Close it with `db.destroy()`. */
export function createDb(connectionString: string, options: DbOptions = {}): Kysely<Database> {
  const pool = new pg.Pool({
    connectionString,
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'fitlamp',
    connectionTimeoutMillis: 5_000,
  });
  // An idle client that loses its connection emits 'error' on the pool; without a listener that
  // would crash the process. The next query gets a fresh client.
  pool.on('error', () => {});
  // A checked-out client has no pool listener: Postgres ending its connection between two queries
  // (a transaction held open, pg_terminate_backend, a restart) would emit an unheard 'error' and
  // end the process. The next query on it fails instead, and the pool discards it on release.
  pool.on('connect', (client) => client.on('error', () => {}));
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}

/** The readiness check of every service: one round trip to Postgres. Throws when it cannot. */
export async function pingDatabase(db: Kysely<Database>): Promise<void> {
  await sql`select 1`.execute(db);
}
