import { describe, expect, it } from 'vitest';
import type { DayRequest, Provider, StreamName } from '@fitlamp/provider';
import { planDays, planRequests, type LedgerEntry } from './plan.ts';

const NOW = Date.parse('2026-11-20T15:00:00Z');
const zones = [{ zone: 'UTC', validFrom: 0 }];
const SYNC = Date.parse('2026-11-20T14:45:00Z');

function ledgerOf(entries: Record<string, LedgerEntry>): Map<string, Map<string, LedgerEntry>> {
  return new Map([['steps', new Map(Object.entries(entries))]]);
}

// Today and the 6 complete days before it: a 7-day window.
const base = { now: NOW, zones, lastDeviceSync: SYNC, backfillDays: 6, refetchDays: 3, streams: ['steps'] as StreamName[] };

describe('planDays', () => {
  it('fetches everything once, newest tier first, and nothing past the last device sync', () => {
    const plan = planDays({ ...base, ledger: new Map() });
    expect(plan.today).toBe('2026-11-20');
    expect(plan.due.map((d) => [d.day, d.tier])).toEqual([
      ['2026-11-20', 'fresh'],
      ['2026-11-19', 'fresh'],
      ['2026-11-18', 'catchup'],
      ['2026-11-17', 'backfill'],
      ['2026-11-16', 'backfill'],
      ['2026-11-15', 'backfill'],
      ['2026-11-14', 'backfill'],
    ]);
    const never = planDays({ ...base, lastDeviceSync: null, ledger: new Map() });
    expect(never.due).toEqual([]);
    expect(never.notSynced).toHaveLength(7);
  });

  it('re-fetches only what a newer sync can have changed', () => {
    const fetchedAt = { syncedThrough: SYNC };
    const ledger = ledgerOf({
      '2026-11-20': { status: 'partial', ...fetchedAt },
      '2026-11-19': { status: 'settled', ...fetchedAt },
      '2026-11-16': { status: 'settled', syncedThrough: SYNC - 86_400_000 },
      '2026-11-15': { status: 'failed', ...fetchedAt },
      '2026-11-14': { status: 'empty', ...fetchedAt },
      '2026-11-17': { status: 'settled', ...fetchedAt },
      '2026-11-18': { status: 'settled', ...fetchedAt },
    });
    // Same sync as last fetch: only the failed day.
    expect(planDays({ ...base, ledger }).due.map((d) => d.day)).toEqual(['2026-11-15']);
    // A newer sync: the partial day, the re-fetch window, the failed day; not old settled ones.
    const later = planDays({ ...base, lastDeviceSync: SYNC + 900_000, ledger });
    expect(later.due.map((d) => d.day)).toEqual(['2026-11-20', '2026-11-19', '2026-11-18', '2026-11-15']);
  });

  it('fetches a settled old day again when a notification cleared its watermark', () => {
    const ledger = ledgerOf({ '2026-11-15': { status: 'settled', syncedThrough: null } });
    const due = planDays({ ...base, ledger }).due.map((d) => d.day);
    expect(due).toContain('2026-11-15');
  });
});

describe('planDays for nightly values', () => {
  it('leaves a night that holds its value alone after newer syncs, unless a notification names it', () => {
    const ledger = new Map([
      [
        'hrv',
        new Map<string, LedgerEntry>([
          ['2026-11-20', { status: 'partial', syncedThrough: SYNC, records: 1 }],
          ['2026-11-19', { status: 'empty', syncedThrough: SYNC, records: 0 }],
          ['2026-11-18', { status: 'settled', syncedThrough: null, records: 1 }],
        ]),
      ],
    ]);
    const plan = planDays({ ...base, streams: ['hrv'], lastDeviceSync: SYNC + 900_000, ledger });
    // Today's value is final; the empty night may still get one; the cleared watermark is honoured.
    expect(plan.due.map((d) => d.day)).toEqual(['2026-11-19', '2026-11-18', '2026-11-17', '2026-11-16', '2026-11-15', '2026-11-14']);
  });
});

describe('planDays for a notification', () => {
  it('forces the named days of the named streams only; the others follow their own ledger', () => {
    const fetched = (records: number): LedgerEntry => ({ status: 'settled', syncedThrough: SYNC, records });
    const ledger = new Map([
      ['steps', new Map<string, LedgerEntry>([['2026-11-16', fetched(900)]])],
      ['hrv', new Map<string, LedgerEntry>([['2026-11-16', fetched(1)], ['2026-11-20', fetched(1)]])],
    ]);
    const input = { ...base, streams: ['steps', 'hrv'] as StreamName[], ledger, changedDays: ['2026-11-16'] };
    // A steps notification for an old day: that day of steps, not the HRV night that holds its value.
    const named = planDays({ ...input, changedStreams: ['steps'] }).due.filter((d) => d.day === '2026-11-16');
    expect(named.map((d) => d.stream)).toEqual(['steps']);
    // Without the streams (a payload that names none) every stream's named days are fetched.
    const all = planDays(input).due.filter((d) => d.day === '2026-11-16');
    expect(all.map((d) => d.stream).sort()).toEqual(['hrv', 'steps']);
  });
});

