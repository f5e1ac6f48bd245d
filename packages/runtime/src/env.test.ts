import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { baseEnvSchema, checkProviderEnv, ConfigError, cryptoEnvSchema, envFields, loadEnv, providerEnvSchema } from './env.ts';

const valid = { DATABASE_URL: 'postgres://u@h/db', REDIS_URL: 'redis://127.0.0.1:6379' };

function failure(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('loadEnv', () => {
  it('applies defaults and coerces values', () => {
    const env = loadEnv(baseEnvSchema.extend({ PORT: envFields.port(8080), FLAG: envFields.bool(false) }), { ...valid, FLAG: 'true' });
    expect(env).toMatchObject({ PORT: 8080, FLAG: true, LOG_LEVEL: 'info', QUEUE_PREFIX: 'fitlamp' });
  });

  it('names a missing variable, and treats an empty one as missing', () => {
    expect(failure(() => loadEnv(baseEnvSchema, { REDIS_URL: valid.REDIS_URL })).message).toBe('DATABASE_URL is required but not set');
    const empty = failure(() => loadEnv(baseEnvSchema, { ...valid, DATABASE_URL: '' }));
    expect(empty.variable).toBe('DATABASE_URL');
  });

  it('names a malformed variable without echoing its value', () => {
    const error = failure(() => loadEnv(baseEnvSchema.extend(cryptoEnvSchema.shape), { ...valid, TOKEN_ENCRYPTION_KEY: 'hunter2hunter2' }));
    expect(error.variable).toBe('TOKEN_ENCRYPTION_KEY');
    expect(error.message).toMatch(/^TOKEN_ENCRYPTION_KEY is invalid/);
    expect(error.message).not.toContain('hunter2');
    expect(failure(() => loadEnv(baseEnvSchema, { ...valid, REDIS_URL: 'http://x' })).variable).toBe('REDIS_URL');
    expect(failure(() => loadEnv(z.object({ PORT: envFields.port(1) }), { PORT: '70000' })).variable).toBe('PORT');
  });

  it('requires a provider, and a secret for each client id', () => {
    const parse = (e: Record<string, string>) => checkProviderEnv(loadEnv(providerEnvSchema, e));
    expect(failure(() => parse({})).variable).toBe('GOOGLE_CLIENT_ID');
    expect(failure(() => parse({ FITBIT_CLIENT_ID: 'x' })).variable).toBe('FITBIT_CLIENT_SECRET');
    expect(() => parse({ GOOGLE_CLIENT_ID: 'x', GOOGLE_CLIENT_SECRET: 'y' })).not.toThrow();
  });
});
