import { describe, expect, it } from 'vitest';
import { createRateBudget } from './budget.ts';

describe('rate budget', () => {
  const now = Date.parse('2026-11-20T10:20:00Z');
  const reset = Date.parse('2026-11-20T11:00:00Z');

  it('keeps a reserve for fresh data and refills at the reset', () => {
    const b = createRateBudget({ remaining: 6, resetAt: reset }, 5);
    expect(b.allows(1, 'backfill', now)).toBe(true);
    b.spend(1);
    expect(b.allows(1, 'backfill', now)).toBe(false);
    expect(b.allows(1, 'catchup', now)).toBe(false);
    expect(b.allows(5, 'fresh', now)).toBe(true);
    expect(b.allows(6, 'fresh', now)).toBe(false);
    expect(b.allows(100, 'backfill', reset)).toBe(true);
  });

  it('trusts the lower of its own count and lagging headers within a window', () => {
    const b = createRateBudget({ remaining: 10, resetAt: reset }, 0);
    b.spend(3);
    b.observe({ remaining: 9, resetAt: reset + 500 });
    expect(b.remaining).toBe(7);
    b.observe({ remaining: 150, resetAt: reset + 3_600_000 });
    expect(b.remaining).toBe(150);
    expect(b.resetAt).toBe(reset + 3_600_000);
  });

  it('allows anything while the budget is unknown', () => {
    const b = createRateBudget({ remaining: null, resetAt: null }, 5);
    expect(b.allows(1000, 'backfill', now)).toBe(true);
  });
});
