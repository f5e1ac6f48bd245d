/**
 * Init container of every fitlamp Deployment (mounted from the ConfigMap `fitlamp-wait-for-schema`,
 * run by the `fitlamp/migrate` image of the release being deployed):
 *
 *   node /opt/fitlamp/wait-for-schema.mjs [--once]
 *
 * Waits until every migration this image ships is recorded in Postgres (Kysely's
 * `kysely_migration` table, written by the `fitlamp-migrate` Job), then exits 0, so no service
 * starts taking work on an older schema. It only reads: the Job is the one place that changes the
 * schema. A database ahead of the image (newer migrations applied, e.g. an old pod restarting
 * mid-rollout) passes. Gives up after WAIT_FOR_SCHEMA_TIMEOUT_SECONDS (default 600) with exit 1,
 * so a forgotten or failed Job shows as Init:Error naming the missing migrations; `--once` checks
 * once (exit 1 if anything is pending). WAIT_FOR_SCHEMA_INTERVAL_SECONDS (default 3) between checks.
 */
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

// Plain JavaScript: the image runs node, no tsx. Its WORKDIR (/app) holds the built migration list
// (dist/migrations.js) and a production install with pg: the same release as the Job's.
const root = resolve(process.env.FITLAMP_ROOT ?? process.cwd());
/** @type {{ migrations: Record<string, unknown> }} */
const { migrations } = await import(pathToFileURL(join(root, 'dist/migrations.js')).href);
/** @type {typeof import('pg')} */
const pg = createRequire(join(root, 'package.json'))('pg');

const expected = Object.keys(migrations).sort();
const once = process.argv.includes('--once');
const timeoutMs = Number(process.env.WAIT_FOR_SCHEMA_TIMEOUT_SECONDS ?? 600) * 1000;
const deadline = Date.now() + timeoutMs;
const intervalMs = Number(process.env.WAIT_FOR_SCHEMA_INTERVAL_SECONDS ?? 3) * 1000;

/** @param {string} msg */
function log(msg) {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), name: 'wait-for-schema', msg })}\n`);
}

/**
 * The names of the image's migrations not yet applied, or why the database could not be asked.
 * @returns {Promise<string[] | Error>}
 */
async function pending() {
  const client = new pg.Client({ connectionString: process.env.DATABASE_URL, connectionTimeoutMillis: 5_000 });
  client.on('error', () => {});
  try {
    await client.connect();
    /** @type {{ rows: Array<{ name: string }> }} */
    const { rows } = await client.query('select name from kysely_migration');
    const applied = new Set(rows.map((r) => r.name));
    return expected.filter((name) => !applied.has(name));
  } catch (error) {
    // 42P01: no kysely_migration table yet, i.e. nothing applied.
    if (/** @type {{ code?: string }} */ (error).code === '42P01') return expected;
    return error instanceof Error ? error : new Error(String(error));
  } finally {
    await client.end().catch(() => {});
  }
}

/** @returns {Promise<number>} */
async function main() {
  if (!process.env.DATABASE_URL) {
    process.stderr.write('wait-for-schema: configuration error: DATABASE_URL is required but not set\n');
    return 1;
  }
  let last = '';
  for (;;) {
    const result = await pending();
    if (Array.isArray(result) && result.length === 0) {
      log(`schema is at ${expected.at(-1) ?? '(no migrations)'}`);
      return 0;
    }
    const status = Array.isArray(result)
      ? `waiting for the fitlamp-migrate Job: ${result.length} migration(s) pending: ${result.join(', ')}`
      : `cannot read the schema version yet: ${result.message}`;
    if (status !== last) log(status);
    last = status;
    if (once || Date.now() >= deadline) {
      process.stderr.write(`wait-for-schema: ${status}\n`);
      return 1;
    }
    await sleep(intervalMs);
  }
}

process.exitCode = await main();
