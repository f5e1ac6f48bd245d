import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { ChangeNotification, ZoneHistory } from '@fitlamp/provider';
import { createGoogleHealthProvider } from './google-health-provider.ts';
import { dedupKey, intervalDays, parseNotifications } from './notifications.ts';

// The Google Health webhook envelope (google-health-api §4.4) as the provider reads it; the
// gateway's google-health.int.test.ts covers the route (signature, dedup, queue) around it.

const NY: ZoneHistory = [{ zone: 'America/New_York', validFrom: 0 }];
const SYDNEY: ZoneHistory = [{ zone: 'Australia/Sydney', validFrom: 0 }];

const physical = (startTime: string, endTime: string) => ({ physicalTimeInterval: { startTime, endTime } });
const civil = (start: [number, number, number, number?], end: [number, number, number, number?]) => {
  const at = ([year, month, day, hours]: [number, number, number, number?]) => ({ date: { year, month, day }, ...(hours === undefined ? {} : { time: { hours } }) });
  return { civilDateTimeInterval: { startDateTime: at(start), endDateTime: at(end) } };
};
const iso = (startTime: string, endTime: string) => ({ civilIso8601TimeInterval: { startTime, endTime } });
const note = (data: Record<string, unknown>) => ({ data: { healthUserId: 'hu-1', dataType: 'steps', operation: 'UPSERT', ...data } });

function notificationsOf(body: unknown): ChangeNotification[] {
  const parsed = parseNotifications(body);
  if (!parsed.ok) throw new Error(`expected to parse: ${parsed.error}`);
  return parsed.notifications;
}

describe('parseNotifications', () => {
  it('reads one notification or an array, naming the user, the stream and the local days', () => {
    const [one] = notificationsOf(note({ dataType: 'sleep', intervals: [physical('2026-11-20T04:00:00Z', '2026-11-20T11:00:00Z')] }));
    expect(one).toMatchObject({ providerUserId: 'hu-1', stream: 'sleep' });
    // 04:00–11:00 UTC is 23:00 on the 19th to 06:00 on the 20th in New York.
    expect(one!.days(NY)).toEqual(['2026-11-19', '2026-11-20']);

    const many = notificationsOf([
      note({ healthUserId: 'hu-2', dataType: 'heart-rate', intervals: [physical('2026-11-21T01:00:00Z', '2026-11-21T01:05:00Z')] }),
      note({ dataType: 'daily-resting-heart-rate', intervals: [civil([2026, 11, 20], [2026, 11, 21])] }),
    ]);
    expect(many.map((n) => [n.providerUserId, n.stream])).toEqual([
      ['hu-2', 'heart_rate'],
      ['hu-1', 'resting_heart_rate'],
    ]);
    // 01:00 UTC on the 21st is noon on the 21st in Sydney; the civil day needs no zone.
    expect(many[0]!.days(SYDNEY)).toEqual(['2026-11-21']);
    expect(many[1]!.days(SYDNEY)).toEqual(['2026-11-20']);
  });

  it('gives a data type fitlamp does not sync no stream, and a notification without intervals no days', () => {
    const [n] = notificationsOf(note({ dataType: 'body-fat' }));
    expect(n!.stream).toBeUndefined();
    expect(n!.days(NY)).toEqual([]);
  });

  it('merges the days of several intervals, oldest first, each once', () => {
    const [n] = notificationsOf(
      note({ intervals: [physical('2026-11-21T15:00:00Z', '2026-11-21T15:05:00Z'), iso('2026-11-19T08:00:00', '2026-11-21T09:00:00'), civil([2026, 11, 20], [2026, 11, 20, 18])] }),
    );
    expect(n!.days(NY)).toEqual(['2026-11-19', '2026-11-20', '2026-11-21']);
  });

  it('refuses a malformed body, saying where', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ type: 'something' }, /^data: /],
      [note({ healthUserId: '' }), /healthUserId/],
      [note({ intervals: [physical('yesterday', '2026-11-20T11:00:00Z')] }), /intervals\.0\.physicalTimeInterval\.startTime/],
      [note({ intervals: [civil([2026, 13, 1], [2026, 13, 2])] }), /month/],
      // Days that do not exist would reach the ledger's date column (and fail there, after the
      // notification was taken as seen): refused up front.
      [note({ intervals: [civil([2026, 2, 27], [2026, 2, 31])] }), /intervals\.0\.civilDateTimeInterval\.endDateTime\.date: no such date/],
      [note({ intervals: [civil([99999, 1, 1], [99999, 1, 2])] }), /year/],
      [note({ intervals: [iso('2026-02-30T08:00:00', '2026-03-01T00:00:00')] }), /intervals\.0\.civilIso8601TimeInterval\.startTime: no such date/],
      [note({ intervals: [iso('2026-13-45T08:00:00', '2026-13-46T00:00:00')] }), /no such date/],
      [note({ operation: 'MERGE' }), /operation/],
      [[], /^\(body\): Too small/],
      [Array.from({ length: 1001 }, () => note({})), /^\(body\): Too big.*1000/],
      [[note({}), note({ dataType: '' })], /^1\.data\.dataType: /],
    ];
    for (const [body, message] of cases) {
      const parsed = parseNotifications(body);
      expect(parsed.ok, JSON.stringify(body).slice(0, 80)).toBe(false);
      if (!parsed.ok) expect(parsed.error).toMatch(message);
    }
  });

  it('is the google-health provider’s parseNotifications (Fitbit has none)', () => {
    const provider = createGoogleHealthProvider({ clientId: 'c', clientSecret: 's' });
    const parsed = provider.parseNotifications!(note({ intervals: [iso('2026-11-20T00:00:00', '2026-11-21T00:00:00')] }));
    expect(parsed.ok && parsed.notifications.map((n) => [n.stream, n.days(NY)])).toEqual([['steps', ['2026-11-20']]]);
  });
});

