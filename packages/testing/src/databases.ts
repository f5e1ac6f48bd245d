import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createDb, migrateToLatest, type Database } from '@fitlamp/db';
import type { Kysely } from 'kysely';

/** Where test databases live: the machine's Postgres unless TEST_DATABASE_URL says otherwise. */
export const adminDatabaseUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const testRedisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
/**
 * The migrated template test databases are cloned from. Each test run makes its own (globalSetup
 * names it in FITLAMP_TEST_TEMPLATE, which the test workers inherit), so two runs on one machine
 * never drop each other's template.
 */
export const TEMPLATE_DATABASE = process.env.FITLAMP_TEST_TEMPLATE ?? 'fitlamp_test_template';

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

/** Creates a migrated template database (vitest globalSetup runs this once per run). */
export async function prepareTemplateDatabase(name: string = TEMPLATE_DATABASE): Promise<void> {
  await withAdmin(async (client) => {
    await client.query(`drop database if exists ${name} with (force)`);
    await client.query(`create database ${name}`);
  });
  const db = createDb(databaseUrl(name), { max: 1 });
  try {
    await migrateToLatest(db);
  } finally {
    await db.destroy();
  }
}

/** Drops a template made by {@link prepareTemplateDatabase}. */
export async function dropTemplateDatabase(name: string): Promise<void> {
  await withAdmin((client) => client.query(`drop database if exists ${name} with (force)`));
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
