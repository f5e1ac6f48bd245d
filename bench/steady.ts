// Section 2, API efficiency in steady state. Two simulated days cannot take two real days, so the
// pipeline runs in this process on the simulator's clock, advanced in steps (bench/sim-pipeline.ts):
// the scheduler's pass (`runTick`) and the fetcher's processor (`createSyncProcessor`, under a real
// BullMQ worker), each step waiting until the sync queue is empty. Provider requests are counted
// by the simulator per user and endpoint. The minimum is computed afterwards from the simulator's
// world alone, whatever fitlamp polled (issue 14 item 5): per device sync, one request for each
// stream that sync brought new data, its changed days merged into range requests as far as the
// Fitbit Web API allows (RANGE_DAYS).
//
// Two modes (issue 14 item 5): `polling`, Fitbit participants that fitlamp polls; `webhooks`,
// Google Health participants whose simulator notifies the gateway's webhook route
// `notifyAfterMs` after each device sync (bench/sim-pipeline.ts), polling left on as the safety
// net. With webhooks fitlamp's cost is its Google Health API requests plus the notifications
// POSTed to it (every delivery attempt, retries and duplicates included), and the minimum is the
// world-derived minimum of requests under Google Health's range rules (GOOGLE_RANGE_DAYS) plus,
// per device sync, one notification for each subscribed data type that sync brought new data:
// a notification names one `dataType` (google-health-api §4.4), and "when a data update occurs
// for a given data type, notifications are sent to all subscribers … for that data type"
// (Discovery, `SubscriberConfig`), so no fewer can tell fitlamp of each. "New data" is what the
// API would answer differently: points it has (a minute without steps is no `steps` point), not
// the minutes the device covered.
import { STREAMS, type StreamName } from '@fitlamp/provider';
import { lastSync, viewDay, viewNight, type World, type WorldUser } from '@fitlamp/simulators';
import { SUBSCRIBED_DATA_TYPES } from '@fitlamp/harness';
import { startSimPipeline } from './sim-pipeline.ts';

export type SteadyMode = 'polling' | 'webhooks';

export interface SteadyOptions {
  /** [polling] */
  mode?: SteadyMode;
  /** Webhooks: the simulator notifies a sync this long after it (simulated ms) [5000]. */
  notifyAfterMs?: number;
  participants: number;
  simDays: number;
  /** SYNC_INTERVAL_SECONDS of the fetcher (the scheduler polls each participant this often). */
  pollSeconds: number;
  /** POLL_MAX_INTERVAL_SECONDS of the fetcher (the sync-rhythm back-off's ceiling) [21600, its default]. */
  pollMaxSeconds?: number;
  /** Simulated time per step (the scheduler's tick, in simulated time). */
  stepSeconds: number;
  backfillDays: number;
  refetchDays: number;
  startAt: string;
  log: (line: string) => void;
}

export interface SteadyResult {
  /** Absent in results written before webhooks were measured: polling. */
  mode?: SteadyMode;
  provider?: 'fitbit' | 'google-health';
  /** Webhooks: seconds from the device sync to the simulator's notification. */
  notifyAfterSeconds?: number;
  /**
   * Webhooks: notification POSTs fitlamp received (delivery attempts, retries and duplicates
   * included) and the minimum of them (one per device sync that brought new data). Both are in
   * `requests` / `minimum` and the ratio; `providerRequests` and `minimumProviderRequests` are the
   * API requests alone.
   */
  notifications?: number;
  minimumNotifications?: number;
  providerRequests?: number;
  minimumProviderRequests?: number;
  participants: number;
  simDays: number;
  pollSeconds: number;
  participantDays: number;
  /** POLL_MAX_INTERVAL_SECONDS of the fetcher (the sync-rhythm back-off's ceiling). */
  pollMaxSeconds: number;
  polls: number;
  /** Device syncs in the simulator's world during the run, and those that brought no new data (no data stream changed). */
  deviceSyncs: number;
  syncsWithoutNewData: number;
  requests: number;
  minimum: number;
  requestsPerParticipantDay: number;
  minimumPerParticipantDay: number;
  ratio: number;
  byEndpoint: Record<string, number>;
  /** The minimum's requests by stream. */
  minimumByStream: Record<string, number>;
  byPreset: Record<string, PresetEfficiency>;
  rateLimited: number;
  /** Failed syncs by error (retried by BullMQ) and syncs that ended other than `synced`. */
  syncErrors: Record<string, number>;
  outcomes: Record<string, number>;
  realSeconds: number;
}

