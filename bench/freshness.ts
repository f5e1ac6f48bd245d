// Section 3, freshness: the four services as processes; simulated watches sync only when the
// bench says so, at random moments, and the bench watches the in-process mindLAMP store for the
// first event from the minutes that sync made visible. Two ways in (issue 14 item 4):
// - polling: Fitbit participants polled every `pollSeconds`;
// - webhooks: Google Health participants, the simulator notifying the gateway `notifyAfterMs`
//   after the sync, polling left at its default as the safety net.
// A sync that made no new data visible (the watch not worn since the last one: no step, no heart
// rate in the world between the two syncs) is not a sample; it is counted apart. Every other
// sync is a sample, and one not delivered within the watch window counts as "> window" in the
// percentiles: a miss raises them, it never leaves them.
import os from 'node:os';
import { startStack } from '@fitlamp/harness';
import { findUser, lastSync, syncUser, viewDay, type World, type WorldUser } from '@fitlamp/simulators';
import { addDays, localDate, percentile } from './steady.ts';
import { participantsFor } from './throughput.ts';

export type FreshnessMode = 'polling' | 'webhooks';

export interface FreshnessOptions {
  mode: FreshnessMode;
  participants: number;
  rounds: number;
  /** SYNC_INTERVAL_SECONDS of the stack. */
  pollSeconds: number;
  /** Webhooks: the simulator notifies a sync this long after it. */
  notifyAfterMs?: number;
  latencyMs: number;
  logDir: string;
  /** Run the services' built JavaScript, as production does [true]; false: source through tsx. */
  built?: boolean;
  log: (line: string) => void;
}

export interface FreshnessResult {
  mode: FreshnessMode;
  provider: 'fitbit' | 'google-health';
  pollSeconds: number;
  /** Webhooks: seconds from the device sync to the simulator's notification. */
  notifyAfterSeconds?: number;
  schedulerTickSeconds: number;
  latencyMs: number;
  /** Each sync is watched this long; a sample not delivered by then is a miss. */
  windowSeconds: number;
  /** Device syncs the bench made. */
  syncs: number;
  /** Syncs that made no new data visible, per the simulator's world: not samples. */
  withoutNewData: number;
  /** Of those, how many an event from the sync's minutes reached mindLAMP anyway (a check: 0 expected). */
  withoutNewDataDelivered: number;
  /** Syncs with new data: delivered + missed. */
  samples: number;
  missed: number;
  /** Seconds from the sync to its first event in mindLAMP, misses counted as beyond the window; null: beyond it. */
  p50: number | null;
  p95: number | null;
  p99: number | null;
  max: number | null;
  loadBefore: number[];
  loadAfter: number[];
}

/** Whether the world holds a step or a heart-rate minute in [from, to), as a sync at `to` shows it. */
export function newMinutesVisible(world: World, user: WorldUser, from: number, to: number): boolean {
  for (let day = localDate(user, from); day <= localDate(user, to); day = addDays(day, 1)) {
    const view = viewDay(world, user, day, to);
    if (!view.day) continue;
    const first = Math.max(0, Math.floor((from - view.start) / 60_000));
    for (let i = first; i < view.visibleMinutes && view.start + i * 60_000 < to; i++) {
      if (view.start + i * 60_000 < from) continue;
      if ((view.day.steps[i] ?? 0) > 0 || (view.day.heartRate[i] ?? null) !== null) return true;
    }
  }
  return false;
}

const WINDOW_MS = 90_000;
const SPREAD_MS = 30_000;

