import { Worker, type ConnectionOptions, type Job } from 'bullmq';
import type { Kysely } from 'kysely';
import { Counter, type Registry } from 'prom-client';
import {
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
import { deliverPayload, queueCatalog, type DeliverPayload } from '@fitlamp/queues';
import type { Logger } from '@fitlamp/runtime';

export interface DeliverDeps {
  db: Kysely<Database>;
  lamp: LampClient;
  logger: Logger;
  batchSize: number;
  maxBytes: number;
  metrics: WriterMetrics;
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
export async function reconcileBatch(deps: DeliverDeps, batch: DeliveryBatch): Promise<{ found: number; missing: number }> {
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
  await settleReconciledBatch(
    deps.db,
    batch,
    found,
    `reconciled by read-back: ${found.length} of ${records.length} events were stored`,
  );
  return { found: found.length, missing: records.length - found.length };
}

/**
 * The lamp-writer's processor: per participant, settle any batch whose outcome is unknown, then
 * POST pending records in time order, in batches, until none are left. mindLAMP cannot
 * deduplicate, so nothing is ever re-sent without first reading back what it holds.
 */
export function createDeliverProcessor(deps: DeliverDeps) {
  return async function processDeliver(job: Job<DeliverPayload>): Promise<DeliverSummary> {
    const { participantId } = deliverPayload.parse(job.data);
    const log = deps.logger.child({ participantId, jobId: job.id });
    const summary: DeliverSummary = { participantId, delivered: 0, reconciled: 0, parked: 0, batches: 0 };

    for (const open of await findOpenBatches(deps.db, participantId)) {
      const { found, missing } = await reconcileBatch(deps, open);
      summary.reconciled += found;
      deps.metrics.events.inc({ outcome: 'reconciled' }, found);
      log.info({ batchId: open.id, found, missing }, 'reconciled a batch whose outcome was unknown');
    }

    for (;;) {
      const claimed = await claimBatch(deps.db, participantId, deps.batchSize, deps.maxBytes);
      if (!claimed) break;
      const { batch, records } = claimed;
      summary.batches++;
      try {
        await deps.lamp.postSensorEvents(participantId, records.map(toSensorEvent));
        await markBatchDelivered(deps.db, batch);
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

export interface StartDeliverWorkerOptions {
  connection: ConnectionOptions;
  prefix: string;
  concurrency: number;
}

export function startDeliverWorker(deps: DeliverDeps, options: StartDeliverWorkerOptions): Worker<DeliverPayload, DeliverSummary> {
  const worker = new Worker<DeliverPayload, DeliverSummary>(queueCatalog.deliver.name, createDeliverProcessor(deps), {
    connection: options.connection,
    prefix: options.prefix,
    concurrency: options.concurrency,
  });
  worker.on('failed', (job, error) => {
    deps.logger.warn({ jobId: job?.id, attempts: job?.attemptsMade, err: error.message }, 'delivery job failed');
  });
  worker.on('error', (error) => deps.logger.error({ err: error.message }, 'deliver worker error'));
  return worker;
}