export interface PresetEfficiency {
  participants: number;
  /** Device syncs per participant-day, counted in the simulator's world. */
  syncsPerDay: number;
  /** Polls (syncs fitlamp ran) per participant-day. */
  pollsPerDay: number;
  /** Webhooks: of those, the syncs a notification asked for, per participant-day. */
  webhookSyncsPerDay?: number;
  /** Provider requests, plus notifications with webhooks. */
  requests: number;
  minimum: number;
  ratio: number;
  /** Webhooks: the notifications in `requests` and in `minimum`. */
  notifications?: number;
  minimumNotifications?: number;
  byEndpoint: Record<string, number>;
  /**
   * Freshness at this poll interval (issue 14 item 4c): seconds from each device sync that
   * brought new data to the first poll at or after it, in simulated time (the step's resolution).
   */
  freshness: { samples: number; syncsWithoutNewData: number; p50: number; p95: number; max: number };
}

const DATA_STREAMS = STREAMS.filter((s) => s !== 'device');

/**
 * The most local days one request may cover on the Fitbit Web API (fitbit-web-api.md §3.1),
 * written here from the reference rather than taken from the provider package, so that the
 * minimum does not follow fitlamp's own choices: intraday steps and heart rate 24 h per call
 * (one local day), the HR daily series (resting HR) 1 year, the AZM and activity daily series
 * 1,095 days, sleep 100 days, SpO2, HRV, breathing rate and skin temperature 30 days; the
 * activity log list and devices.json answer any span in one request.
 */
const RANGE_DAYS: Record<StreamName, number> = {
  steps: 1,
  heart_rate: 1,
  resting_heart_rate: 365,
  active_zone_minutes: 1095,
  sleep: 100,
  spo2: 30,
  hrv: 30,
  breathing_rate: 30,
  skin_temperature: 30,
  exercise: Number.POSITIVE_INFINITY,
  device: Number.POSITIVE_INFINITY,
};

/**
 * The same for Google Health (google-health-api §3.3, §3.5), from the reference: a `list` or
 * `reconcile` page holds at most 10,000 points, so minute steps (≤ 1,500 a day) fit 6 days a
 * request, and heart-rate samples (every 5-15 s while worn, every second in a workout: up to
 * ~10,000 a day) one day; the daily types and `dailyRollUp` (AZM) one point a day, 90 days (the
 * rollup's range cap); sleep and exercise pages hold 25 sessions: 25 days; paired devices one call.
 */
const GOOGLE_RANGE_DAYS: Record<StreamName, number> = {
  steps: 6,
  heart_rate: 1,
  resting_heart_rate: 90,
  active_zone_minutes: 90,
  sleep: 25,
  spo2: 90,
  hrv: 90,
  breathing_rate: 90,
  skin_temperature: 90,
  exercise: 25,
  device: Number.POSITIVE_INFINITY,
};

/** The Google Health data type (google-health-api §3.6) that carries each of fitlamp's streams. */
const GOOGLE_DATA_TYPE: Record<Exclude<StreamName, 'device'>, string> = {
  steps: 'steps',
  heart_rate: 'heart-rate',
  resting_heart_rate: 'daily-resting-heart-rate',
  active_zone_minutes: 'active-zone-minutes',
  sleep: 'sleep',
  spo2: 'daily-oxygen-saturation',
  hrv: 'daily-heart-rate-variability',
  breathing_rate: 'daily-respiratory-rate',
  skin_temperature: 'daily-sleep-temperature-derivations',
  exercise: 'exercise',
};

/** Requests that cover `days` (YYYY-MM-DD) when one may span at most `maxDays` consecutive days. */
export function rangeRequests(days: readonly string[], maxDays: number): number {
  const sorted = [...new Set(days)].sort();
  let n = 0;
  let until: string | undefined;
  for (const day of sorted) {
    if (until !== undefined && day <= until) continue;
    n++;
    until = Number.isFinite(maxDays) ? addDays(day, maxDays - 1) : '9999-12-31';
  }
  return n;
}

