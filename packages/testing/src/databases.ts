import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createDb, migrateToLatest, type Database } from '@fitlamp/db';
import type { Kysely } from 'kysely';

/** Where test databases live: the machine's Postgres unless TEST_DATABASE_URL says otherwise. */
export const adminDatabaseUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const testRedisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
export const TEMPLATE_DATABASE = 'fitlamp_test_template';

export function databaseUrl(name: string): string {
  const url = new URL(adminDatabaseUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function withAdmin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminDatabaseUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Recreates the migrated template database (vitest globalSetup runs this once per run). */
export async function prepareTemplateDatabase(): Promise<void> {
  await withAdmin(async (client) => {
    await client.query(`drop database if exists ${TEMPLATE_DATABASE} with (force)`);
    await client.query(`create database ${TEMPLATE_DATABASE}`);
  });
  const db = createDb(databaseUrl(TEMPLATE_DATABASE), { max: 1 });
  try {
    await migrateToLatest(db);
  } finally {
    await db.destroy();
  }
}

export interface TestDatabase {
  name: string;
  url: string;
  db: Kysely<Database>;
  /** Closes the pool and drops the database. */
  drop(): Promise<void>;
}

/** A fresh database cloned from the migrated template: cheap isolation per test file. */
export async function createTestDatabase(options: { migrated?: boolean } = {}): Promise<TestDatabase> {
  const name = `fitlamp_t_${randomBytes(6).toString('hex')}`;
  await withAdmin((client) =>
    client.query(options.migrated === false ? `create database ${name}` : `create database ${name} template ${TEMPLATE_DATABASE}`),
  );
  const url = databaseUrl(name);
  const db = createDb(url, { max: 5 });
  return {
    name,
    url,
    db,
    async drop() {
      await db.destroy();
      await withAdmin((client) => client.query(`drop database if exists ${name} with (force)`));
    },
  };
}

/** A BullMQ prefix no other test uses, so tests on one Redis never see each other's jobs. */
export function uniquePrefix(label = 't'): string {
  return `fitlamp-test-${label}-${randomBytes(5).toString('hex')}`;
}
