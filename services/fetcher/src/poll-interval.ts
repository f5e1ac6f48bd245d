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

/**
 * A device's sync rhythm, learned from the syncs the provider reported (recordDeviceSync).
 * `gapMs` is the low quartile of the gaps between recent syncs: the device is expected to sync
 * again no earlier than `lastSync + gapMs` (most of its gaps are at least that long).
 */
export interface SyncRhythm {
  lastSync: number;
  gapMs: number;
}

/** Syncs needed before a rhythm is trusted (two gaps). */
export const MIN_SYNCS_FOR_RHYTHM = 3;
/** Gaps shorter than this are one sync seen twice (two devices, a retry), not the rhythm. */
const MIN_GAP_MS = 60_000;

/** The rhythm of `syncTimes` (epoch ms, any order), or null while there are too few to tell. */
export function learnSyncRhythm(syncTimes: readonly number[]): SyncRhythm | null {
  const times = [...new Set(syncTimes)].sort((a, b) => a - b);
  if (times.length < MIN_SYNCS_FOR_RHYTHM) return null;
  const gaps = times
    .slice(1)
    .map((t, i) => t - times[i]!)
    .filter((gap) => gap >= MIN_GAP_MS)
    .sort((a, b) => a - b);
  if (gaps.length < MIN_SYNCS_FOR_RHYTHM - 1) return null;
  return { lastSync: times.at(-1)!, gapMs: gaps[Math.floor((gaps.length - 1) / 4)]! };
}

export interface NextPollOptions {
  now: number;
  /** The usual poll interval (pollIntervalMs): never polled sooner than this. */
  baseMs: number;
  /** POLL_MAX_INTERVAL_SECONDS: never waited longer than this. At or below `baseMs`: rhythm off. */
  maxMs: number;
  rhythm: SyncRhythm | null;
  /** How long after the expected sync to come back, for its data to be there [min(1 min, base)]. */
  graceMs?: number;
}

/**
 * How long until the participant is polled again, following the device's rhythm:
 * - no rhythm yet: the usual interval;
 * - between syncs: back off until just after the next sync is expected (at least the usual
 *   interval, at most the maximum);
 * - the sync is overdue: the usual interval at first, then half of how late it is, up to the
 *   maximum, so a device left in a drawer is asked ever less often, while a sync that is only a
 *   little late (up to twice the usual interval) is still caught within the usual interval. Half,
 *   not a quarter: a phone-synced watch (syncs every 2-4 h) was polled ~7 times a sync with a
 *   quarter, 1.5 × its minimum of provider requests (bench: `pnpm bench --sections efficiency`).
 */
export function nextPollDelayMs(options: NextPollOptions): number {
  const { now, baseMs, maxMs, rhythm } = options;
  if (rhythm === null || maxMs <= baseMs) return baseMs;
  const expected = rhythm.lastSync + rhythm.gapMs;
  const clamp = (ms: number) => Math.min(maxMs, Math.max(baseMs, ms));
  if (now < expected) return clamp(expected + (options.graceMs ?? Math.min(60_000, baseMs)) - now);
  return clamp((now - expected) / 2);
}

/**
 * The delay before a failed sync's retry: 80-90% of the poll interval, jittered. Issue 16 item 4
 * promises that once a provider outage ends, every failed stream-day is fetched again within one
 * poll interval; the retry is due at most 90% of an interval after the failed sync ends, so the
 * scheduler's tick and the syncs' own duration (seconds) still land inside the interval.
 */
export function retryDelayMs(intervalMs: number, random: () => number = Math.random): number {
  return intervalMs * (0.8 + random() * 0.1);
}
