import { describe, expect, it } from 'vitest';
import { learnSyncRhythm, nextPollDelayMs, retryDelayMs } from './poll-interval.ts';

const MIN = 60_000;
const HOUR = 60 * MIN;
const T0 = Date.parse('2026-11-20T00:00:00Z');
const BASE = 15 * MIN;
const MAX = 6 * HOUR;

describe('learning a device sync rhythm', () => {
  it('needs three syncs, then expects the next one after the usual (low-quartile) gap', () => {
    expect(learnSyncRhythm([])).toBeNull();
    expect(learnSyncRhythm([T0, T0 + 4 * HOUR])).toBeNull();
    expect(learnSyncRhythm([T0, T0 + 4 * HOUR, T0 + 8 * HOUR])).toEqual({ lastSync: T0 + 8 * HOUR, gapMs: 4 * HOUR });
    // Order and repeats do not matter: the same sync seen by two polls counts once.
    expect(learnSyncRhythm([T0 + 8 * HOUR, T0, T0 + 4 * HOUR, T0 + 8 * HOUR])).toEqual({ lastSync: T0 + 8 * HOUR, gapMs: 4 * HOUR });
  });

  it('takes the early side of an irregular rhythm, so a sync that comes early is not waited past', () => {
    // A phone opened every 2-4 h: gaps of 2, 3, 4, 2.5 and 3.5 h.
    const gaps = [2, 3, 4, 2.5, 3.5].map((h) => h * HOUR);
    const times = gaps.reduce((acc, gap) => [...acc, acc.at(-1)! + gap], [T0]);
    const rhythm = learnSyncRhythm(times)!;
    expect(rhythm.lastSync).toBe(times.at(-1));
    expect(rhythm.gapMs).toBe(2.5 * HOUR);
  });

  it('ignores near-duplicate syncs (two devices, a retry) rather than learning a one-minute rhythm', () => {
    expect(learnSyncRhythm([T0, T0 + 20_000, T0 + 40_000])).toBeNull();
    expect(learnSyncRhythm([T0, T0 + 30_000, T0 + 4 * HOUR, T0 + 8 * HOUR])).toEqual({ lastSync: T0 + 8 * HOUR, gapMs: 4 * HOUR - 30_000 });
  });
});

describe('the wait until the next poll', () => {
  const rhythm = { lastSync: T0, gapMs: 4 * HOUR };

  it('is the usual interval without a rhythm, or when the maximum does not allow more', () => {
    expect(nextPollDelayMs({ now: T0, baseMs: BASE, maxMs: MAX, rhythm: null })).toBe(BASE);
    expect(nextPollDelayMs({ now: T0 + MIN, baseMs: BASE, maxMs: BASE, rhythm })).toBe(BASE);
  });

  it('backs off until just after the next expected sync', () => {
    // Polled 5 minutes after the sync: next poll one minute after the one expected at +4 h.
    expect(nextPollDelayMs({ now: T0 + 5 * MIN, baseMs: BASE, maxMs: MAX, rhythm })).toBe(4 * HOUR + MIN - 5 * MIN);
    // Never sooner than the usual interval, never longer than the maximum.
    expect(nextPollDelayMs({ now: T0 + 4 * HOUR - 2 * MIN, baseMs: BASE, maxMs: MAX, rhythm })).toBe(BASE);
    expect(nextPollDelayMs({ now: T0 + 5 * MIN, baseMs: BASE, maxMs: 2 * HOUR, rhythm })).toBe(2 * HOUR);
    expect(nextPollDelayMs({ now: T0, baseMs: BASE, maxMs: MAX, rhythm: { lastSync: T0, gapMs: 24 * HOUR } })).toBe(MAX);
  });

  it('polls a late device at the usual interval at first, then ever less often up to the maximum', () => {
    const expected = T0 + 4 * HOUR;
    expect(nextPollDelayMs({ now: expected + MIN, baseMs: BASE, maxMs: MAX, rhythm })).toBe(BASE);
    expect(nextPollDelayMs({ now: expected + 30 * MIN, baseMs: BASE, maxMs: MAX, rhythm })).toBe(BASE);
    expect(nextPollDelayMs({ now: expected + HOUR, baseMs: BASE, maxMs: MAX, rhythm })).toBe(30 * MIN);
    expect(nextPollDelayMs({ now: expected + 4 * HOUR, baseMs: BASE, maxMs: MAX, rhythm })).toBe(2 * HOUR);
    expect(nextPollDelayMs({ now: expected + 3 * 24 * HOUR, baseMs: BASE, maxMs: MAX, rhythm })).toBe(MAX);
  });
});

describe('the retry after a failed sync', () => {
  it('is due 80-90% of a poll interval later, never past it', () => {
    expect(retryDelayMs(MIN, () => 0)).toBe(48_000);
    expect(retryDelayMs(MIN, () => 0.5)).toBeCloseTo(51_000, 6);
    expect(retryDelayMs(MIN, () => 0.999)).toBeCloseTo(53_994, 0);
    for (let i = 0; i < 1_000; i++) {
      const d = retryDelayMs(MIN);
      expect(d).toBeGreaterThanOrEqual(0.8 * MIN);
      expect(d).toBeLessThan(0.9 * MIN);
    }
  });
});
