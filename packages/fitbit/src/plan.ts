import { chunkDays, type DayRequest, type StreamName } from '@fitlamp/provider';

/**
 * The most days one request may cover, per stream and resolution (fitbit-web-api §3.1, §2
 * "Budget math"). Intraday is 24 h per call; HR daily series 1 year; activity and AZM series
 * 1095 days; sleep 100 days; HRV, breathing rate and skin temperature 30 days. SpO2 states no
 * range limit (jpstroop says none, unverified), so it gets the 30 days of its sibling endpoints.
 * The activity log list pages by 100 activities; 30 days keeps one page per request in practice.
 */
const MAX_DAYS: Record<StreamName, number> = {
  steps: 1095,
  heart_rate: 1,
  resting_heart_rate: 365,
  sleep: 100,
  spo2: 30,
  hrv: 30,
  breathing_rate: 30,
  skin_temperature: 30,
  active_zone_minutes: 1095,
  exercise: 30,
  device: Number.POSITIVE_INFINITY,
};

/** Streams with a minute series, fetched one day per request when the app has intraday access. */
export function usesIntraday(stream: StreamName): boolean {
  return stream === 'steps' || stream === 'heart_rate';
}

/**
 * Splits `days` into requests, each covering as many days as the endpoint allows. Heart rate
 * without intraday access has no daily series to fall back to (the daily HR series holds only
 * resting HR and zones, which other streams carry), so its days come back as one free request
 * whose every day is empty.
 */
export function planRequests(stream: StreamName, days: readonly string[], options: { intraday: boolean }): DayRequest[] {
  const intraday = options.intraday && usesIntraday(stream);
  const free = stream === 'heart_rate' && !intraday;
  const maxDays = free ? Number.POSITIVE_INFINITY : intraday ? 1 : MAX_DAYS[stream];
  return chunkDays(days, maxDays).map((chunk) => ({ stream, days: chunk, cost: free ? 0 : 1, intraday }));
}
