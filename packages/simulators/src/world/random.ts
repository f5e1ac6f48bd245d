/**
 * Deterministic hashing for the synthetic world. Every generated value is a pure function of
 * (seed, user, day, ...) so the same seed always yields the same data, whatever order it is asked in.
 */

/** A 32-bit hash of any mix of strings and numbers (FNV-1a, then a murmur3 finalizer). */
export function hash32(...parts: ReadonlyArray<string | number>): number {
  let h = 0x811c9dc5;
  for (const part of parts) {
    const s = typeof part === 'number' ? part.toString(36) : part;
    for (let i = 0; i < s.length; i += 1) {
      h ^= s.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
    h ^= 0x1f; // separator, so ('ab','c') differs from ('a','bc')
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A deterministic number in [0, 1) for the given parts. */
export function unit(...parts: ReadonlyArray<string | number>): number {
  return hash32(...parts) / 4294967296;
}

/** A seeded pseudo-random generator (mulberry32) returning numbers in [0, 1). */
export function createRng(...seedParts: ReadonlyArray<string | number>): () => number {
  let a = hash32(...seedParts);
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An integer in [min, max] drawn from `rng`. */
export function intBetween(rng: () => number, min: number, max: number): number {
  return min + Math.floor(rng() * (max - min + 1));
}

/** A roughly normal value (mean, sd) drawn from `rng` (sum of three uniforms). */
export function gaussian(rng: () => number, mean: number, sd: number): number {
  return mean + sd * ((rng() + rng() + rng() - 1.5) * 2);
}
