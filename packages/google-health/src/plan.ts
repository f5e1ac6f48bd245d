import { chunkDays, type DayRequest, type StreamName } from '@fitlamp/provider';

/**
 * How many local days one request may cover, and what it is expected to cost:
 * - steps (intraday): reconciled minutes, ≤ 1500 a day even on a 25-hour day, so 6 days fit one
 *   10000-point page; without intraday, `dailyRollUp`, whose range may span 90 days.
 * - heart rate (intraday): samples every few seconds can pass 10000 a day, so one day per
 *   request and two pages expected.
 * - daily types and `dailyRollUp` (AZM): one point a day; 90 days, the rollup range cap, is
 *   used for the daily `list`/`reconcile` too (which state no cap) to stay well inside one page.
 * - sleep and exercise: pages hold at most 25 sessions; 7 days leaves room for naps and
 *   several workouts a day, and a busier week is split, not paged (query.ts).
 */
const MAX_DAYS: Record<StreamName, number> = {
  steps: 90,
  heart_rate: 1,
  resting_heart_rate: 90,
  sleep: 7,
  spo2: 90,
  hrv: 90,
  breathing_rate: 90,
  skin_temperature: 90,
  active_zone_minutes: 90,
  exercise: 7,
  device: Number.POSITIVE_INFINITY,
};

const INTRADAY_STEPS_DAYS = 6;

/** Streams with a minute series when intraday detail is wanted. */
export function usesIntraday(stream: StreamName): boolean {
  return stream === 'steps' || stream === 'heart_rate';
}

/**
 * Splits `days` into requests. Like the Fitbit provider, heart rate without intraday detail has
 * no daily form to fall back to (resting HR is its own stream): its days come back as one free
 * request whose every day is empty.
 */
export function planRequests(stream: StreamName, days: readonly string[], options: { intraday: boolean }): DayRequest[] {
  const intraday = options.intraday && usesIntraday(stream);
  const free = stream === 'heart_rate' && !intraday;
  const maxDays = free ? Number.POSITIVE_INFINITY : stream === 'steps' && intraday ? INTRADAY_STEPS_DAYS : MAX_DAYS[stream];
  const cost = free ? 0 : stream === 'heart_rate' ? 2 : 1;
  return chunkDays(days, maxDays).map((chunk) => ({ stream, days: chunk, cost, intraday }));
}
