import { describe, expect, it } from 'vitest';
import { addDays, daysBetween, localDayAt, localDayBounds, localToUtc, offsetAt, type ZoneHistory } from './time-zones.ts';

const ny: ZoneHistory = [{ zone: 'America/New_York', validFrom: 0 }];
const iso = (ms: number) => new Date(ms).toISOString();

describe('floating local time to UTC', () => {
  it('uses the offset valid on that date, not today', () => {
    // New York: EDT (-4) until 2026-11-01 02:00, then EST (-5).
    expect(iso(localToUtc('2026-10-31T12:00:00', ny))).toBe('2026-10-31T16:00:00.000Z');
    expect(iso(localToUtc('2026-11-02T12:00:00', ny))).toBe('2026-11-02T17:00:00.000Z');
  });

  it('resolves the repeated fall-back hour in series order', () => {
    const first = localToUtc('2026-11-01T01:30:00', ny);
    expect(iso(first)).toBe('2026-11-01T05:30:00.000Z');
    const second = localToUtc('2026-11-01T01:30:00', ny, { notBefore: first + 1 });
    expect(iso(second)).toBe('2026-11-01T06:30:00.000Z');
  });

  it('moves a time in the spring-forward gap past the gap', () => {
    // 2026-03-08 02:30 does not exist in New York.
    expect(iso(localToUtc('2026-03-08T02:30:00', ny))).toBe('2026-03-08T07:30:00.000Z');
  });

  it('follows a participant who travels', () => {
    const travel: ZoneHistory = [
      { zone: 'Europe/London', validFrom: 0 },
      { zone: 'America/Los_Angeles', validFrom: Date.parse('2026-11-10T20:00:00Z') },
    ];
    expect(iso(localToUtc('2026-11-09T08:00:00', travel))).toBe('2026-11-09T08:00:00.000Z');
    expect(iso(localToUtc('2026-11-12T08:00:00', travel))).toBe('2026-11-12T16:00:00.000Z');
    expect(localDayAt(travel, Date.parse('2026-11-12T03:00:00Z'))).toBe('2026-11-11');
  });

  it('walks a westward trip in series order, though wall-clock times repeat', () => {
    // London until 12:00Z, then Los Angeles (UTC-8): the device shows 04:00 again at 12:00Z.
    const trip: ZoneHistory = [
      { zone: 'Europe/London', validFrom: 0 },
      { zone: 'America/Los_Angeles', validFrom: Date.parse('2026-11-10T12:00:00Z') },
    ];
    const before = localToUtc('2026-11-10T10:00:00', trip, { notBefore: Date.parse('2026-11-10T09:59:00Z') });
    expect(iso(before)).toBe('2026-11-10T10:00:00.000Z');
    const after = localToUtc('2026-11-10T04:30:00', trip, { notBefore: Date.parse('2026-11-10T11:59:00Z') });
    expect(iso(after)).toBe('2026-11-10T12:30:00.000Z');
    // The trip day lasts 32 hours on the participant's calendar.
    const { start, end } = localDayBounds('2026-11-10', trip);
    expect((end - start) / 3_600_000).toBe(32);
  });

  it('knows day lengths across DST and calendar arithmetic', () => {
    const { start, end } = localDayBounds('2026-11-01', ny);
    expect((end - start) / 3_600_000).toBe(25);
    expect(addDays('2026-02-28', 1)).toBe('2026-03-01');
    expect(addDays('2026-01-01', -1)).toBe('2025-12-31');
    expect(daysBetween('2026-10-30', '2026-11-02')).toEqual(['2026-10-30', '2026-10-31', '2026-11-01', '2026-11-02']);
    expect(daysBetween('2026-11-02', '2026-10-30')).toEqual([]);
    expect(offsetAt('Asia/Kolkata', Date.parse('2026-06-01T00:00:00Z'))).toBe(5.5 * 3_600_000);
  });

  it('caps a day range to its newest days', () => {
    expect(daysBetween('2026-10-30', '2026-11-02', 2)).toEqual(['2026-11-01', '2026-11-02']);
    expect(daysBetween('2026-10-30', '2026-11-02', 10)).toEqual(['2026-10-30', '2026-10-31', '2026-11-01', '2026-11-02']);
    // An absurd range from outside costs no more than the cap.
    expect(daysBetween('1000-01-01', '9999-12-31', 62)).toHaveLength(62);
    expect(daysBetween('1000-01-01', '9999-12-31', 62)[0]).toBe('9999-10-31');
    expect(daysBetween('2026-10-30', '2026-11-02', 0)).toEqual([]);
  });

  it('refuses malformed input', () => {
    expect(() => localToUtc('yesterday', ny)).toThrow(/not a local date-time/);
    expect(() => localToUtc('2026-11-01T01:00:00', [])).toThrow(/empty/);
  });
});
