import { describe, expect, it } from 'vitest';
import { createRng } from '../world/random.ts';
import { isoString } from '../world/zones.ts';
import { floating } from './wire-time.ts';

describe('floating', () => {
  it('renders what Date#toISOString renders, without the offset, for any instant and frame', () => {
    const rng = createRng('floating-test');
    const local = { kind: 'local', history: [{ from: 0, zone: 'Australia/Sydney' }] } as const;
    const utc = { kind: 'utc' } as const;
    for (let k = 0; k < 20_000; k += 1) {
      // Whole milliseconds across a century, then a few that are not.
      const t = k < 19_990 ? Math.floor(rng() * 3.2e12) : rng() * 1e12;
      expect(floating(utc, t)).toBe(new Date(t).toISOString().slice(0, 23));
      expect(isoString(t)).toBe(new Date(t).toISOString());
      const sydney = floating(local, t);
      expect(Date.parse(`${sydney}Z`) - Math.floor(t)).toBeGreaterThanOrEqual(10 * 3_600_000);
      expect(Date.parse(`${sydney}Z`) - Math.floor(t)).toBeLessThanOrEqual(11 * 3_600_000);
    }
    // Before the epoch and past year 9999: the fallback.
    expect(floating(utc, -1)).toBe('1969-12-31T23:59:59.999');
    expect(isoString(-86_400_001)).toBe('1969-12-30T23:59:59.999Z');
    expect(floating(utc, 253_402_300_800_000)).toBe(new Date(253_402_300_800_000).toISOString().slice(0, 23));
  });
});
