import { Queue, type ConnectionOptions, type JobsOptions } from 'bullmq';
import { z } from 'zod';

/**
 * The one place that decides queue names, job names, payloads, options and job ids. Jobs carry
 * ids and intent only: never tokens, codes or personal data (DESIGN.md principle 5).
 */

const participantId = z.string().min(1).max(128);
const isoDay = z.string().regex(/^\d{4}-\d{2}-\d{2}$/);

export const syncPayload = z.object({
  participantId,
  /** Why the job exists: shown in Bull Board and logs. */
  reason: z.enum(['scheduled', 'connected', 'webhook', 'sweep', 'manual']),
  /** Limit the sync to these streams (a webhook names one data type); all due streams if absent. */
  streams: z.array(z.string().min(1)).optional(),
  /** Days a notification named as changed, in the participant's local calendar. */
  days: z.array(isoDay).optional(),
});
export type SyncPayload = z.infer<typeof syncPayload>;

export const deliverPayload = z.object({
  participantId,
  reason: z.enum(['fetched', 'sweep', 'retry', 'manual']),
});
export type DeliverPayload = z.infer<typeof deliverPayload>;

/** Every queue fitlamp runs. Bull Board and `/metrics` show exactly these. */
export const queueCatalog = {
  sync: {
    name: 'sync',
    jobName: 'sync-participant',
    payload: syncPayload,
    options: {
      attempts: 5,
      backoff: { type: 'exponential', delay: 30_000 },
      // Completed and failed jobs are removed so the same deterministic id can be added again;
      // what happened is kept in Postgres (cursors, ledger), not in Redis.
      removeOnComplete: true,
      removeOnFail: true,
    } satisfies JobsOptions,
  },
  deliver: {
    name: 'deliver',
    jobName: 'deliver-participant',
    payload: deliverPayload,
    options: {
      attempts: 8,
      backoff: { type: 'exponential', delay: 5_000 },
      removeOnComplete: true,
      removeOnFail: true,
    } satisfies JobsOptions,
  },
} as const;

export type QueueKind = keyof typeof queueCatalog;
export const queueKinds = Object.keys(queueCatalog) as QueueKind[];
export type PayloadOf<K extends QueueKind> = z.infer<(typeof queueCatalog)[K]['payload']>;

/** Participant ids become job-id safe: letters, digits, `_` and `.` pass; anything else is `~HH`. */
export function encodeIdPart(value: string): string {
  if (value.length === 0) throw new Error('job id part must not be empty');
  return Array.from(Buffer.from(value, 'utf8'))
    .map((byte) => {
      const ch = String.fromCharCode(byte);
      return /[A-Za-z0-9_.]/.test(ch) ? ch : `~${byte.toString(16).padStart(2, '0')}`;
    })
    .join('');
}

/**
 * Deterministic job ids: one waiting or running job per participant and queue, however many
 * producers (scheduler replicas, webhooks, sweeps) ask for it. Ids use `-`, never `:`.
 */
export function jobIdFor(kind: QueueKind, participantId: string): string {
  return `${kind}-${encodeIdPart(participantId)}`;
}

export interface QueueSet {
  sync: Queue<SyncPayload>;
  deliver: Queue<DeliverPayload>;
  all: Queue[];
  close(): Promise<void>;
}

/** Producer handles for every queue in the catalog, sharing one producer connection. */
export function createQueues(connection: ConnectionOptions, prefix: string): QueueSet {
  const sync = new Queue<SyncPayload>(queueCatalog.sync.name, { connection, prefix });
  const deliver = new Queue<DeliverPayload>(queueCatalog.deliver.name, { connection, prefix });
  const all = [sync, deliver] as Queue[];
  let closing: Promise<void> | undefined;
  return {
    sync,
    deliver,
    all,
    close() {
      closing ??= Promise.all(all.map((q) => q.close())).then(() => undefined);
      return closing;
    },
  };
}

export interface EnqueueOptions {
  /** Delay before the job may run, e.g. jitter or a rate-limit reset. */
  delayMs?: number;
  /** Lower runs first (BullMQ priority). */
  priority?: number;
}

/**
 * Adds the participant's job of the given kind after validating its payload. If one is already
 * waiting, delayed or running under the same id, BullMQ keeps that one: nothing is duplicated.
 */
export async function enqueue<K extends QueueKind>(
  queues: QueueSet,
  kind: K,
  payload: PayloadOf<K>,
  options: EnqueueOptions = {},
): Promise<string> {
  const entry = queueCatalog[kind];
  const data = entry.payload.parse(payload);
  const queue = queues[kind] as Queue;
  const jobId = jobIdFor(kind, data.participantId);
  await queue.add(entry.jobName, data, {
    ...entry.options,
    jobId,
    ...(options.delayMs ? { delay: Math.max(0, Math.round(options.delayMs)) } : {}),
    ...(options.priority ? { priority: options.priority } : {}),
  });
  return jobId;
}
