import { z } from 'zod';
import { baseEnvSchema, checkProviderEnv, ConfigError, cryptoEnvSchema, envFields, loadEnv, providerEnvSchema, queueConsumerEnvSchema } from '@fitlamp/runtime';

export const fetcherEnvSchema = baseEnvSchema
  .extend(cryptoEnvSchema.shape)
  .extend(providerEnvSchema.shape)
  .extend(queueConsumerEnvSchema.shape)
  .extend({
    PORT: envFields.port(9092),
    HOST: z.string().default('0.0.0.0'),
    SYNC_INTERVAL_SECONDS: envFields.positiveInt(900),
    /** Poll this many times less often while the provider's webhooks deliver (poll-interval.ts); 1 = off. */
    WEBHOOK_POLL_MULTIPLIER: envFields.positiveInt(4),
    /**
     * The longest wait between two polls of a participant whose device syncs in a learned rhythm
     * (poll-interval.ts): polls back off between the device's syncs and come back just after the
     * next is expected. 6 h; set it to SYNC_INTERVAL_SECONDS to poll at a fixed interval.
     */
    POLL_MAX_INTERVAL_SECONDS: envFields.positiveInt(21_600),
    /** Complete local days before today fetched for a new participant (the window is today plus these). */
    BACKFILL_DAYS: envFields.positiveInt(30),
    /** Recent days fetched again after each device sync, to catch revisions. */
    REFETCH_DAYS: envFields.positiveInt(3),
    /**
     * Days a participant's delivered events stay in Postgres (today and these before it) before
     * retention compacts them into day totals; at least REFETCH_DAYS, so revisions are detected.
     */
    EVENT_RETENTION_DAYS: envFields.positiveInt(7),
    /** Participants synced at once by one replica. */
    FETCHER_CONCURRENCY: envFields.positiveInt(8),
    /** Requests kept back from each participant's hourly budget for fresh data. */
    RATE_BUDGET_RESERVE: z.coerce.number().int().min(0).default(5),
    /** How often the account's time zone is re-read (one request); hourly, as RADAR-base does. */
    PROFILE_CHECK_SECONDS: envFields.positiveInt(3600),
  });
export type FetcherEnv = z.infer<typeof fetcherEnvSchema>;

export function loadFetcherEnv(source: Record<string, string | undefined>): FetcherEnv {
  const env = loadEnv(fetcherEnvSchema, source);
  checkProviderEnv(env);
  if (env.EVENT_RETENTION_DAYS < env.REFETCH_DAYS) {
    throw new ConfigError(
      'EVENT_RETENTION_DAYS',
      `EVENT_RETENTION_DAYS (${env.EVENT_RETENTION_DAYS}) must be at least REFETCH_DAYS (${env.REFETCH_DAYS}): revisions of re-fetched days are detected against the delivered events kept`,
    );
  }
  return env;
}
