import type { Kysely } from 'kysely';
import { findWebhookLastVerified, type Database, type ProviderName } from '@fitlamp/db';

/**
 * How long until a participant is polled again. Polling is the safety net under webhooks: while
 * the provider's webhooks are healthy (a notification verified by the gateway within
 * `healthyWindowMs`, recorded in `provider_webhooks`), the interval is `multiplier` times longer,
 * since a notification brings a targeted sync as soon as the device syncs. Without webhooks, or
 * once they fall silent, polling returns to `baseMs`.
 */
export interface PollIntervalOptions {
  baseMs: number;
  /** [4] */
  multiplier?: number;
  /** [1 h] */
  healthyWindowMs?: number;
}

/** Answers the poll interval for a provider's participants now; never throws (falls back to `baseMs`). */
export async function pollIntervalMs(db: Kysely<Database>, provider: ProviderName, options: PollIntervalOptions): Promise<number> {
  const multiplier = options.multiplier ?? 4;
  if (multiplier <= 1) return options.baseMs;
  try {
    const lastVerified = await findWebhookLastVerified(db, provider);
    // Real time on both sides: the gateway stamps with Postgres now(), never a simulated clock.
    const healthy = lastVerified !== undefined && Date.now() - lastVerified.getTime() <= (options.healthyWindowMs ?? 3_600_000);
    return healthy ? options.baseMs * multiplier : options.baseMs;
  } catch {
    return options.baseMs;
  }
}
