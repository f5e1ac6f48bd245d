import type { FitbitState } from './state.ts';

const HOUR = 3_600_000;

/** The rate-limit verdict for one request and the headers to send with its answer. */
export interface RateVerdict {
  allowed: boolean;
  headers: Record<string, string>;
  /** Seconds until the budget resets. */
  resetSeconds: number;
}

/**
 * Spends one request of a user's hourly budget. 150 per user per hour, reset at the top of the
 * (simulated) hour, not rolling; headers on every response (fitbit-web-api §2).
 */
export function spendRequest(state: FitbitState, userId: string): RateVerdict {
  const now = state.clock.now();
  const hour = Math.floor(now / HOUR);
  let bucket = state.rate.get(userId);
  if (!bucket || bucket.hour !== hour) {
    bucket = { hour, count: 0 };
    state.rate.set(userId, bucket);
  }
  const allowed = bucket.count < state.rateLimitPerHour;
  if (allowed) bucket.count += 1;
  const resetSeconds = Math.max(1, Math.ceil(((hour + 1) * HOUR - now) / 1000));
  return {
    allowed,
    resetSeconds,
    headers: {
      'fitbit-rate-limit-limit': String(state.rateLimitPerHour),
      'fitbit-rate-limit-remaining': String(Math.max(0, state.rateLimitPerHour - bucket.count)),
      'fitbit-rate-limit-reset': String(resetSeconds),
    },
  };
}