describe('planDays for nightly values before the night is over', () => {
  it('asks again only after the sleep stream brought that night', () => {
    const later = SYNC + 900_000;
    const ledger = new Map([
      [
        'spo2',
        new Map<string, LedgerEntry>([
          ['2026-11-20', { status: 'partial', syncedThrough: SYNC, records: 0 }],
          ['2026-11-19', { status: 'settled', syncedThrough: SYNC, records: 0 }],
        ]),
      ],
      [
        'sleep',
        new Map<string, LedgerEntry>([
          // Today's night fetched after the value was asked for; yesterday had no sleep.
          ['2026-11-20', { status: 'partial', syncedThrough: later - 60_000, records: 12 }],
          ['2026-11-19', { status: 'empty', syncedThrough: later - 60_000, records: 0 }],
        ]),
      ],
    ]);
    const plan = planDays({ ...base, backfillDays: 1, streams: ['spo2', 'sleep'], lastDeviceSync: later, ledger });
    expect(plan.due.filter((d) => d.stream === 'spo2').map((d) => d.day)).toEqual(['2026-11-20']);
    // Without the sleep stream there is nothing to wait for.
    const alone = planDays({ ...base, backfillDays: 1, streams: ['spo2'], lastDeviceSync: later, ledger });
    expect(alone.due.map((d) => d.day)).toEqual(['2026-11-20', '2026-11-19']);
  });
});

describe('planRequests', () => {
  const rangeProvider = {
    planRequests: (stream: StreamName, days: readonly string[], options: { intraday: boolean }): DayRequest[] =>
      stream === 'steps' && options.intraday
        ? days.map((d) => ({ stream, days: [d], cost: 1, intraday: true }))
        : [{ stream, days: [...days], cost: 1, intraday: false }],
  } as unknown as Provider;

  it('keeps per-day requests in tier order and merges a range endpoint across tiers', () => {
    const due = [
      { stream: 'steps' as const, day: '2026-11-20', tier: 'fresh' as const },
      { stream: 'steps' as const, day: '2026-11-10', tier: 'backfill' as const },
      { stream: 'sleep' as const, day: '2026-11-20', tier: 'fresh' as const },
      { stream: 'sleep' as const, day: '2026-11-10', tier: 'backfill' as const },
    ];
    const requests = planRequests(rangeProvider, due, true);
    expect(requests.map((r) => [r.stream, r.tier, r.days])).toEqual([
      ['steps', 'fresh', ['2026-11-20']],
      ['sleep', 'fresh', ['2026-11-10', '2026-11-20']],
      ['steps', 'backfill', ['2026-11-10']],
    ]);
  });
});

describe('the sync window', () => {
  it('gives a participant who connects just after local midnight as many complete days as one who connects just before it', () => {
    const sydney = [{ zone: 'Australia/Sydney', validFrom: 0 }];
    // 12:59:20Z and 13:00:40Z on 2026-11-04 are 23:59:20 and 00:00:40 in Sydney (UTC+11).
    const before = planDays({ ...base, zones: sydney, now: Date.parse('2026-11-04T12:59:20Z'), lastDeviceSync: Date.parse('2026-11-04T12:57:20Z'), ledger: new Map() });
    const after = planDays({ ...base, zones: sydney, now: Date.parse('2026-11-04T13:00:40Z'), lastDeviceSync: Date.parse('2026-11-04T12:57:20Z'), ledger: new Map() });
    const complete = (plan: typeof before) => plan.due.map((d) => d.day).filter((d) => d < plan.today);
    expect(before.today).toBe('2026-11-04');
    expect(after.today).toBe('2026-11-05');
    // Six complete days before today either way; the one who connected after midnight also gets
    // the day that just ended, so nothing the watch recorded before connecting is left out.
    expect(complete(before)).toEqual(['2026-11-03', '2026-11-02', '2026-11-01', '2026-10-31', '2026-10-30', '2026-10-29']);
    expect(complete(after)).toEqual(['2026-11-04', ...complete(before).slice(0, 5)]);
    expect(after.due.map((d) => d.day)).toContain('2026-11-04');
    // Today (nothing synced since midnight) has nothing to fetch yet.
    expect(after.notSynced).toEqual([{ stream: 'steps', day: '2026-11-05' }]);
  });
});
