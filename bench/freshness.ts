// Section 3, freshness: the four services as processes with a short polling interval; simulated
// watches sync at random moments (they sync only when told, so every new minute comes from a
// sync the bench made) and the bench watches the in-process mindLAMP store for the first event
// that sync made visible.
import { startStack } from '@fitlamp/harness';
import { findUser, lastSync, syncUser } from '@fitlamp/simulators';
import { participantsFor } from './throughput.ts';

export interface FreshnessOptions {
  participants: number;
  rounds: number;
  pollSeconds: number;
  latencyMs: number;
  logDir: string;
  /** Run the services' built JavaScript, as production does [true]; false: source through tsx. */
  built?: boolean;
  log: (line: string) => void;
}

export interface FreshnessResult {
  pollSeconds: number;
  schedulerTickSeconds: number;
  latencyMs: number;
  samples: number;
  missed: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  /**
   * Seconds from the device sync to the participant's newest ledger fetch once the round ended.
   * Later polls fetch again, so this overstates the wait: kept in results.json, not reported.
   */
  waitP50: number;
  waitP95: number;
}

const pct = (xs: number[], p: number) => (xs.length ? xs[Math.min(xs.length - 1, Math.floor(xs.length * p))]! : 0);

export async function runFreshness(o: FreshnessOptions): Promise<FreshnessResult> {
  const participants = participantsFor(o.participants).map((p) => ({ ...p, user: { ...p.user, autoSyncMinutes: 0 } }));
  const tickSeconds = 2;
  const stack = await startStack({
    participants,
    backfillDays: 2,
    providerLatencyMs: o.latencyMs,
    syncIntervalSeconds: o.pollSeconds,
    schedulerTickSeconds: tickSeconds,
    logDir: o.logDir,
    seed: 'fitlamp-bench-fresh',
    built: o.built ?? true,
  });
  try {
    const world = stack.fitbit.world;
    const users = new Map(participants.map((p) => [p.id, findUser(world, p.user.id)!]));
    for (const p of participants) syncUser(world, users.get(p.id)!, stack.fitbit.clock.now() - 120_000);
    for (const p of participants) await stack.connect(p);
    await stack.waitUntilCaughtUp({ timeoutMs: 300_000 });
    o.log(`    ${participants.length} participants caught up; ${o.rounds} rounds of device syncs at random moments`);

    const events = stack.lamp.store.events;
    const latencies: number[] = [];
    const waits: number[] = [];
    let missed = 0;
    // Rounds 90 s apart, each participant syncing once at a random moment in the first 30 s of
    // a round: at least a minute between a watch's syncs, so every sync brings a new minute.
    for (let round = 0; round < o.rounds; round++) {
      const roundStart = Date.now();
      const pending = participants.map((p) => ({ p, at: roundStart + Math.random() * 30_000, prev: 0, syncedAt: 0, done: false }));
      const watchFrom = events.length;
      while (Date.now() < roundStart + 90_000 && pending.some((x) => !x.done)) {
        const nowMs = Date.now();
        for (const x of pending) {
          if (x.syncedAt === 0 && nowMs >= x.at) {
            const user = users.get(x.p.id)!;
            x.prev = lastSync(world, user, stack.fitbit.clock.now()) ?? 0;
            x.syncedAt = stack.fitbit.clock.now();
            syncUser(world, user, x.syncedAt);
          }
        }
        for (let i = watchFrom; i < events.length; i++) {
          const e = events[i]!;
          const x = pending.find((y) => y.p.id === e.participantId && y.syncedAt > 0 && !y.done);
          if (!x) continue;
          const ts = Number(e.event.timestamp);
          if (ts >= x.prev && ts < x.syncedAt && e.receivedAt >= x.syncedAt) {
            x.done = true;
            latencies.push((e.receivedAt - x.syncedAt) / 1000);
          }
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      missed += pending.filter((x) => !x.done).length;
      const rows = await stack.db
        .selectFrom('day_ledger')
        .select(['participant_id', (eb) => eb.fn.max('fetched_at').as('fetched')])
        .groupBy('participant_id')
        .execute();
      for (const x of pending) {
        const fetched = rows.find((r) => r.participant_id === x.p.id)?.fetched;
        if (fetched && x.syncedAt) waits.push((new Date(fetched as unknown as string).getTime() - x.syncedAt) / 1000);
      }
      o.log(`    round ${round + 1}: ${latencies.length} samples so far, ${missed} missed`);
    }
    latencies.sort((a, b) => a - b);
    waits.sort((a, b) => a - b);
    return {
      pollSeconds: o.pollSeconds,
      schedulerTickSeconds: tickSeconds,
      latencyMs: o.latencyMs,
      samples: latencies.length,
      missed,
      p50: pct(latencies, 0.5),
      p95: pct(latencies, 0.95),
      p99: pct(latencies, 0.99),
      max: latencies[latencies.length - 1] ?? 0,
      waitP50: pct(waits, 0.5),
      waitP95: pct(waits, 0.95),
    };
  } finally {
    await stack.stop();
  }
}
