import { Migrator, type Kysely, type Migration, type MigrationResultSet } from 'kysely';
import * as initial from './migrations/2026-11-26T00-00-00-initial.ts';
import * as providerWebhooks from './migrations/2026-11-26T02-00-00-provider-webhooks.ts';
import * as profileCheckedAt from './migrations/2026-11-27T00-00-00-profile-checked-at.ts';
import * as boundedOutbox from './migrations/2026-12-06T00-00-00-bounded-outbox.ts';
import * as consentBinding from './migrations/2026-12-06T00-00-00-consent-binding.ts';
import * as deviceBattery from './migrations/2026-12-06T00-00-00-device-battery.ts';
import * as deviceSyncTimes from './migrations/2026-12-06T00-00-00-device-sync-times.ts';
import * as coordinators from './migrations/2026-12-06T01-00-00-coordinators.ts';
import * as writerLeases from './migrations/2026-12-06T01-00-00-writer-leases.ts';
import * as alerts from './migrations/2026-12-06T02-00-00-alerts.ts';
import * as revisionCorrections from './migrations/2026-12-06T03-00-00-revision-corrections.ts';
import * as batchIndex from './migrations/2026-12-06T03-30-00-batch-index.ts';
import * as ledgerAutovacuum from './migrations/2026-12-06T03-40-00-ledger-autovacuum.ts';

/**
 * Every migration, in order. Listed statically (not read from a folder) so that they bundle and
 * run the same from source, a container or a test. Names are timestamps; landed ones never change.
 */
export const migrations: Record<string, Migration> = {
  '2026-11-26T00-00-00-initial': initial,
  '2026-11-26T02-00-00-provider-webhooks': providerWebhooks,
  '2026-11-27T00-00-00-profile-checked-at': profileCheckedAt,
  '2026-12-06T00-00-00-bounded-outbox': boundedOutbox,
  '2026-12-06T00-00-00-consent-binding': consentBinding,
  '2026-12-06T00-00-00-device-battery': deviceBattery,
  '2026-12-06T00-00-00-device-sync-times': deviceSyncTimes,
  '2026-12-06T01-00-00-coordinators': coordinators,
  '2026-12-06T01-00-00-writer-leases': writerLeases,
  '2026-12-06T02-00-00-alerts': alerts,
  '2026-12-06T03-00-00-revision-corrections': revisionCorrections,
  '2026-12-06T03-30-00-batch-index': batchIndex,
  '2026-12-06T03-40-00-ledger-autovacuum': ledgerAutovacuum,
};

function createMigrator(db: Kysely<any>): Migrator {
  return new Migrator({ db, provider: { getMigrations: async () => migrations } });
}

function unwrap(result: MigrationResultSet): string[] {
  if (result.error) {
    const failed = result.results?.find((r) => r.status === 'Error');
    const cause = result.error instanceof Error ? result.error.message : String(result.error);
    throw new Error(`migration ${failed?.migrationName ?? '(unknown)'} failed: ${cause}`, { cause: result.error });
  }
  return (result.results ?? []).map((r) => r.migrationName);
}

/** Applies every pending migration; returns the names applied. */
export async function migrateToLatest(db: Kysely<any>): Promise<string[]> {
  return unwrap(await createMigrator(db).migrateToLatest());
}

/** Reverts the latest migration; returns its name (empty when none is applied). */
export async function migrateDown(db: Kysely<any>): Promise<string[]> {
  return unwrap(await createMigrator(db).migrateDown());
}

/** Reverts every migration. */
export async function migrateToNone(db: Kysely<any>): Promise<string[]> {
  const { NO_MIGRATIONS } = await import('kysely');
  return unwrap(await createMigrator(db).migrateTo(NO_MIGRATIONS));
}
