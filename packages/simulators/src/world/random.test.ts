import { describe, expect, it } from 'vitest';
import { createRng, hash32, hashExtend, hashPrefix, hashWith, unit, unitWith } from './random.ts';

describe('hash32', () => {
  // Values of the first implementation (which hashed String(n.toString(36)) for numbers): every
  // simulated study is a function of these, so a faster hash must give the same numbers.
  it.each([
    [['fitlamp', 'hr', 'FB0001', 1764979200000], 1338347558],
    [['s', -1], 4148943446],
    [['s', 0], 788053852],
    [['s', -0], 788053852],
    [['s', 1.5], 261402481],
    [['s', 35], 2929859123],
    [['s', 36], 849930127],
    [['s', 2 ** 53 - 1], 1690958163],
    [['s', 1e21], 3739800720],
    [['a', 'bc'], 1379158772],
    [['ab', 'c'], 2642534310],
    [[], 2872998923],
  ] as Array<[Array<string | number>, number]>)('hash32(%j) = %d', (parts, expected) => {
    expect(hash32(...parts)).toBe(expected);
  });

  it('a prefix hashed once gives what hashing every part gives', () => {
    const rng = createRng('prefix-test');
    for (let k = 0; k < 2_000; k += 1) {
      const minute = Math.floor(rng() * 2e12) - 1e12;
      const index = Math.floor(rng() * 2_000);
      const prefix = hashPrefix('seed', 'hr', `U${k}`, index);
      expect(hashWith(prefix, minute)).toBe(hash32('seed', 'hr', `U${k}`, index, minute));
      expect(unitWith(prefix, `x${minute}`)).toBe(unit('seed', 'hr', `U${k}`, index, `x${minute}`));
      expect(hashWith(hashExtend(hashPrefix('seed', 'hr'), `U${k}`), index)).toBe(hash32('seed', 'hr', `U${k}`, index));
    }
  });
});
