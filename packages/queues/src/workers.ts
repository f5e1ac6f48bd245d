import { Worker, type ConnectionOptions, type Processor } from 'bullmq';
import { queueCatalog, type PayloadOf, type QueueKind } from './catalog.ts';
import { shardQueueName, type ShardLayout } from './shards.ts';

export interface ShardWorkerOptions {
  connection: ConnectionOptions;
  prefix: string;
  layout: ShardLayout;
  /** Shards to consume (parseConsumedShards); every shard when absent. */
  consumed?: number[];
  /**
   * Jobs this replica runs at once over all its shards. Split evenly over the consumed shards,
   * at least one each, so a replica consuming more shards than this runs one job per shard.
   */
  concurrency: number;
  /** Stored on each job a worker takes (`processedBy`): which replica holds a job, in Bull Board and in tests. */
  name?: string;
}

export interface ShardWorkers<K extends QueueKind, R> {
  workers: Array<Worker<PayloadOf<K>, R>>;
  /** Waits for the jobs in flight on every shard, then stops. */
  close(): Promise<void>;
}

/**
 * One BullMQ worker per consumed shard of `kind`, all running `processor`. `setup` attaches
 * listeners (failed, error) to each.
 */
export function startShardWorkers<K extends QueueKind, R>(
  kind: K,
  processor: Processor<PayloadOf<K>, R>,
  options: ShardWorkerOptions,
  setup: (worker: Worker<PayloadOf<K>, R>) => void = () => {},
): ShardWorkers<K, R> {
  const shards = options.consumed ?? Array.from({ length: options.layout.shards }, (_, shard) => shard);
  if (shards.length === 0) throw new Error(`no ${kind} shard to consume`);
  const concurrency = Math.max(1, Math.ceil(options.concurrency / shards.length));
  const workers = shards.map((shard) => {
    const worker = new Worker<PayloadOf<K>, R>(shardQueueName(queueCatalog[kind].name, shard, options.layout), processor, {
      connection: options.connection,
      prefix: options.prefix,
      concurrency,
      ...(options.name ? { name: options.name } : {}),
    });
    setup(worker);
    return worker;
  });
  let closing: Promise<void> | undefined;
  return {
    workers,
    close() {
      closing ??= Promise.all(workers.map((worker) => worker.close())).then(() => undefined);
      return closing;
    },
  };
}
