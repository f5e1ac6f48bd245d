export { createDb, type DbOptions } from './db.ts';
export { migrateToLatest, migrateDown, migrateToNone, migrations } from './migrate.ts';
export * from './schema.ts';
