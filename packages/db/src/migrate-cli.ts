// `pnpm db:migrate` (and the compose/Kubernetes migration job): apply every pending migration.
import { z } from 'zod';
import { createLogger, envFields, loadEnv, ConfigError } from '@fitlamp/runtime';
import { createDb } from './db.ts';
import { migrateDown, migrateToLatest } from './migrate.ts';

async function main(): Promise<number> {
  let env;
  try {
    env = loadEnv(
      z.object({ DATABASE_URL: envFields.postgresUrl(), LOG_LEVEL: envFields.logLevel() }),
      process.env,
    );
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`db:migrate: configuration error: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
  const logger = createLogger({ name: 'migrate', level: env.LOG_LEVEL });
  const db = createDb(env.DATABASE_URL, { max: 1, applicationName: 'fitlamp-migrate' });
  try {
    const applied = process.argv.includes('--down') ? await migrateDown(db) : await migrateToLatest(db);
    logger.info({ applied }, applied.length ? 'migrations applied' : 'schema is up to date');
    return 0;
  } catch (error) {
    logger.error({ err: error }, 'migration failed');
    return 1;
  } finally {
    await db.destroy();
  }
}

process.exitCode = await main();
