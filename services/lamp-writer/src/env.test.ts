import { describe, expect, it } from 'vitest';
import { ConfigError } from '@fitlamp/runtime';
import { loadLampWriterEnv } from './env.ts';

const base = {
  DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/x',
  REDIS_URL: 'redis://127.0.0.1:6379',
  LAMP_ACCESS_KEY: 'researcher@example.org',
  LAMP_SECRET_KEY: 'secret',
};

describe('lamp-writer env', () => {
  it('defaults the writer lease to twice the mindLAMP timeout plus 30 s', () => {
    expect(loadLampWriterEnv({ ...base, LAMP_TIMEOUT_MS: '10000' }).LAMP_WRITER_LEASE_MS).toBe(50_000);
  });

  it('refuses a lease a POST could outlive, naming the variable', () => {
    const load = () => loadLampWriterEnv({ ...base, LAMP_TIMEOUT_MS: '30000', LAMP_WRITER_LEASE_MS: '45000' });
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(/LAMP_WRITER_LEASE_MS is invalid: must be longer than twice LAMP_TIMEOUT_MS/);
    expect(loadLampWriterEnv({ ...base, LAMP_TIMEOUT_MS: '30000', LAMP_WRITER_LEASE_MS: '60001' }).LAMP_WRITER_LEASE_MS).toBe(60_001);
  });
});
