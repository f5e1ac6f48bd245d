// Section 2, API efficiency in steady state. Two simulated days cannot take two real days, so the
// pipeline runs in this process on the simulator's clock, advanced in steps (bench/sim-pipeline.ts):
// the scheduler's pass (`runTick`) and the fetcher's processor (`createSyncProcessor`, under a real
// BullMQ worker), each step waiting until the sync queue is empty. Provider
// requests are counted by the simulator per user and endpoint; the minimum is computed from the
// simulator's world: per poll, the stream-days whose content changed since that participant's
// previous poll (one request each).
import { STREAMS, type StreamName } from '@fitlamp/provider';
import { viewDay, viewNight, type WorldUser } from '@fitlamp/simulators';
import { startSimPipeline } from './sim-pipeline.ts';

export interface SteadyOptions {
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
  participants: number;
  simDays: number;
  pollSeconds: number;
  participantDays: number;
  polls: number;
  requests: number;
  minimum: number;
  requestsPerParticipantDay: number;
  minimumPerParticipantDay: number;
  ratio: number;
  byEndpoint: Record<string, number>;
  /** Changed stream-days (the minimum) by stream. */
  minimumByStream: Record<string, number>;
  byPreset: Record<string, { participants: number; syncsPerDay: number; requests: number; minimum: number; ratio: number }>;
  rateLimited: number;
  /** Failed syncs by error (retried by BullMQ) and syncs that ended other than `synced`. */
  syncErrors: Record<string, number>;
  outcomes: Record<string, number>;
  realSeconds: number;
}

const DATA_STREAMS = STREAMS.filter((s) => s !== 'device');

function localDate(user: WorldUser, t: number): string {
  let zone = user.zoneHistory[0]!.zone;
  for (const span of user.zoneHistory) if (span.from <= t) zone = span.zone;
  return new Intl.DateTimeFormat('en-CA', { timeZone: zone }).format(t);
}

function addDays(day: string, n: number): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + n * 86_400_000).toISOString().slice(0, 10);
}

/**
 * What the provider would answer for one stream-day at `t`, reduced to a fingerprint: equal
 * fingerprints mean an unchanged answer, so a request for that day would be wasted.
 */
function fingerprint(world: Parameters<typeof viewDay>[0], user: WorldUser, stream: StreamName, day: string, t: number): string {
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
  const p = await startSimPipeline({
    participants: o.participants,
    pollSeconds: o.pollSeconds,
    ...(o.pollMaxSeconds ? { pollMaxSeconds: o.pollMaxSeconds } : {}),
    backfillDays: o.backfillDays,
    refetchDays: o.refetchDays,
    startAt: o.startAt,
    seed: 'fitlamp-bench-steady',
  });
  const { sim, polls, syncErrors, outcomes, userOf, now } = p;
  const ids = p.participants;
  try {
    // Backfill first (not counted), then the steady state from a clean count.
    await p.tick();
    await p.drain();
    o.log(`    backfill of ${ids.length} participants done (${polls.length} syncs); steady state for ${o.simDays} simulated days`);
    const lastPoll = new Map<string, number>();
    for (const poll of polls) lastPoll.set(poll.participantId, poll.at);
    polls.length = 0;
    sim.state.counters.requests = {};
    const rateLimited0 = sim.state.counters.rateLimited;

    const minimumByStream: Record<string, number> = {};
    const minimumByParticipant = new Map<string, number>();
    // The fingerprints seen at each participant's previous poll, so each is computed once.
    const seen = new Map<string, { at: number; prints: Map<string, string> }>();
    const countChanges = (participantId: string, from: number, to: number) => {
      const user = userOf.get(participantId)!;
      const today = localDate(user, to);
      const previous = seen.get(participantId);
      const prints = new Map<string, string>();
      let n = 0;
      for (let i = 0; i < o.backfillDays; i++) {
        const day = addDays(today, -i);
        for (const stream of DATA_STREAMS) {
          const key = `${stream}|${day}`;
          const before = (previous?.at === from ? previous.prints.get(key) : undefined) ?? fingerprint(sim.world, user, stream, day, from);
          const after = fingerprint(sim.world, user, stream, day, to);
          prints.set(key, after);
          if (before !== after) {
            n++;
            minimumByStream[stream] = (minimumByStream[stream] ?? 0) + 1;
          }
        }
      }
      seen.set(participantId, { at: to, prints });
      minimumByParticipant.set(participantId, (minimumByParticipant.get(participantId) ?? 0) + n);
    };

    const end = now() + o.simDays * 86_400_000;
    let step = 0;
    while (now() < end) {
      const before = polls.length;
      await p.step(o.stepSeconds * 1000);
      for (const poll of polls.slice(before)) {
        countChanges(poll.participantId, lastPoll.get(poll.participantId)!, poll.at);
        lastPoll.set(poll.participantId, poll.at);
      }
      if (++step % 180 === 0) o.log(`    ${((step * o.stepSeconds) / 3600).toFixed(0)} simulated hours, ${polls.length} polls`);
    }

    const byEndpoint: Record<string, number> = {};
    const byUser: Record<string, number> = {};
    for (const [userId, perEndpoint] of Object.entries(sim.state.counters.requests)) {
      for (const [endpoint, n] of Object.entries(perEndpoint)) {
        byEndpoint[endpoint] = (byEndpoint[endpoint] ?? 0) + n;
        byUser[userId] = (byUser[userId] ?? 0) + n;
      }
    }
    const requests = Object.values(byEndpoint).reduce((a, b) => a + b, 0);
    const minimum = [...minimumByParticipant.values()].reduce((a, b) => a + b, 0);
    const participantDays = ids.length * o.simDays;
    const byPreset: SteadyResult['byPreset'] = {};
    for (const p of ids) {
      const e = (byPreset[p.preset] ??= { participants: 0, syncsPerDay: 0, requests: 0, minimum: 0, ratio: 0 });
      e.participants++;
      e.requests += byUser[p.userId] ?? 0;
      e.minimum += minimumByParticipant.get(p.participantId) ?? 0;
      e.syncsPerDay = ({ 'new-york': 96, traveler: 24, sydney: 6, kolkata: 8 } as Record<string, number>)[p.preset] ?? 0;
    }
    for (const e of Object.values(byPreset)) e.ratio = e.minimum ? e.requests / e.minimum : 0;
    return {
      participants: ids.length,
      simDays: o.simDays,
      pollSeconds: o.pollSeconds,
      participantDays,
      polls: polls.length,
      requests,
      minimum,
      requestsPerParticipantDay: requests / participantDays,
      minimumPerParticipantDay: minimum / participantDays,
      ratio: minimum ? requests / minimum : 0,
      byEndpoint,
      minimumByStream,
      byPreset,
      rateLimited: sim.state.counters.rateLimited - rateLimited0,
      syncErrors,
      outcomes,
      realSeconds: (Date.now() - realStart) / 1000,
    };
  } finally {
    await p.close();
  }
}
