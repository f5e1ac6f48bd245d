import { randomBytes } from 'node:crypto';
import { testRedisUrl } from './databases.ts';

/**
 * A complete, valid environment for any fitlamp service in tests, with fresh random secrets.
 * Override what a test is about.
 */
export function serviceTestEnv(overrides: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string | undefined> = {
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/postgres',
    REDIS_URL: testRedisUrl,
    QUEUE_PREFIX: 'fitlamp-test',
    PUBLIC_BASE_URL: 'http://127.0.0.1:8080',
    HOST: '127.0.0.1',
    PORT: '0',
    OPS_PORT: '0',
    ADMIN_TOKEN: randomBytes(24).toString('base64url'),
    ENROLLMENT_SECRET: randomBytes(32).toString('base64url'),
    TOKEN_ENCRYPTION_KEY: `test1:${randomBytes(32).toString('base64')}`,
    LAMP_API_URL: 'http://127.0.0.1:9',
    LAMP_ACCESS_KEY: 'researcher@example.org',
    LAMP_SECRET_KEY: randomBytes(12).toString('hex'),
    FITBIT_CLIENT_ID: '23TEST',
    FITBIT_CLIENT_SECRET: randomBytes(16).toString('hex'),
    FITBIT_API_URL: 'http://127.0.0.1:9',
    FITBIT_AUTHORIZE_URL: 'http://127.0.0.1:9/oauth2/authorize',
    GOOGLE_CLIENT_ID: 'test-client.apps.googleusercontent.com',
    GOOGLE_CLIENT_SECRET: randomBytes(16).toString('hex'),
    ...overrides,
  };
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

/**
 * The Google Health settings of a service that talks to the Google Health simulator at
 * `simulatorUrl` (no trailing slash), with a fresh webhook secret.
 */
export function googleSimulatorEnv(simulatorUrl: string, client: { id: string; secret: string }): Record<string, string> {
  return {
    GOOGLE_CLIENT_ID: client.id,
    GOOGLE_CLIENT_SECRET: client.secret,
    GOOGLE_AUTHORIZE_URL: `${simulatorUrl}/o/oauth2/v2/auth`,
    GOOGLE_TOKEN_URL: `${simulatorUrl}/token`,
    GOOGLE_REVOKE_URL: `${simulatorUrl}/revoke`,
    GOOGLE_HEALTH_API_URL: simulatorUrl,
    GOOGLE_HEALTH_WEBHOOK_SECRET: `Bearer ${randomBytes(24).toString('base64url')}`,
    GOOGLE_HEALTH_WEBHOOK_KEYSET_URL: `${simulatorUrl}/googlehealthapi/webhooks/webhooks_public_keyset.json`,
  };
}
