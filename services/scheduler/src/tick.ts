import { sql, type Kysely } from 'kysely';
import { DUE_NOW, type Database } from '@fitlamp/db';
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
  cursorsCreated: number;
}

/**
 * One scheduler pass. Every action is idempotent: job ids are per participant, so any number of
 * scheduler replicas (or a Redis that lost every job) converge on exactly one job per
 * participant that needs one. Postgres, not Redis, says what is due.
 */
export async function runTick(deps: TickDeps): Promise<TickResult> {
  const now = new Date(deps.now?.() ?? Date.now());
  const random = deps.random ?? Math.random;

  // A connection with no cursors (e.g. created by an older version, or cursors lost) is due now.
  const created = await sql<{ participant_id: string }>`
    insert into sync_cursors (participant_id, stream, next_due_at)
    select c.participant_id, 'device', ${DUE_NOW} from provider_connections c
    where c.status = 'connected'
      and not exists (select 1 from sync_cursors s where s.participant_id = c.participant_id)
    on conflict do nothing
    returning participant_id`.execute(deps.db);

  const due = await deps.db
    .selectFrom('sync_cursors as s')
    .innerJoin('provider_connections as c', 'c.participant_id', 's.participant_id')
    .select('s.participant_id')
    .distinct()
    .where('c.status', '=', 'connected')
    .where('s.next_due_at', '<=', now)
    .execute();
  for (const { participant_id } of due) {
    await enqueue(
      deps.queues,
      'sync',
      { participantId: participant_id, reason: 'scheduled' },
      { delayMs: Math.floor(random() * deps.spreadMs) },
    );
  }

  // Lost work: records that should have reached mindLAMP by now, and batches left mid-flight by
  // a crash. Each gets its participant a delivery job (a no-op if one is waiting). Their
  // `updated_at` is the database's time, so the threshold is too (the scheduler's clock may
  // follow a simulated provider).
  const threshold = sql<Date>`now() - make_interval(secs => ${deps.sweepAfterMs / 1000})`;
  const stale = await deps.db
    .selectFrom('records')
    .select('participant_id')
    .distinct()
    .where('status', 'in', ['pending', 'sending'])
    .where('updated_at', '<', threshold)
    .unionAll(
      deps.db
        .selectFrom('delivery_batches')
        .select('participant_id')
        .distinct()
        .where('status', 'in', ['sending', 'unknown'])
        .where('updated_at', '<', threshold),
    )
    .execute();
  const sweep = [...new Set(stale.map((r) => r.participant_id))];
  for (const participantId of sweep) await enqueue(deps.queues, 'deliver', { participantId, reason: 'sweep' });

  const result = { dueParticipants: due.length, deliverySweeps: sweep.length, cursorsCreated: created.rows.length };
  if (result.dueParticipants || result.deliverySweeps || result.cursorsCreated) deps.logger.info(result, 'tick');
  return result;
}
