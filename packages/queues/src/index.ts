export {
  queueCatalog,
  syncPayload,
  deliverPayload,
  createQueues,
  enqueue,
  jobIdFor,
  type QueueKind,
  type QueueSet,
  type PayloadOf,
  type SyncPayload,
  type DeliverPayload,
  type EnqueueOptions,
} from './catalog.ts';
export { registerQueueMetrics } from './metrics.ts';
export {
  shardLayout,
  shardLayoutOf,
  shardOf,
  shardQueueName,
  shardHashTag,
  parseConsumedShards,
  MAX_QUEUE_SHARDS,
  type ShardLayout,
} from './shards.ts';
export { startShardWorkers, type ShardWorkers, type ShardWorkerOptions } from './workers.ts';
