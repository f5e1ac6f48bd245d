import type { RateInfo } from '@fitlamp/provider';
import type { Tier } from './plan.ts';

/**
 * A participant's provider rate budget for the current window, from the provider's headers and
 * fitlamp's own count (Fitbit's headers are approximate and updated asynchronously, reference
 * §2, so the lower of the two wins within a window).
 */
export interface RateBudget {
  remaining: number | null;
  resetAt: number | null;
  /** Whether a request of this cost may be spent now; non-fresh work leaves `reserve` untouched. */
  allows(cost: number, tier: Tier, now: number): boolean;
  spend(count: number): void;
  observe(rate: RateInfo): void;
}

export function createRateBudget(initial: { remaining: number | null; resetAt: number | null }, reserve: number): RateBudget {
  const budget: RateBudget = {
    remaining: initial.remaining,
    resetAt: initial.resetAt,
    allows(cost, tier, now) {
      if (budget.remaining === null || budget.resetAt === null || budget.resetAt <= now) return true;
      return budget.remaining - cost >= (tier === 'fresh' ? 0 : reserve);
    },
    spend(count) {
      if (budget.remaining !== null) budget.remaining = Math.max(0, budget.remaining - count);
    },
    observe(rate) {
      const sameWindow = budget.resetAt !== null && Math.abs(rate.resetAt - budget.resetAt) < 60_000;
      budget.remaining = sameWindow && budget.remaining !== null ? Math.min(budget.remaining, rate.remaining) : rate.remaining;
      budget.resetAt = rate.resetAt;
    },
  };
  return budget;
}