export async function runFreshness(o: FreshnessOptions): Promise<FreshnessResult> {
  const loadBefore = os.loadavg();
  const provider = o.mode === 'webhooks' ? 'google-health' : 'fitbit';
  const participants = participantsFor(o.participants).map((p) => ({ ...p, provider, user: { ...p.user, autoSyncMinutes: 0 } }) as const);
  const tickSeconds = 2;
  const stack = await startStack({
    participants,
    backfillDays: 2,
    providerLatencyMs: o.latencyMs,
    syncIntervalSeconds: o.pollSeconds,
    schedulerTickSeconds: tickSeconds,
    ...(o.mode === 'webhooks' ? { google: true, googleNotifyAfterMs: o.notifyAfterMs ?? 5_000 } : {}),
    logDir: o.logDir,
    seed: 'fitlamp-bench-fresh',
    built: o.built ?? true,
  });
  try {
    const world = stack.fitbit.world;
    const clock = stack.fitbit.clock;
    const users = new Map(participants.map((p) => [p.id, findUser(world, p.user.id)!]));
    for (const p of participants) syncUser(world, users.get(p.id)!, clock.now() - 120_000);
    for (const p of participants) await stack.connect(p);
    await stack.waitUntilCaughtUp({ timeoutMs: 300_000 });
    o.log(`    ${participants.length} ${provider} participants caught up; ${o.rounds} round(s) of device syncs at random moments`);

    const events = stack.lamp.store.events;
    const latencies: number[] = [];
    let syncs = 0;
    let withoutNewData = 0;
    let withoutNewDataDelivered = 0;
    let missed = 0;
    // Each participant syncs once per round, at a random moment in its first 30 s, and each sync
    // is watched for 90 s: at least 90 s between a watch's syncs.
    for (let round = 0; round < o.rounds; round++) {
      const roundStart = Date.now();
      const pending = participants.map((p) => ({ p, at: roundStart + Math.random() * SPREAD_MS, prev: 0, syncedAt: 0, newData: false, done: false }));
      const watchFrom = events.length;
      while (Date.now() < roundStart + SPREAD_MS + WINDOW_MS && pending.some((x) => !x.done)) {
        for (const x of pending) {
          if (x.syncedAt === 0 && Date.now() >= x.at) {
            const user = users.get(x.p.id)!;
            x.syncedAt = clock.now();
            x.prev = lastSync(world, user, x.syncedAt) ?? 0;
            syncUser(world, user, x.syncedAt);
            x.newData = newMinutesVisible(world, user, x.prev, x.syncedAt);
          }
        }
        for (let i = watchFrom; i < events.length; i++) {
          const e = events[i]!;
          const x = pending.find((y) => y.p.id === e.participantId && y.syncedAt > 0 && !y.done);
          if (!x) continue;
          const ts = Number(e.event.timestamp);
          if (ts >= x.prev && ts < x.syncedAt && e.receivedAt >= x.syncedAt && e.receivedAt - x.syncedAt <= WINDOW_MS) {
            x.done = true;
            if (x.newData) latencies.push((e.receivedAt - x.syncedAt) / 1000);
            else withoutNewDataDelivered++;
          }
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      for (const x of pending) {
        if (x.syncedAt === 0) continue;
        syncs++;
        if (!x.newData) withoutNewData++;
        else if (!x.done) {
          missed++;
          latencies.push(Number.POSITIVE_INFINITY);
        }
      }
      o.log(`    round ${round + 1}: ${syncs} syncs, ${withoutNewData} without new data, ${latencies.length} samples, ${missed} missed`);
    }
    latencies.sort((a, b) => a - b);
    return {
      mode: o.mode,
      provider,
      pollSeconds: o.pollSeconds,
      ...(o.mode === 'webhooks' ? { notifyAfterSeconds: (o.notifyAfterMs ?? 5_000) / 1000 } : {}),
      schedulerTickSeconds: tickSeconds,
      latencyMs: o.latencyMs,
      windowSeconds: WINDOW_MS / 1000,
      syncs,
      withoutNewData,
      withoutNewDataDelivered,
      samples: latencies.length,
      missed,
      p50: percentile(latencies, 0.5),
      p95: percentile(latencies, 0.95),
      p99: percentile(latencies, 0.99),
      max: percentile(latencies, 1),
      loadBefore,
      loadAfter: os.loadavg(),
    };
  } finally {
    await stack.stop();
  }
}
