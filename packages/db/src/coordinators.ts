import type { Kysely } from 'kysely';
import type { Coordinator, Database } from './schema.ts';

/**
 * `coordinators`: credentials for study coordinators, each scoped to one or more mindLAMP studies.
 * `name` is what they sign in with, `token_hash` the hash of their token (the token itself is
 * shown once, when issued, and never stored), `study_ids` the studies whose participants they see.
 */

/** Stores a new coordinator; answers false (and changes nothing) when the name is taken. */
export async function insertCoordinator(db: Kysely<Database>, input: { name: string; tokenHash: string; studyIds: readonly string[] }): Promise<boolean> {
  const row = await db
    .insertInto('coordinators')
    .values({ name: input.name, token_hash: input.tokenHash, study_ids: [...input.studyIds] })
    .onConflict((oc) => oc.column('name').doNothing())
    .returning('name')
    .executeTakeFirst();
  return row !== undefined;
}

/** The coordinator signing in as `name`, if any. */
export async function findCoordinator(db: Kysely<Database>, name: string): Promise<Coordinator | undefined> {
  return db.selectFrom('coordinators').selectAll().where('name', '=', name).executeTakeFirst();
}