/** The user's device syncs in (from, to], from the world's sync grid and its manual syncs. */
function deviceSyncsBetween(world: World, user: WorldUser, from: number, to: number): number[] {
  const out = new Set<number>();
  if (user.autoSyncMinutes > 0) {
    const step = user.autoSyncMinutes * 60_000;
    for (let t = Math.floor((from - user.autoSyncPhaseMs) / step + 1) * step + user.autoSyncPhaseMs; t <= to; t += step) if (t > from) out.add(t);
  }
  for (const t of world.syncs.get(user.id)?.manual ?? []) if (t > from && t <= to) out.add(t);
  return [...out].sort((a, b) => a - b);
}

/** Nearest-rank percentile of ascending `xs`; null when empty or when it falls on a miss (Infinity). */
export function percentile(xs: readonly number[], p: number): number | null {
  if (xs.length === 0) return null;
  const x = xs[Math.min(xs.length - 1, Math.max(0, Math.ceil(xs.length * p) - 1))]!;
  return Number.isFinite(x) ? x : null;
}

export function localDate(user: WorldUser, t: number): string {
  let zone = user.zoneHistory[0]!.zone;
  for (const span of user.zoneHistory) if (span.from <= t) zone = span.zone;
  return new Intl.DateTimeFormat('en-CA', { timeZone: zone }).format(t);
}

export function addDays(day: string, n: number): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + n * 86_400_000).toISOString().slice(0, 10);
}

/**
 * What the provider would answer for one stream-day at `t`, reduced to a fingerprint: equal
 * fingerprints mean an unchanged answer, so a request for that day would be wasted.
 */
function fingerprint(world: World, user: WorldUser, stream: StreamName, day: string, t: number, google = false): string {
  if (stream === 'device') return String(lastSync(world, user, t));
  if (stream === 'sleep' || stream === 'spo2' || stream === 'hrv' || stream === 'breathing_rate' || stream === 'skin_temperature') {
    const night = viewNight(world, user, day, t);
    if (stream === 'sleep') return JSON.stringify(night.sessions.map((s) => [s.session.id, s.state, s.session.start, s.session.end]));
    const field = ({ spo2: 'spo2', hrv: 'hrv', breathing_rate: 'breathingRate', skin_temperature: 'skinTempRelative' } as const)[stream];
    return JSON.stringify(night.summary?.[field] ?? null);
  }
  const view = viewDay(world, user, day, t);
  if (!view.day) return '';
  const visible = view.visibleMinutes;
  const d = view.day;
  if (google && (stream === 'steps' || stream === 'heart_rate' || stream === 'active_zone_minutes')) {
    // Google Health has a point only for a minute with a value (no zero-step minutes, unlike
    // Fitbit's intraday series): minutes the device covered without one change no answer.
    const values: Array<number | null> = (stream === 'steps' ? d.steps : stream === 'heart_rate' ? d.heartRate : d.zone).slice(0, visible);
    let n = values.length;
    while (n > 0 && !values[n - 1]) n--;
    return `${d.generation}|${values.slice(0, n).join(',')}`;
  }
  switch (stream) {
    case 'steps':
      return `${visible}|${d.steps.slice(0, visible).join(',')}`;
    case 'heart_rate':
      return `${visible}|${d.generation}|${d.heartRate.slice(0, visible).join(',')}`;
    case 'active_zone_minutes':
      return `${visible}|${d.zone.slice(0, visible).join(',')}`;
    case 'resting_heart_rate':
      return view.complete ? String(d.restingHeartRate) : '';
    case 'exercise':
      return JSON.stringify(d.exercises.filter((e) => e.end <= view.start + visible * 60_000));
    default:
      return `${visible}|${d.generation}`;
  }
}

