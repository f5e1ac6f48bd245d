export {
  ConfigError,
  loadEnv,
  envFields,
  baseEnvSchema,
  cryptoEnvSchema,
  lampEnvSchema,
  providerEnvSchema,
  checkProviderEnv,
  queueConsumerEnvSchema,
  redisTargetOf,
} from './env.ts';
export { createLogger, redactDeep, stripQuery, type Logger, type LoggerOptions } from './logger.ts';
export { createProducerConnection, createWorkerConnection, type ConnectionTarget, type RedisConnection } from './redis.ts';
export { runService, type Closer, type RunningService, type RunServiceOptions } from './shutdown.ts';
export {
  checkReadiness,
  startOpsServer,
  type ReadinessCheck,
  type ReadinessReport,
  type OpsServerOptions,
} from './health.ts';
