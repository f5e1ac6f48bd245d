import { describe, expect, it } from 'vitest';
import { budgetResetAt, computeRecoveries, resetJitterMaxMs, slowest, type ServedFaultEntry } from './recovery.ts';

const bounds = { pollMs: 60_000, tickMs: 2_000, slackMs: 10_000 };
// Wall ms; the simulated clock runs 1 h 59 min 30 s ahead of it (30 s before its top of the hour at wall 0).
const HOUR = 3_600_000;
const fault = (at: number, userId: string | undefined, status: number, retryAfterSeconds?: number): ServedFaultEntry => ({
  at,
  simAt: 2 * HOUR - 30_000 + at,
  userId,
  status,
  ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}),
});

describe('recovery of failed stream-days', () => {
  it('measures from the last faulty response served to the participant before the re-fetch', () => {
    const faults = [
      fault(1_000, 'A', 503),
      fault(4_000, 'A', 502),
      fault(5_000, 'B', 500), // another participant's fault: not A's outage
      fault(90_000, 'A', 503), // after A's re-fetch: a later outage
    ];
    const r = computeRecoveries(faults, [{ key: 'U1 heart 2026-11-04', userId: 'A', fetchedAgainAt: 61_000 }], bounds);
    expect(r.outage).toEqual([{ key: 'U1 heart 2026-11-04', from: 4_000, fetchedAgainAt: 61_000, ms: 57_000, boundMs: 72_000 }]);
    expect(r.budget).toEqual([]);
    expect(r.noFault).toEqual([]);
  });

  it('takes a 429 as a spent budget: measured from its Retry-After, reported apart', () => {
    const faults = [fault(1_000, 'A', 503), fault(30_000, 'A', 429, 15)];
    const r = computeRecoveries(faults, [{ key: 'U1 steps 2026-11-04', userId: 'A', fetchedAgainAt: 47_000 }], bounds);
    expect(r.outage).toEqual([]);
    // Reset at 45 s; the fetcher's jitter after a 15 s wait is at most 15/10 + 1 = 2.5 s.
    expect(r.budget).toEqual([{ key: 'U1 steps 2026-11-04', from: 45_000, fetchedAgainAt: 47_000, ms: 2_000, boundMs: 2_500 + 2_000 + 10_000 }]);
  });

  it('puts a bare 429 at the next top of the provider hour', () => {
    const bare = fault(10_000, 'A', 429);
    // 20 s of simulated hour left at wall 10 s: reset at wall 30 s.
    expect(budgetResetAt(bare)).toBe(30_000);
    expect(resetJitterMaxMs(bare)).toBe(3_000);
    // A long wait's jitter is capped at 30 s.
    expect(resetJitterMaxMs(fault(0, 'A', 429, 3_600))).toBe(30_000);
  });

  it('lists failed days with no fault for the participant, and ranks the slowest', () => {
    const faults = [fault(0, 'A', 503), fault(0, 'B', 503), fault(0, undefined, 503)];
    const r = computeRecoveries(
      faults,
      [
        { key: 'a', userId: 'A', fetchedAgainAt: 50_000 },
        { key: 'b', userId: 'B', fetchedAgainAt: 80_000 },
        { key: 'c', userId: 'C', fetchedAgainAt: 30_000 },
      ],
      bounds,
    );
    expect(r.noFault).toEqual(['c']);
    expect(r.outage.map((d) => [d.key, d.ms, d.ms <= d.boundMs])).toEqual([
      ['a', 50_000, true],
      ['b', 80_000, false],
    ]);
    expect(slowest(r.outage)?.key).toBe('b');
    expect(slowest([])).toBeNull();
  });
});
