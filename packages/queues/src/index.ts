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
