export {
  startStack,
  readProcResources,
  type Stack,
  type StackOptions,
  type StackParticipant,
  type StackProgress,
  type ServiceName,
  type ServiceResources,
} from './stack.ts';
export { startRedisServer, startRedisCluster, freePort, type RedisServer, type RedisCluster } from './redis-server.ts';
export { startPostgresServer, type PostgresServer } from './postgres-server.ts';
export { runChaos, checkMindLamp, assessChaos, renderReliability, FULL_PLAN, type ChaosPlan, type ChaosReport, type FaultKind } from './chaos.ts';
export { subscribeGatewayWebhooks, SUBSCRIBED_DATA_TYPES } from './google-webhooks.ts';
