import { isIP } from 'node:net';
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
    /** `/readyz` and `/metrics` (and `/healthz`): a port the Ingress does not route. */
    OPS_PORT: envFields.port(9090),
    /**
     * Which proxies' `X-Forwarded-For` to believe for the client address (rate limits, logs):
     * `false` (default: none, the socket's peer is the client), a hop count (`1`: one proxy,
     * the Ingress controller), or comma-separated addresses and CIDRs of the proxies.
     */
    TRUST_PROXY: z
      .string()
      .default('false')
      .refine((v) => v === 'false' || /^[1-9]\d{0,1}$/.test(v) || v.split(',').every((e) => isIP(e.trim().split('/')[0]!) !== 0), {
        message: 'expected false, a hop count (1-99), or comma-separated proxy addresses/CIDRs',
      })
      .transform((v): boolean | number | string[] => (v === 'false' ? false : /^\d+$/.test(v) ? Number(v) : v.split(',').map((e) => e.trim()))),
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
    /** Requests per minute per client IP on /admin (the API, the dashboard, Bull Board). */
    ADMIN_RATE_LIMIT_PER_MINUTE: envFields.positiveInt(600),
    /** How the study is named on participants' pages. */
    STUDY_NAME: z.string().min(1).max(120).default('the research study'),
    /** How often the alert rules are evaluated and due webhooks sent (0: never, for a replica that should not). */
    ALERT_EVALUATE_SECONDS: z.coerce.number().int().min(0).default(300),
    /** Rule: no device sync for this many days. */
    ALERT_NO_SYNC_DAYS: envFields.positiveInt(3),
    /** Rule: the device's battery below this percent (0: rule off). */
    ALERT_BATTERY_BELOW_PERCENT: z.coerce.number().int().min(0).max(100).default(15),
    /** Rule: worn less than this many hours a day (0: rule off) … */
    ALERT_WEAR_BELOW_HOURS: z.coerce.number().min(0).max(24).default(8),
    /** … on at least this many … */
    ALERT_WEAR_LOW_DAYS: envFields.positiveInt(3),
    /** … of the participant's last this many complete local days. */
    ALERT_WEAR_WINDOW_DAYS: z.coerce.number().int().min(1).max(28).default(7),
    /** Rule: the participant must reconnect or consent again. */
    ALERT_RECONNECT_NEEDED: envFields.bool(true),
    /** Rule: mindLAMP refused a delivery of the participant's data (parked). */
    ALERT_DELIVERIES_PARKED: envFields.bool(true),
    /** Each new alert is POSTed here (Slack or Teams incoming webhook). Unset: no webhook. */
    ALERT_WEBHOOK_URL: envFields.url().optional(),
  });

export type GatewayEnv = z.infer<typeof gatewayEnvSchema>;

export function loadGatewayEnv(source: Record<string, string | undefined>): GatewayEnv {
  const env = loadEnv(gatewayEnvSchema, source);
  checkProviderEnv(env);
  // OAuth codes and tokens travel through this URL: plain http is only for local trials.
  if (env.NODE_ENV === 'production' && new URL(env.PUBLIC_BASE_URL).protocol !== 'https:') {
    throw new ConfigError('PUBLIC_BASE_URL', 'PUBLIC_BASE_URL must be https:// when NODE_ENV=production');
  }
  if (env.ALERT_WEAR_LOW_DAYS > env.ALERT_WEAR_WINDOW_DAYS) {
    throw new ConfigError('ALERT_WEAR_LOW_DAYS', `ALERT_WEAR_LOW_DAYS (${env.ALERT_WEAR_LOW_DAYS}) must not exceed ALERT_WEAR_WINDOW_DAYS (${env.ALERT_WEAR_WINDOW_DAYS})`);
  }
  // Anyone could write `?user_id=` links for any participant: only for local trials.
  if (env.NODE_ENV === 'production' && env.ALLOW_UNSIGNED_ENROLLMENT) {
    throw new ConfigError('ALLOW_UNSIGNED_ENROLLMENT', 'ALLOW_UNSIGNED_ENROLLMENT is refused when NODE_ENV=production: issue signed links (pnpm fitlamp enroll)');
  }
  return env;
}
