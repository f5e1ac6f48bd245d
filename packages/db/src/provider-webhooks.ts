import { sql, type Kysely } from 'kysely';
import type { Database, ProviderName } from './schema.ts';

/**
 * `provider_webhooks`: one row per provider whose webhooks have delivered a notification whose
 * signature verified. `last_verified_at` (the database's clock) says the webhooks are alive, so
 * the fetcher polls that provider's participants less often while it is recent; `notifications`
 * counts them. Written by {@link recordWebhookVerified} (gateway), read by
 * {@link findWebhookLastVerified} (fetcher).
 */

/** Records `count` notifications from `provider` whose signature verified, now. */
export async function recordWebhookVerified(db: Kysely<Database>, provider: ProviderName, count: number): Promise<void> {
  await db
    .insertInto('provider_webhooks')
    .values({ provider, last_verified_at: sql<Date>`now()`, notifications: count })
    .onConflict((oc) =>
      oc.column('provider').doUpdateSet({
        last_verified_at: sql<Date>`now()`,
        notifications: sql<string>`provider_webhooks.notifications + ${count}`,
        updated_at: sql<Date>`now()`,
      }),
    )
    .execute();
}

/** When `provider`'s webhooks last delivered a verified notification, if ever. */
export async function findWebhookLastVerified(db: Kysely<Database>, provider: ProviderName): Promise<Date | undefined> {
  const row = await db.selectFrom('provider_webhooks').select('last_verified_at').where('provider', '=', provider).executeTakeFirst();
  return row?.last_verified_at;
}
