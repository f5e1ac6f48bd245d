import { z } from 'zod';
import {
  baseEnvSchema,
  checkProviderEnv,
  cryptoEnvSchema,
  envFields,
  lampEnvSchema,
  loadEnv,
  providerEnvSchema,
  ConfigError,
} from '@fitlamp/runtime';

export const gatewayEnvSchema = baseEnvSchema
  .extend(cryptoEnvSchema.shape)
  .extend(lampEnvSchema.shape)
  .extend(providerEnvSchema.shape)
  .extend({
    PORT: envFields.port(8080),
    HOST: z.string().default('0.0.0.0'),
    /** The gateway's external URL; redirect URIs hang off it and must be registered exactly. */
    PUBLIC_BASE_URL: envFields.url(),
    ADMIN_TOKEN: envFields.secret(24),
    ENROLLMENT_SECRET: envFields.secret(32),
    ALLOW_UNSIGNED_ENROLLMENT: envFields.bool(false),
    ENROLLMENT_TTL_HOURS: envFields.positiveInt(24 * 14),
    GOOGLE_HEALTH_WEBHOOK_SECRET: z.string().min(16).optional(),
    GOOGLE_HEALTH_WEBHOOK_KEYSET_URL: envFields
      .url()
      .default('https://www.gstatic.com/googlehealthapi/webhooks/webhooks_public_keyset.json'),
    /** Requests per minute per client IP on public pages. */
    PUBLIC_RATE_LIMIT_PER_MINUTE: envFields.positiveInt(60),
    /** How the study is named on participants' pages. */
    STUDY_NAME: z.string().min(1).max(120).default('the research study'),
  });

export type GatewayEnv = z.infer<typeof gatewayEnvSchema>;

export function loadGatewayEnv(source: Record<string, string | undefined>): GatewayEnv {
  const env = loadEnv(gatewayEnvSchema, source);
  checkProviderEnv(env);
  // OAuth codes and tokens travel through this URL: plain http is only for local trials.
  if (env.NODE_ENV === 'production' && new URL(env.PUBLIC_BASE_URL).protocol !== 'https:') {
    throw new ConfigError('PUBLIC_BASE_URL', 'PUBLIC_BASE_URL must be https:// when NODE_ENV=production');
  }
  // Anyone could write `?user_id=` links for any participant: only for local trials.
  if (env.NODE_ENV === 'production' && env.ALLOW_UNSIGNED_ENROLLMENT) {
    throw new ConfigError('ALLOW_UNSIGNED_ENROLLMENT', 'ALLOW_UNSIGNED_ENROLLMENT is refused when NODE_ENV=production: issue signed links (pnpm fitlamp enroll)');
  }
  return env;
}
