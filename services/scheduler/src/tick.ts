import type { Kysely } from 'kysely';
import { findDueParticipants, findParticipantsWithLostDeliveries, type Database } from '@fitlamp/db';
import { enqueue, type QueueSet } from '@fitlamp/queues';
import type { Logger } from '@fitlamp/runtime';

export interface TickDeps {
  db: Kysely<Database>;
  queues: QueueSet;
  logger: Logger;
  /** Jobs for due participants are spread over up to this long, so a full tick does not burst. */
  spreadMs: number;
  /** Records still undelivered after this long get a delivery job. */
  sweepAfterMs: number;
  now?: () => number;
  random?: () => number;
}

export interface TickResult {
  dueParticipants: number;
  deliverySweeps: number;
}

/**
 * One scheduler pass. Every action is idempotent: job ids are per participant, so any number of
 * scheduler replicas (or a Redis that lost every job) converge on exactly one job per
 * participant that needs one. Postgres, not Redis, says what is due.
 */
export async function runTick(deps: TickDeps): Promise<TickResult> {
  const now = new Date(deps.now?.() ?? Date.now());
  const random = deps.random ?? Math.random;

  // Connected participants with a cursor due on this clock, or with no cursor at all.
  const due = await findDueParticipants(deps.db, now);
  for (const participantId of due) {
    await enqueue(deps.queues, 'sync', { participantId, reason: 'scheduled' }, { delayMs: Math.floor(random() * deps.spreadMs) });
  }

  // Lost work: records that should have reached mindLAMP by now, and batches left mid-flight by
  // a crash. Each gets its participant a delivery job (a no-op if one is waiting). Judged on the
  // database's clock: the scheduler's may follow a simulated provider.
  const sweep = await findParticipantsWithLostDeliveries(deps.db, deps.sweepAfterMs);
  for (const participantId of sweep) await enqueue(deps.queues, 'deliver', { participantId, reason: 'sweep' });

  const result = { dueParticipants: due.length, deliverySweeps: sweep.length };
  if (result.dueParticipants || result.deliverySweeps) deps.logger.info(result, 'tick');
  return result;
}
