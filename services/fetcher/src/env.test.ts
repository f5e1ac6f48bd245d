import { describe, expect, it } from 'vitest';
import { ConfigError } from '@fitlamp/runtime';
import { serviceTestEnv } from '@fitlamp/testing';
import { loadFetcherEnv } from './env.ts';

describe('fetcher configuration: retention', () => {
  it('keeps delivered events 7 days by default', () => {
    expect(loadFetcherEnv(serviceTestEnv()).EVENT_RETENTION_DAYS).toBe(7);
  });

  it('refuses a retention shorter than the re-fetch window, naming the variable', () => {
    const attempt = () => loadFetcherEnv(serviceTestEnv({ REFETCH_DAYS: '5', EVENT_RETENTION_DAYS: '4' }));
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(/EVENT_RETENTION_DAYS \(4\) must be at least REFETCH_DAYS \(5\)/);
    expect(loadFetcherEnv(serviceTestEnv({ REFETCH_DAYS: '5', EVENT_RETENTION_DAYS: '5' })).EVENT_RETENTION_DAYS).toBe(5);
  });
});
