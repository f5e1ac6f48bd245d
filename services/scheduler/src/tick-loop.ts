import { setTimeout as delay } from 'node:timers/promises';
import type { Kysely } from 'kysely';
import { withSchedulerLock, type Database } from '@fitlamp/db';
import type { Logger } from '@fitlamp/runtime';
import type { TickResult } from './tick.ts';

/** What one attempt to tick came to. */
export type TickOutcome =
  /** This replica held the lock and the pass completed. */
  | { kind: 'ok'; result: TickResult }
  /** The pass, or taking the lock, failed (Postgres or Redis unreachable, say); tried again next interval. */
  | { kind: 'error'; error: Error }
  /** Another replica holds the lock: it ticks for this interval. */
  | { kind: 'skipped' };

export interface TickLoopOptions {
  db: Kysely<Database>;
  /** One scheduler pass ({@link runTick}); runs only while this replica holds the scheduler lock. */
  tick: () => Promise<TickResult>;
  intervalMs: number;
  logger: Logger;
  /** Told of every attempt: metrics. */
  onTick?: (outcome: TickOutcome) => void;
  /** Waits `ms`, or until `signal` aborts [a timer]. Tests pass one they advance by hand. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

export interface TickLoop {
  /** Stops after the pass in progress, if any, and releases the lock. Idempotent. */
  stop(): Promise<void>;
}

async function sleepFor(ms: number, signal: AbortSignal): Promise<void> {
  await delay(ms, undefined, { signal, ref: false }).catch(() => {});
}

const asError = (error: unknown) => (error instanceof Error ? error : new Error(String(error)));

/**
 * Runs the scheduler's pass once per interval across all replicas. Each attempt takes the
 * scheduler's advisory lock without waiting (`withSchedulerLock`); the replica that gets it ticks
 * and keeps the lock until one interval after the tick began, then tries again at once, so it
 * stays the one that ticks. The others find the lock taken, skip, and try again one interval
 * later; when the holder dies, Postgres releases its lock and one of them takes over. So with N
 * replicas the work is done once per interval, and ticks never come closer than one interval.
 *
 * Nothing stops the loop but {@link TickLoop.stop}: a failed pass (Redis flushed, restarting or
 * unreachable; Postgres unreachable) is reported and the next interval tries again. Postgres, not
 * Redis, says what is due, so the first pass after Redis comes back re-creates every lost job.
 */
export function startTickLoop(options: TickLoopOptions): TickLoop {
  const { db, intervalMs, logger } = options;
  const sleep = options.sleep ?? sleepFor;
  const stopping = new AbortController();

  const report = (outcome: TickOutcome) => {
    if (outcome.kind === 'error') logger.warn({ err: outcome.error.message }, 'tick failed; will try again');
    try {
      options.onTick?.(outcome);
    } catch (error) {
      logger.warn({ err: asError(error).message }, 'tick listener failed');
    }
  };

  /** One attempt; answers whether this replica held the lock (and so already waited out the interval). */
  const attempt = async (): Promise<boolean> => {
    let reported = false;
    try {
      const run = await withSchedulerLock(db, async () => {
        const started = Date.now();
        let outcome: TickOutcome;
        try {
          outcome = { kind: 'ok', result: await options.tick() };
        } catch (error) {
          outcome = { kind: 'error', error: asError(error) };
        }
        report(outcome);
        reported = true;
        // Holding the lock for the rest of the interval is what makes a replica that tries
        // meanwhile skip: without it, replicas ticking at different phases would each tick.
        await sleep(Math.max(0, started + intervalMs - Date.now()), stopping.signal);
      });
      if (!run.acquired) report({ kind: 'skipped' });
      return run.acquired;
    } catch (error) {
      // The lock's transaction failed: Postgres is unreachable, or the connection broke while
      // holding the lock (Postgres then released it).
      if (!reported) report({ kind: 'error', error: asError(error) });
      else logger.warn({ err: asError(error).message }, 'scheduler lock lost');
      return false;
    }
  };

  const done = (async () => {
    while (!stopping.signal.aborted) {
      const held = await attempt();
      if (!held && !stopping.signal.aborted) await sleep(intervalMs, stopping.signal);
    }
  })();

  return {
    async stop() {
      stopping.abort();
      await done;
    },
  };
}
