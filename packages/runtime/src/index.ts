export {
  ConfigError,
  loadEnv,
  envFields,
  baseEnvSchema,
  cryptoEnvSchema,
  lampEnvSchema,
  providerEnvSchema,
  checkProviderEnv,
} from './env.ts';
export { createLogger, redactDeep, stripQuery, type Logger, type LoggerOptions } from './logger.ts';
export { createProducerConnection, createWorkerConnection } from './redis.ts';
export { runService, type Closer, type RunningService, type RunServiceOptions } from './shutdown.ts';
export {
  checkReadiness,
  startOpsServer,
  type ReadinessCheck,
  type ReadinessReport,
  type OpsServerOptions,
} from './health.ts';
