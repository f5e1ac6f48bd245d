import { z } from 'zod';

/** Raised when a service's configuration is missing or malformed; the message names the variable. */
export class ConfigError extends Error {
  readonly code = 'config_invalid' as const;
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}

/**
 * Parses `source` (normally `process.env`) against a zod object schema whose keys are variable
 * names. The first problem becomes a {@link ConfigError} naming that variable, so a service
 * stops at start with one readable line instead of failing later on first use.
 */
export function loadEnv<S extends z.ZodObject>(schema: S, source: Record<string, string | undefined>): z.infer<S> {
  // Empty strings count as unset: docker-compose and Kubernetes pass `FOO=` for absent values.
  const cleaned: Record<string, string> = {};
  for (const [key, value] of Object.entries(source)) {
    if (value !== undefined && value !== '') cleaned[key] = value;
  }
  const result = schema.safeParse(cleaned);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const variable = String(issue.path[0] ?? 'unknown');
  const missing = cleaned[variable] === undefined;
  throw new ConfigError(
    variable,
    missing ? `${variable} is required but not set` : `${variable} is invalid: ${issue.message}`,
  );
}

/** Reusable field schemas for the configuration contract in DESIGN.md. */
export const envFields = {
  url: () => z.url({ message: 'expected a URL such as https://example.org' }),
  postgresUrl: () =>
    z.string().regex(/^postgres(ql)?:\/\//, { message: 'expected a postgres:// connection URL' }),
  redisUrl: () => z.string().regex(/^rediss?:\/\//, { message: 'expected a redis:// connection URL' }),
  port: (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback),
  positiveInt: (fallback: number) => z.coerce.number().int().positive().default(fallback),
  secret: (minLength = 16) =>
    z.string().min(minLength, { message: `must be at least ${minLength} characters` }),
  bool: (fallback: boolean) =>
    z
      .enum(['true', 'false', '1', '0'], { message: 'expected true or false' })
      .default(fallback ? 'true' : 'false')
      .transform((v) => v === 'true' || v === '1'),
  logLevel: () => z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
};

/** Variables every service shares. */
export const baseEnvSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  LOG_LEVEL: envFields.logLevel(),
  DATABASE_URL: envFields.postgresUrl(),
  REDIS_URL: envFields.redisUrl(),
  QUEUE_PREFIX: z.string().regex(/^[a-z0-9_-]+$/).default('fitlamp'),
  /** REDIS_URL names one node of a Redis Cluster; the others are discovered from it. */
  REDIS_CLUSTER: envFields.bool(false),
  /**
   * Queues per kind (`sync`, `deliver`), each in its own cluster hash slot; a participant's jobs
   * always go to the same one. 1 keeps the historical queue names. Every service must agree.
   */
  QUEUE_SHARDS: z.coerce.number().int().min(1).max(1024).default(1),
  /** Longer than a provider or mindLAMP request may take (30 s), so a job in flight can finish. */
  SHUTDOWN_TIMEOUT_MS: envFields.positiveInt(45_000),
  /**
   * Simulations only: shifts the service's idea of "now" for provider time (which days are today
   * and yesterday, rate-limit windows, when a participant is due) to match a simulator running at
   * another date. 0 in production.
   */
  CLOCK_OFFSET_MS: z.coerce.number().int().default(0),
});

/** Services that run BullMQ workers (fetcher, lamp-writer). */
export const queueConsumerEnvSchema = z.object({
  /** Shards this replica's worker consumes, e.g. `0,2` or `0-3`; every shard when unset. */
  QUEUE_SHARDS_CONSUMED: z
    .string()
    .regex(/^\s*\d+(-\d+)?(\s*,\s*\d+(-\d+)?)*\s*$/, { message: 'expected shard numbers or ranges such as 0,2 or 0-3' })
    .optional(),
});

/** Where the queues live, as the connection factories take it. */
export function redisTargetOf(env: { REDIS_URL: string; REDIS_CLUSTER: boolean }): { url: string; cluster: boolean } {
  return { url: env.REDIS_URL, cluster: env.REDIS_CLUSTER };
}

/** Token encryption: the active key and, during rotation, the previous one. */
export const cryptoEnvSchema = z.object({
  TOKEN_ENCRYPTION_KEY: z.string().regex(/^([A-Za-z0-9_-]{1,32}:)?[A-Za-z0-9+/]{43}=?$/, {
    message: 'expected base64 of 32 bytes, optionally prefixed with a key id and ":" (openssl rand -base64 32)',
  }),
  TOKEN_ENCRYPTION_KEY_PREVIOUS: z
    .string()
    .regex(/^([A-Za-z0-9_-]{1,32}:)?[A-Za-z0-9+/]{43}=?$/, { message: 'expected the same form as TOKEN_ENCRYPTION_KEY' })
    .optional(),
});

/** The mindLAMP server and the researcher credential fitlamp writes with. */
export const lampEnvSchema = z.object({
  LAMP_API_URL: envFields.url().default('https://api.lamp.digital'),
  LAMP_ACCESS_KEY: z.string().min(1),
  LAMP_SECRET_KEY: z.string().min(1),
});

/**
 * Provider apps. A provider is enabled when its client id is set; its secret is then required.
 * URLs default to the real services and point at the simulators in tests and the demo.
 */
export const providerEnvSchema = z.object({
  FITBIT_CLIENT_ID: z.string().min(1).optional(),
  FITBIT_CLIENT_SECRET: z.string().min(1).optional(),
  FITBIT_AUTHORIZE_URL: envFields.url().default('https://www.fitbit.com/oauth2/authorize'),
  FITBIT_API_URL: envFields.url().default('https://api.fitbit.com'),
  FITBIT_SCOPES: z.string().optional(),
  GOOGLE_CLIENT_ID: z.string().min(1).optional(),
  GOOGLE_CLIENT_SECRET: z.string().min(1).optional(),
  GOOGLE_AUTHORIZE_URL: envFields.url().default('https://accounts.google.com/o/oauth2/v2/auth'),
  GOOGLE_TOKEN_URL: envFields.url().default('https://oauth2.googleapis.com/token'),
  GOOGLE_REVOKE_URL: envFields.url().default('https://oauth2.googleapis.com/revoke'),
  GOOGLE_HEALTH_API_URL: envFields.url().default('https://health.googleapis.com'),
  GOOGLE_SCOPES: z.string().optional(),
  /** Comma-separated stream names to sync; all streams when unset. */
  SYNC_STREAMS: z.string().optional(),
});

/**
 * Checks cross-field rules of {@link providerEnvSchema}: a client id needs its secret, and at
 * least one provider must be configured. Throws a {@link ConfigError} naming the variable.
 */
export function checkProviderEnv(env: z.infer<typeof providerEnvSchema>): void {
  if (env.FITBIT_CLIENT_ID && !env.FITBIT_CLIENT_SECRET) {
    throw new ConfigError('FITBIT_CLIENT_SECRET', 'FITBIT_CLIENT_SECRET is required when FITBIT_CLIENT_ID is set');
  }
  if (env.GOOGLE_CLIENT_ID && !env.GOOGLE_CLIENT_SECRET) {
    throw new ConfigError('GOOGLE_CLIENT_SECRET', 'GOOGLE_CLIENT_SECRET is required when GOOGLE_CLIENT_ID is set');
  }
  if (!env.FITBIT_CLIENT_ID && !env.GOOGLE_CLIENT_ID) {
    throw new ConfigError(
      'GOOGLE_CLIENT_ID',
      'GOOGLE_CLIENT_ID is required (or FITBIT_CLIENT_ID for the legacy API): configure at least one provider',
    );
  }
}
