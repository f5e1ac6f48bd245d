import { Queue, type ConnectionOptions, type Job, type JobType, type JobsOptions } from 'bullmq';
import { z } from 'zod';
import { shardLayout, shardOf, shardQueueName, type ShardLayout } from './shards.ts';

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
  /** How the kinds are split into shards (see shards.ts). */
  layout: ShardLayout;
  /** The sync queue of each shard, by shard number. */
  sync: Queue<SyncPayload>[];
  /** The deliver queue of each shard, by shard number. */
  deliver: Queue<DeliverPayload>[];
  /** Every queue of every kind and shard, with its kind and shard: what Bull Board and metrics list. */
  all: Array<{ kind: QueueKind; shard: number; queue: Queue }>;
  /** The queue a participant's job of this kind goes to. */
  queueFor<K extends QueueKind>(kind: K, participantId: string): Queue<PayloadOf<K>>;
  /** The participant's job of this kind, if one is waiting, delayed or running. */
  getJob<K extends QueueKind>(kind: K, participantId: string): Promise<Job<PayloadOf<K>> | undefined>;
  /** Jobs of this kind in these states over every shard. */
  getJobs<K extends QueueKind>(kind: K, states: JobType[]): Promise<Array<Job<PayloadOf<K>>>>;
  /** Jobs of this kind over every shard (waiting, delayed, prioritized, …: BullMQ's `count`). */
  count(kind: QueueKind): Promise<number>;
  close(): Promise<void>;
}

/**
 * Producer handles for every queue and shard in the catalog, sharing one producer connection.
 * `layout` defaults to one shard on a single Redis: the historical queue names.
 */
export function createQueues(connection: ConnectionOptions, prefix: string, layout: ShardLayout = shardLayout()): QueueSet {
  const shardNumbers = Array.from({ length: layout.shards }, (_, shard) => shard);
  const open = <T>(kind: QueueKind) =>
    shardNumbers.map((shard) => new Queue<T>(shardQueueName(queueCatalog[kind].name, shard, layout), { connection, prefix }));
  const sync = open<SyncPayload>('sync');
  const deliver = open<DeliverPayload>('deliver');
  const all = [
    ...sync.map((queue, shard) => ({ kind: 'sync' as const, shard, queue: queue as Queue })),
    ...deliver.map((queue, shard) => ({ kind: 'deliver' as const, shard, queue: queue as Queue })),
  ];
  const byKind = { sync, deliver } as Record<QueueKind, Queue[]>;
  const queueFor = <K extends QueueKind>(kind: K, participantId: string) =>
    byKind[kind][shardOf(participantId, layout.shards)] as unknown as Queue<PayloadOf<K>>;
  let closing: Promise<void> | undefined;
  return {
    layout,
    sync,
    deliver,
    all,
    queueFor,
    async getJob(kind, participantId) {
      return (await queueFor(kind, participantId).getJob(jobIdFor(kind, participantId))) ?? undefined;
    },
    async getJobs(kind, states) {
      const lists = await Promise.all(byKind[kind].map((queue) => queue.getJobs(states)));
      return lists.flat() as never;
    },
    async count(kind) {
      const counts = await Promise.all(byKind[kind].map((queue) => queue.count()));
      return counts.reduce((a, b) => a + b, 0);
    },
    close() {
      closing ??= Promise.all(all.map(({ queue }) => queue.close())).then(() => undefined);
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
  const queue = queues.queueFor(kind, data.participantId) as Queue;
  const jobId = jobIdFor(kind, data.participantId);
  await queue.add(entry.jobName, data, {
    ...entry.options,
    jobId,
    ...(options.delayMs ? { delay: Math.max(0, Math.round(options.delayMs)) } : {}),
    ...(options.priority ? { priority: options.priority } : {}),
  });
  return jobId;
}
