import { describe, expect, it } from 'vitest';
import { chunkDays } from './day-chunks.ts';
import { daysBetween } from './time-zones.ts';

describe('chunkDays', () => {
  it('sorts and deduplicates, and bounds each run by the calendar span from its first day', () => {
    expect(chunkDays(['2026-01-03', '2026-01-01', '2026-01-03', '2026-01-02'], 2)).toEqual([['2026-01-01', '2026-01-02'], ['2026-01-03']]);
    // Sparse days: a run spans 2026-01-01..01-30 (30 days) though it lists three.
    expect(chunkDays(['2026-01-01', '2026-01-20', '2026-01-30', '2026-01-31'], 30)).toEqual([['2026-01-01', '2026-01-20', '2026-01-30'], ['2026-01-31']]);
  });

  it('counts calendar days across month and year ends', () => {
    const days = daysBetween('2025-12-30', '2026-03-02');
    const runs = chunkDays(days, 31);
    expect(runs.map((r) => [r[0], r.at(-1)])).toEqual([
      ['2025-12-30', '2026-01-29'],
      ['2026-01-30', '2026-03-01'],
      ['2026-03-02', '2026-03-02'],
    ]);
    expect(runs.flat()).toEqual(days);
  });

  it('gives one run for Infinity, one a day for 1, and none for no days', () => {
    const year = daysBetween('2026-01-01', '2026-12-31');
    expect(chunkDays(year, Number.POSITIVE_INFINITY)).toEqual([year]);
    expect(chunkDays(year.slice(0, 3), 1)).toEqual([[year[0]], [year[1]], [year[2]]]);
    expect(chunkDays([], 7)).toEqual([]);
  });
});