describe('intervalDays', () => {
  it('treats a civil end at midnight as exclusive, and an end before the start as the start day', () => {
    expect(intervalDays(iso('2026-11-20T00:00:00', '2026-11-22T00:00:00.000'), NY)).toEqual(['2026-11-20', '2026-11-21']);
    expect(intervalDays(iso('2026-11-20T00:00:00', '2026-11-22T00:00:01'), NY)).toEqual(['2026-11-20', '2026-11-21', '2026-11-22']);
    expect(intervalDays(iso('2026-11-20T00:00:00', '2026-11-20T00:00:00'), NY)).toEqual(['2026-11-20']);
    expect(intervalDays(civil([2026, 11, 20], [2026, 11, 22, 0]), NY)).toEqual(['2026-11-20', '2026-11-21']);
    expect(intervalDays(civil([2026, 11, 20], [2026, 11, 22, 7]), NY)).toEqual(['2026-11-20', '2026-11-21', '2026-11-22']);
    expect(intervalDays(civil([2026, 11, 22], [2026, 11, 20]), NY)).toEqual(['2026-11-22']);
  });

  it('reads physical instants through the zone history valid then, UTC when there is none', () => {
    // An end exactly at midnight belongs to the day before.
    expect(intervalDays(physical('2026-11-20T05:00:00Z', '2026-11-21T05:00:00Z'), NY)).toEqual(['2026-11-20']);
    expect(intervalDays(physical('2026-11-20T23:30:00Z', '2026-11-21T00:30:00Z'), [])).toEqual(['2026-11-20', '2026-11-21']);
    const trip: ZoneHistory = [
      { zone: 'America/New_York', validFrom: 0 },
      { zone: 'Australia/Sydney', validFrom: Date.parse('2026-11-21T00:00:00Z') },
    ];
    // 2026-11-20T20:00Z is the 20th in New York; 2026-11-21T20:00Z is the 22nd in Sydney.
    expect(intervalDays(physical('2026-11-20T20:00:00Z', '2026-11-21T20:00:00Z'), trip)).toEqual(['2026-11-20', '2026-11-21', '2026-11-22']);
    // An offset other than Z is an instant all the same.
    expect(intervalDays(physical('2026-11-20T23:30:00-05:00', '2026-11-20T23:45:00-05:00'), NY)).toEqual(['2026-11-20']);
  });

  it('names at most the newest 62 days of a long interval', () => {
    const days = intervalDays(iso('2020-01-01T00:00:00', '2026-11-21T12:00:00'), NY);
    expect(days).toHaveLength(62);
    expect(days[0]).toBe('2026-09-21');
    expect(days.at(-1)).toBe('2026-11-21');
  });
});

describe('dedupKey', () => {
  it('is the SHA-256 of the canonical data object: the same whatever the key order, different for any other change', () => {
    const a = { healthUserId: 'hu-1', dataType: 'steps', intervals: [physical('2026-11-20T04:00:00Z', '2026-11-20T05:00:00Z')] };
    const canonical = '{"dataType":"steps","healthUserId":"hu-1","intervals":[{"physicalTimeInterval":{"endTime":"2026-11-20T05:00:00Z","startTime":"2026-11-20T04:00:00Z"}}]}';
    expect(dedupKey(a)).toBe(createHash('sha256').update(canonical).digest('hex'));
    const reordered = { intervals: [{ physicalTimeInterval: { endTime: '2026-11-20T05:00:00Z', startTime: '2026-11-20T04:00:00Z' } }], dataType: 'steps', healthUserId: 'hu-1' };
    expect(dedupKey(reordered)).toBe(dedupKey(a));
    expect(dedupKey({ ...a, clientProvidedSubscriptionName: 'x' })).not.toBe(dedupKey(a));

    const [first, again, other] = notificationsOf([note({ intervals: a.intervals }), note({ intervals: a.intervals }), note({ intervals: a.intervals, dataType: 'sleep' })]);
    expect(again!.dedupKey).toBe(first!.dedupKey);
    expect(other!.dedupKey).not.toBe(first!.dedupKey);
  });
});
