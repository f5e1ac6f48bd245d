import { randomUUID } from 'node:crypto';
import { DelayedError, type Job } from 'bullmq';
import type { Kysely } from 'kysely';
import { Counter, type Registry } from 'prom-client';
import {
  acquireWriterLease,
  findWriterLeaseRemainingMs,
  releaseWriterLease,
  renewWriterLease,
  abandonBatch,
  claimBatch,
  findBatchRecords,
  findOpenBatches,
  markBatchDelivered,
  markBatchUnknown,
  parkBatch,
  settleReconciledBatch,
  toSensorEvent,
  type Database,
  type DeliveryBatch,
  type OutboxRecord,
} from '@fitlamp/db';
import { LampError, type LampClient } from '@fitlamp/lamp';
import { canonicalJson } from '@fitlamp/provider';
import { deliverPayload, startShardWorkers, type DeliverPayload, type ShardWorkerOptions, type ShardWorkers } from '@fitlamp/queues';
import type { Logger } from '@fitlamp/runtime';
import { appendToArchive } from './archive.ts';

export interface DeliverDeps {
  db: Kysely<Database>;
  lamp: LampClient;
  logger: Logger;
  batchSize: number;
  maxBytes: number;
  /** A writer's lease on a participant, from its last renewal; longer than a POST can take. */
  leaseMs: number;
  metrics: WriterMetrics;
  /**
   * How long after an unknown outcome mindLAMP may still be storing the batch (a slow server
   * answers after the client's timeout, and stores anyway). Events a read-back misses are sent
   * again only once the batch's POST is this old; before that the job comes back later. Default 0.
   */
  settleMs?: number;
  /** ARCHIVE_DIR: where delivered events are appended as NDJSON (archive.ts); absent = off. */
  archiveDir?: string;
}

export interface WriterMetrics {
  events: Counter<'outcome'>;
  batches: Counter<'outcome'>;
}

