/**
 * Deterministic hashing for the synthetic world. Every generated value is a pure function of
 * (seed, user, day, ...) so the same seed always yields the same data, whatever order it is asked in.
 */

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
/** Base-36 digit character codes ('0'-'9', 'a'-'z'), as `Number.prototype.toString(36)` writes them. */
const DIGIT = Array.from({ length: 36 }, (_, d) => (d < 10 ? 48 + d : 87 + d));
const digits = new Uint8Array(16);

/** Feeds one part (and the separator) into an FNV-1a state. */
function feed(h: number, part: string | number): number {
  if (typeof part === 'number' && Number.isSafeInteger(part)) {
    // The characters of part.toString(36), without allocating the string: the simulators hash
    // millions of minute timestamps and indexes per simulated study-day.
    let n = part;
    if (n < 0) {
      h ^= 45; // '-'
      h = Math.imul(h, FNV_PRIME);
      n = -n;
    }
    let len = 0;
    do {
      digits[len++] = DIGIT[n % 36]!;
      n = Math.floor(n / 36);
    } while (n > 0);
    while (len > 0) {
      h ^= digits[--len]!;
      h = Math.imul(h, FNV_PRIME);
    }
  } else {
    const s = typeof part === 'number' ? part.toString(36) : part;
    for (let i = 0; i < s.length; i += 1) {
      h ^= s.charCodeAt(i);
      h = Math.imul(h, FNV_PRIME);
    }
  }
  h ^= 0x1f; // separator, so ('ab','c') differs from ('a','bc')
  return Math.imul(h, FNV_PRIME);
}

/** The murmur3 finalizer: spreads the FNV state over all 32 bits. */
function finish(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A 32-bit hash of any mix of strings and numbers (FNV-1a, then a murmur3 finalizer). */
export function hash32(...parts: ReadonlyArray<string | number>): number {
  let h = FNV_OFFSET;
  for (const part of parts) h = feed(h, part);
  return finish(h);
}

/**
 * The hashing state after `parts`, for hashing many values that share them:
 * `hashWith(hashPrefix(a, b), c) === hash32(a, b, c)`, without hashing `a` and `b` again.
 */
export function hashPrefix(...parts: ReadonlyArray<string | number>): number {
  let h = FNV_OFFSET;
  for (const part of parts) h = feed(h, part);
  return h;
}

/** `hashPrefix(...prefixParts, part)` from `hashPrefix(...prefixParts)`. */
export function hashExtend(prefix: number, part: string | number): number {
  return feed(prefix, part);
}

/** `hash32(...prefixParts, last)` from `hashPrefix(...prefixParts)`. */
export function hashWith(prefix: number, last: string | number): number {
  return finish(feed(prefix, last));
}

/** `unit(...prefixParts, last)` from `hashPrefix(...prefixParts)`. */
export function unitWith(prefix: number, last: string | number): number {
  return hashWith(prefix, last) / 4294967296;
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
