import { describe, expect, it } from 'vitest';
import { checkReadiness } from './health.ts';

describe('checkReadiness', () => {
  it('names what is down or silent, never the error text, which goes to onFailure', async () => {
    const failures: Array<[string, string]> = [];
    const report = await checkReadiness(
      [
        { name: 'postgres', check: async () => 'ok' },
        { name: 'redis', check: () => Promise.reject(new Error('connect ECONNREFUSED 10.1.2.3:6379 user=fitlamp')) },
        { name: 'slow', check: () => new Promise(() => {}) },
      ],
      50,
      (name, error) => failures.push([name, (error as Error).message]),
    );
    expect(report).toEqual({ ok: false, checks: { postgres: 'ok', redis: 'down', slow: 'timeout' } });
    expect(JSON.stringify(report)).not.toContain('10.1.2.3');
    expect(failures.map(([name]) => name).sort()).toEqual(['redis', 'slow']);
    expect(failures.find(([name]) => name === 'redis')![1]).toContain('ECONNREFUSED');
  });
});