export async function runSteady(o: SteadyOptions): Promise<SteadyResult> {
  const realStart = Date.now();
  const pollMaxSeconds = o.pollMaxSeconds ?? 21_600;
  const mode = o.mode ?? 'polling';
  const webhooks = mode === 'webhooks';
  const notifyAfterMs = o.notifyAfterMs ?? 5_000;
  const rangeDays = webhooks ? GOOGLE_RANGE_DAYS : RANGE_DAYS;
  const p = await startSimPipeline({
    ...(webhooks ? { provider: 'google-health' as const, notifyAfterMs } : {}),
    participants: o.participants,
    pollSeconds: o.pollSeconds,
    pollMaxSeconds,
    backfillDays: o.backfillDays,
    refetchDays: o.refetchDays,
    startAt: o.startAt,
    seed: 'fitlamp-bench-steady',
  });
  const { sim, api, polls, syncErrors, outcomes, userOf, now } = p;
  const ids = p.participants;
  try {
    // Backfill first (not counted), then the steady state from a clean count.
    await p.tick();
    await p.drain();
    o.log(`    backfill of ${ids.length} participants done (${polls.length} syncs); steady state for ${o.simDays} simulated days`);
    polls.length = 0;
    api.state.counters.requests = {};
    const rateLimited0 = api.state.counters.rateLimited;
    const deliveries0 = p.google?.state.webhooks.deliveries.length ?? 0;
    const from = now();
    const end = from + o.simDays * 86_400_000;
    let step = 0;
    while (now() < end) {
      await p.step(o.stepSeconds * 1000);
      if (++step % 180 === 0) o.log(`    ${((step * o.stepSeconds) / 3600).toFixed(0)} simulated hours, ${polls.length} polls`);
    }
    const to = now();
    const participantDays = ids.length * ((to - from) / 86_400_000);
    // Notification POSTs fitlamp received during the steady state, per world user.
    const postsOf = new Map<string, number>();
    for (const d of p.google?.state.webhooks.deliveries.slice(deliveries0) ?? []) {
      if (d.userId !== undefined) postsOf.set(d.userId, (postsOf.get(d.userId) ?? 0) + d.attempts.length);
    }

    const minimumByStream: Record<string, number> = {};
    const byPreset: SteadyResult['byPreset'] = {};
    const waitsByPreset = new Map<string, number[]>();
    let deviceSyncs = 0;
    let syncsWithoutNewData = 0;
    for (const participant of ids) {
      const user = userOf.get(participant.participantId)!;
      const syncs = deviceSyncsBetween(sim.world, user, from, to);
      const pollTimes = polls.filter((x) => x.participantId === participant.participantId).map((x) => x.at).sort((a, b) => a - b);
      const perEndpoint = api.state.counters.requests[participant.userId] ?? {};
      const e = (byPreset[participant.preset] ??= {
        participants: 0,
        syncsPerDay: 0,
        pollsPerDay: 0,
        requests: 0,
        minimum: 0,
        ratio: 0,
        ...(webhooks ? { notifications: 0, minimumNotifications: 0 } : {}),
        byEndpoint: {},
        freshness: { samples: 0, syncsWithoutNewData: 0, p50: 0, p95: 0, max: 0 },
      });
      if (webhooks) {
        const posts = postsOf.get(participant.userId) ?? 0;
        e.notifications! += posts;
        e.requests += posts;
      }
      e.participants++;
      e.syncsPerDay += syncs.length;
      e.pollsPerDay += pollTimes.length;
      if (webhooks) e.webhookSyncsPerDay = (e.webhookSyncsPerDay ?? 0) + polls.filter((x) => x.participantId === participant.participantId && x.reason === 'webhook').length;
      for (const [endpoint, n] of Object.entries(perEndpoint)) {
        e.requests += n;
        e.byEndpoint[endpoint] = (e.byEndpoint[endpoint] ?? 0) + n;
      }
      // What each sync brought: the world just before it against the world just before the next
      // one (or the run's end), so that processing finished after the sync (sleep, nightly
      // values) counts with it. Changes before the first sync of the run belong to the sync
      // before the run, still to be fetched.
      const bounds = [from, ...syncs, to + 1];
      let before = new Map<string, string>();
      const snapshot = (t: number) => {
        const prints = new Map<string, string>();
        const today = localDate(user, t);
        prints.set('device', fingerprint(sim.world, user, 'device', today, t));
        for (let i = 0; i < o.backfillDays; i++) {
          const day = addDays(today, -i);
          for (const stream of DATA_STREAMS) prints.set(`${stream}|${day}`, fingerprint(sim.world, user, stream, day, t, webhooks));
        }
        return prints;
      };
      before = snapshot(bounds[0]! - 1);
      const waits = waitsByPreset.get(participant.preset) ?? [];
      waitsByPreset.set(participant.preset, waits);
      for (let k = 0; k + 1 < bounds.length; k++) {
        const after = snapshot(bounds[k + 1]! - 1);
        const changedDays = new Map<StreamName, string[]>();
        for (const [key, print] of after) {
          if (before.get(key) === print) continue;
          const [stream, day] = key.split('|') as [StreamName, string | undefined];
          const list = changedDays.get(stream) ?? [];
          list.push(day ?? '');
          changedDays.set(stream, list);
        }
        for (const [stream, days] of changedDays) {
          const n = rangeRequests(days, rangeDays[stream]);
          minimumByStream[stream] = (minimumByStream[stream] ?? 0) + n;
          e.minimum += n;
        }
        before = after;
        if (k === 0) continue; // the interval before the run's first sync
        deviceSyncs++;
        const newData = [...changedDays.keys()].some((s) => s !== 'device');
        if (!newData) {
          syncsWithoutNewData++;
          e.freshness.syncsWithoutNewData++;
          continue;
        }
        if (webhooks) {
          // One notification per subscribed data type the sync brought new data (§4.4: one `dataType` each).
          const types = [...changedDays.keys()].filter((s): s is Exclude<StreamName, 'device'> => s !== 'device' && SUBSCRIBED_DATA_TYPES.includes(GOOGLE_DATA_TYPE[s as Exclude<StreamName, 'device'>]));
          e.minimumNotifications! += types.length;
          e.minimum += types.length;
        }
        const at = bounds[k]!;
        const poll = pollTimes.find((t) => t >= at);
        // A sync no poll reached before the run ended waits at least until the end.
        waits.push(((poll ?? to) - at) / 1000);
      }
    }
    const days = (to - from) / 86_400_000;
    for (const [preset, e] of Object.entries(byPreset)) {
      e.syncsPerDay /= e.participants * days;
      e.pollsPerDay /= e.participants * days;
      if (e.webhookSyncsPerDay !== undefined) e.webhookSyncsPerDay /= e.participants * days;
      e.ratio = e.minimum ? e.requests / e.minimum : 0;
      const waits = (waitsByPreset.get(preset) ?? []).sort((a, b) => a - b);
      e.freshness = { ...e.freshness, samples: waits.length, p50: percentile(waits, 0.5) ?? 0, p95: percentile(waits, 0.95) ?? 0, max: waits.at(-1) ?? 0 };
    }
    const byEndpoint: Record<string, number> = {};
    for (const e of Object.values(byPreset)) for (const [k, n] of Object.entries(e.byEndpoint)) byEndpoint[k] = (byEndpoint[k] ?? 0) + n;
    const providerRequests = Object.values(byEndpoint).reduce((a, b) => a + b, 0);
    const minimumProviderRequests = Object.values(minimumByStream).reduce((a, b) => a + b, 0);
    const notifications = Object.values(byPreset).reduce((a, e) => a + (e.notifications ?? 0), 0);
    const minimumNotifications = Object.values(byPreset).reduce((a, e) => a + (e.minimumNotifications ?? 0), 0);
    const requests = providerRequests + notifications;
    const minimum = minimumProviderRequests + minimumNotifications;
    return {
      mode,
      provider: webhooks ? 'google-health' : 'fitbit',
      ...(webhooks ? { notifyAfterSeconds: notifyAfterMs / 1000, notifications, minimumNotifications, providerRequests, minimumProviderRequests } : {}),
      participants: ids.length,
      simDays: o.simDays,
      pollSeconds: o.pollSeconds,
      pollMaxSeconds,
      participantDays,
      polls: polls.length,
      deviceSyncs,
      syncsWithoutNewData,
      requests,
      minimum,
      requestsPerParticipantDay: requests / participantDays,
      minimumPerParticipantDay: minimum / participantDays,
      ratio: minimum ? requests / minimum : 0,
      byEndpoint,
      minimumByStream,
      byPreset,
      rateLimited: api.state.counters.rateLimited - rateLimited0,
      syncErrors,
      outcomes,
      realSeconds: (Date.now() - realStart) / 1000,
    };
  } finally {
    await p.close();
  }
}