export function createWriterMetrics(registry: Registry): WriterMetrics {
  return {
    events: new Counter({
      name: 'fitlamp_lamp_events_total',
      help: 'Events by delivery outcome: delivered, reconciled (found stored after an unknown outcome), parked',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    batches: new Counter({
      name: 'fitlamp_lamp_batches_total',
      help: 'POSTs to mindLAMP by outcome',
      labelNames: ['outcome'],
      registers: [registry],
    }),
  };
}

export interface DeliverSummary {
  participantId: string;
  delivered: number;
  reconciled: number;
  parked: number;
  batches: number;
}

/** Page size when reading back from mindLAMP (negative limit: oldest first). */
const READ_BACK_PAGE = 5_000;

const matchKey = (timestamp: number, data: unknown) => `${timestamp}|${canonicalJson(data)}`;

/**
 * Reads back the batch's time range from mindLAMP, per sensor, and settles it: records mindLAMP
 * holds are delivered, the rest return to pending. This is what makes an unknown outcome (a
 * timeout or reset after the server may have stored the events) safe to retry without writing
 * anything twice (DESIGN.md principle 2).
 */
export async function reconcileBatch(
  deps: DeliverDeps,
  batch: DeliveryBatch,
  /** How old the batch's POST is; with events missing and younger than `settleMs`, nothing is settled. */
  ageMs = Number.POSITIVE_INFINITY,
): Promise<{ found: number; missing: number; settled: boolean }> {
  const records = await findBatchRecords(deps.db, batch.id);
  const bySensor = new Map<string, OutboxRecord[]>();
  for (const r of records) bySensor.set(r.sensor, [...(bySensor.get(r.sensor) ?? []), r]);
  const found: string[] = [];
  for (const [sensor, list] of bySensor) {
    const from = Math.min(...list.map((r) => r.timestamp));
    const to = Math.max(...list.map((r) => r.timestamp)) + 1;
    const stored = new Map<string, number>();
    let cursor = from;
    // Page oldest-first; `from` is inclusive, so a page boundary repeats a timestamp rather than
    // skipping one, and the counts below absorb the overlap (reference §2.1).
    for (;;) {
      const page = await deps.lamp.listSensorEvents(batch.participant_id, { origin: sensor, from: cursor, to, limit: -READ_BACK_PAGE });
      const boundary = page.length === READ_BACK_PAGE ? page[page.length - 1]!.timestamp : null;
      for (const event of page) {
        if (boundary !== null && event.timestamp === boundary) continue;
        const key = matchKey(Number(event.timestamp), event.data);
        stored.set(key, (stored.get(key) ?? 0) + 1);
      }
      if (boundary === null) break;
      if (boundary === cursor) throw new Error(`more than ${READ_BACK_PAGE} events share timestamp ${cursor}`);
      cursor = boundary;
    }
    for (const r of list) {
      const key = matchKey(r.timestamp, r.data);
      const n = stored.get(key) ?? 0;
      if (n > 0) {
        found.push(r.id);
        stored.set(key, n - 1);
      }
    }
  }
  if (found.length < records.length && ageMs < (deps.settleMs ?? 0)) {
    // The server may still be writing what is missing: sending it now could store it twice.
    return { found: found.length, missing: records.length - found.length, settled: false };
  }
  await settleReconciledBatch(
    deps.db,
    batch,
    found,
    `reconciled by read-back: ${found.length} of ${records.length} events were stored`,
  );
  const foundIds = new Set(found);
  await archive(deps, batch.participant_id, records.filter((r) => foundIds.has(r.id)));
  return { found: found.length, missing: records.length - found.length, settled: true };
}

/** A batch's read-back came too early to tell missing events from ones mindLAMP is still storing. */
export class BatchNotSettledError extends Error {
  override name = 'BatchNotSettledError';
  constructor(
    readonly batchId: string,
    /** How long until the batch is old enough to settle. */
    readonly retryInMs: number,
  ) {
    super(`batch ${batchId}: read back too soon after an unknown outcome; settling in ${Math.ceil(retryInMs)} ms`);
  }
}

/** Appends delivered events to the raw archive when one is configured; a failure is logged, never thrown. */
async function archive(deps: DeliverDeps, participantId: string, records: readonly OutboxRecord[]): Promise<void> {
  if (!deps.archiveDir || records.length === 0) return;
  try {
    await appendToArchive(deps.archiveDir, participantId, records);
  } catch (error) {
    deps.logger.error({ participantId, events: records.length, err: error instanceof Error ? error.message : String(error) }, 'could not append delivered events to the archive');
  }
}

/**
 * The lamp-writer's processor: per participant, settle any batch whose outcome is unknown, then
 * POST pending records in time order, in batches, until none are left. mindLAMP cannot
 * deduplicate, so nothing is ever re-sent without first reading back what it holds.
 */
export function createDeliverProcessor(deps: DeliverDeps) {
  const deliver = createDeliverRun(deps);
  return async function processDeliver(job: Job<DeliverPayload>, token?: string): Promise<DeliverSummary> {
    const { participantId } = deliverPayload.parse(job.data);
    const lease = await takeWriterLease(deps, participantId);
    if (!lease) {
      // Another writer is delivering this participant (a stalled job re-run, or a job re-added
      // after a Redis flush). Come back when it has likely finished, or its lease has expired.
      const remaining = (await findWriterLeaseRemainingMs(deps.db, participantId)) ?? 0;
      await job.moveToDelayed(Date.now() + Math.min(remaining, LEASE_RETRY_MS) + Math.random() * LEASE_RETRY_MS, token);
      throw new DelayedError();
    }
    try {
      return await deliver(job, participantId, lease.keep);
    } catch (error) {
      if (error instanceof BatchNotSettledError && token) {
        // Not a failure: come back once the server has had time to finish (no attempt used up).
        await job.moveToDelayed(Date.now() + error.retryInMs, token);
        throw new DelayedError();
      }
      throw error;
    } finally {
      await lease.release();
    }
  };
}

/** How soon a deliver job that found the participant's lease taken tries again (plus jitter). */
const LEASE_RETRY_MS = 1_000;

interface HeldLease {
  /** Renews the lease; throws if it was lost. Called before anything is sent. */
  keep(): Promise<void>;
  /** Stops renewing and gives the lease up. Never throws: an unreleased lease expires. */
  release(): Promise<void>;
}

/** Takes the participant's writer lease for this run and renews it in the background; null if another writer holds it. */
async function takeWriterLease(deps: DeliverDeps, participantId: string): Promise<HeldLease | null> {
  const holder = randomUUID();
  if (!(await acquireWriterLease(deps.db, participantId, holder, deps.leaseMs))) return null;
  let lost = false;
  // Long read-backs between POSTs must not let the lease lapse; a failed renewal (Postgres away)
  // is left to `keep`, which every POST waits on.
  const timer = setInterval(() => {
    renewWriterLease(deps.db, participantId, holder, deps.leaseMs).then(
      (held) => void (lost ||= !held),
      () => undefined,
    );
  }, Math.max(1_000, Math.floor(deps.leaseMs / 3)));
  timer.unref();
  return {
    async keep() {
      if (lost || !(await renewWriterLease(deps.db, participantId, holder, deps.leaseMs))) {
        lost = true;
        throw new Error(`lost the writer lease on ${participantId}; another writer may be delivering`);
      }
    },
    async release() {
      clearInterval(timer);
      await releaseWriterLease(deps.db, participantId, holder).catch((error: unknown) => {
        deps.logger.warn({ participantId, err: error instanceof Error ? error.message : String(error) }, 'could not release the writer lease; it will expire');
      });
    },
  };
}

/** One participant's delivery, run while holding their writer lease (`keep` renews it). */
function createDeliverRun(deps: DeliverDeps) {
  return async function deliver(job: Job<DeliverPayload>, participantId: string, keep: () => Promise<void>): Promise<DeliverSummary> {
    const log = deps.logger.child({ participantId, jobId: job.id });
    const summary: DeliverSummary = { participantId, delivered: 0, reconciled: 0, parked: 0, batches: 0 };

    // Holding the lease, any batch still `sending` belongs to a writer whose lease expired: it
    // died, or its POST ended long ago (the lease outlives any POST).
    for (const open of await findOpenBatches(deps.db, participantId)) {
      await keep();
      const { found, missing, settled } = await reconcileBatch(deps, open, open.ageMs);
      if (!settled) {
        log.info({ batchId: open.id, found, missing, ageMs: Math.round(open.ageMs) }, 'events missing from an unknown batch; waiting for mindLAMP to finish before sending them again');
        throw new BatchNotSettledError(open.id, (deps.settleMs ?? 0) - open.ageMs);
      }
      summary.reconciled += found;
      deps.metrics.events.inc({ outcome: 'reconciled' }, found);
      log.info({ batchId: open.id, found, missing }, 'reconciled a batch whose outcome was unknown');
    }

    for (;;) {
      // Renewed before each claim: the POST below then ends (or times out) before the lease can lapse.
      await keep();
      const claimed = await claimBatch(deps.db, participantId, deps.batchSize, deps.maxBytes);
      if (!claimed) break;
      const { batch, records } = claimed;
      summary.batches++;
      try {
        await deps.lamp.postSensorEvents(participantId, records.map(toSensorEvent));
        await markBatchDelivered(deps.db, batch);
        await archive(deps, participantId, records);
        summary.delivered += records.length;
        deps.metrics.batches.inc({ outcome: 'delivered' });
        deps.metrics.events.inc({ outcome: 'delivered' }, records.length);
      } catch (error) {
        if (!(error instanceof LampError)) {
          await markBatchUnknown(deps.db, batch, error instanceof Error ? error.message : String(error));
          throw error;
        }
        if (error.code === 'unavailable') {
          // Refused before a byte was sent: nothing can have been stored.
          await abandonBatch(deps.db, batch, error.message);
          deps.metrics.batches.inc({ outcome: 'unavailable' });
          throw error;
        }
        if (error.code === 'outcome_unknown' || error.code === 'server_error' || error.status === 429) {
          // A 5xx can follow a partial write (reference §1.3); a timeout may follow a full one,
          // and a slow server may still be writing. The batch is read back on the retry, one
          // backoff interval later, before anything is sent again.
          await markBatchUnknown(deps.db, batch, error.message);
          deps.metrics.batches.inc({ outcome: 'unknown' });
          log.warn({ batchId: batch.id, lampError: error.code, status: error.status }, 'delivery outcome unknown; will read back before retrying');
          throw error;
        }
        if (error.code === 'unauthorized' || error.code === 'forbidden') {
          // The researcher credential is wrong: every batch would fail the same way. Keep the
          // records pending and retry with backoff; /readyz and the logs say why.
          await abandonBatch(deps.db, batch, error.message);
          deps.metrics.batches.inc({ outcome: 'unauthorized' });
          throw error;
        }
        // Any other 4xx: this batch is refused; park it for an admin and keep the rest flowing.
        await parkBatch(deps.db, batch, `${error.status ?? ''} ${error.code}: ${error.message}`.trim());
        summary.parked += records.length;
        deps.metrics.batches.inc({ outcome: 'parked' });
        deps.metrics.events.inc({ outcome: 'parked' }, records.length);
        log.error({ batchId: batch.id, status: error.status, lampError: error.code }, 'mindLAMP refused a batch; parked');
      }
    }
    if (summary.batches > 0) log.info(summary, 'delivered');
    return summary;
  };
}

/** Starts the BullMQ workers for the consumed deliver shards. Close them first at shutdown. */
export function startDeliverWorker(deps: DeliverDeps, options: ShardWorkerOptions): ShardWorkers<'deliver', DeliverSummary> {
  return startShardWorkers('deliver', createDeliverProcessor(deps), options, (worker) => {
    worker.on('failed', (job, error) => {
      deps.logger.warn({ jobId: job?.id, attempts: job?.attemptsMade, err: error.message }, 'delivery job failed');
    });
    worker.on('error', (error) => deps.logger.error({ err: error.message }, 'deliver worker error'));
  });
}
