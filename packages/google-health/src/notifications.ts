import { createHash } from 'node:crypto';
import { z } from 'zod';
import { addDays, canonicalJson, daysBetween, localDayAt, type ChangeNotification, type NotificationsParse, type ZoneHistory } from '@fitlamp/provider';
import { streamOfDataType } from './data-types.ts';

/**
 * Google Health webhook notifications (google-health-api §4.4): notify-only envelopes naming a
 * user, a data type and the intervals whose data changed. Verifying that Google sent them
 * (Authorization, signature) is the receiver's job; this reads what they say.
 */

/** A notification names at most this many local days per interval (a longer one is clipped to its newest days). */
const MAX_DAYS_PER_INTERVAL = 62;

const pad = (n: number, width = 2) => String(n).padStart(width, '0');
const dateOf = (d: { year: number; month: number; day: number }) => `${pad(d.year, 4)}-${pad(d.month)}-${pad(d.day)}`;

/** Whether `YYYY-MM-DD` is a day of the calendar (not 2026-02-30): days go to the ledger's `date` column. */
const isCalendarDay = (day: string) => {
  const at = Date.parse(`${day}T00:00:00Z`);
  return Number.isFinite(at) && new Date(at).toISOString().slice(0, 10) === day;
};
const localDateTime = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}T[\d:.]+$/)
  .refine((t) => isCalendarDay(t.slice(0, 10)), 'no such date');
const civilDate = z
  .object({ year: z.number().int().min(1).max(9999), month: z.number().int().min(1).max(12), day: z.number().int().min(1).max(31) })
  .refine((d) => isCalendarDay(dateOf(d)), 'no such date');
const civilDateTime = z.object({
  date: civilDate,
  time: z.object({ hours: z.number().int().optional(), minutes: z.number().int().optional(), seconds: z.number().int().optional() }).optional(),
});
const interval = z.object({
  physicalTimeInterval: z.object({ startTime: z.iso.datetime({ offset: true }), endTime: z.iso.datetime({ offset: true }) }).optional(),
  civilDateTimeInterval: z.object({ startDateTime: civilDateTime, endDateTime: civilDateTime }).optional(),
  civilIso8601TimeInterval: z.object({ startTime: localDateTime, endTime: localDateTime }).optional(),
});
const notification = z.object({
  data: z.object({
    version: z.string().max(20).optional(),
    clientProvidedSubscriptionName: z.string().max(200).optional(),
    healthUserId: z.string().min(1).max(200),
    operation: z.enum(['UPSERT', 'DELETE']).optional(),
    dataType: z.string().min(1).max(100),
    intervals: z.array(interval).max(1000).default([]),
  }),
});
const single = notification.transform((n) => [n]);
const batch = z.array(notification).min(1).max(1000);

/** A notification's `data`, as Google sends it. */
export type GoogleNotification = z.infer<typeof notification>['data'];
/** One interval of a notification. */
export type NotificationInterval = z.infer<typeof interval>;

const isMidnight = (t: z.infer<typeof civilDateTime>['time']) => !t || ((t.hours ?? 0) === 0 && (t.minutes ?? 0) === 0 && (t.seconds ?? 0) === 0);

/** The days from `first` to `last` (a `last` before `first` counts as `first`), the newest 62 at most. */
const span = (first: string, last: string) => daysBetween(first, last < first ? first : last, MAX_DAYS_PER_INTERVAL);

/**
 * The participant's local days an interval touches, oldest first: the civil forms when present
 * (they are the participant's own calendar; an end at midnight is exclusive), else the physical
 * instants through the zone history (UTC when there is none yet).
 */
export function intervalDays(i: NotificationInterval, zones: ZoneHistory): string[] {
  if (i.civilIso8601TimeInterval) {
    const { startTime, endTime } = i.civilIso8601TimeInterval;
    const first = startTime.slice(0, 10);
    let last = endTime.slice(0, 10);
    if (last > first && /T00:00(:00(\.0+)?)?$/.test(endTime)) last = addDays(last, -1);
    return span(first, last);
  }
  if (i.civilDateTimeInterval) {
    const first = dateOf(i.civilDateTimeInterval.startDateTime.date);
    let last = dateOf(i.civilDateTimeInterval.endDateTime.date);
    if (last > first && isMidnight(i.civilDateTimeInterval.endDateTime.time)) last = addDays(last, -1);
    return span(first, last);
  }
  if (i.physicalTimeInterval) {
    const start = Date.parse(i.physicalTimeInterval.startTime);
    const end = Math.max(start, Date.parse(i.physicalTimeInterval.endTime) - 1);
    const history = zones.length > 0 ? zones : [{ zone: 'UTC', validFrom: 0 }];
    return span(localDayAt(history, start), localDayAt(history, end));
  }
  return [];
}

/**
 * What identifies a notification: the whole `data` object, canonically ordered, hashed.
 * Redeliveries repeat it byte for byte (AUTOMATIC subscriptions put a fresh UUID in every new
 * notification), so a later change of the same day is a new notification, not a duplicate.
 */
export function dedupKey(n: GoogleNotification): string {
  return createHash('sha256').update(canonicalJson(n)).digest('hex');
}

/**
 * Reads a webhook body (one notification or an array of up to 1000) into change notifications,
 * or says, per field, what is wrong with it. Data types fitlamp does not sync come back with no
 * stream.
 */
export function parseNotifications(body: unknown): NotificationsParse {
  // One notification or an array of them; checked as the one it is, so errors name the field.
  const parsed = Array.isArray(body) ? batch.safeParse(body) : single.safeParse(body);
  if (!parsed.success) {
    return { ok: false, error: parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ') };
  }
  return {
    ok: true,
    notifications: parsed.data.map(({ data }): ChangeNotification => ({
      providerUserId: data.healthUserId,
      stream: streamOfDataType(data.dataType),
      dedupKey: dedupKey(data),
      days: (zones) => [...new Set(data.intervals.flatMap((i) => intervalDays(i, zones)))].sort(),
    })),
  };
}
