import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** HMAC-SHA256 of `data`, base64url. */
export function sign(secret: string, data: string): string {
  return createHmac('sha256', secret).update(data).digest('base64url');
}

/** Timing-safe check of an HMAC made by {@link sign}. */
export function verifySignature(secret: string, data: string, signature: string): boolean {
  return safeEqual(sign(secret, data), signature);
}

/**
 * Compares two strings in time that depends only on their lengths' digest, never on where they
 * differ: both sides are hashed first so unequal lengths need no early return.
 */
export function safeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb) && a.length === b.length;
}

/** `bytes` random bytes as base64url (a 16-byte value carries 128 bits). */
export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/** SHA-256 hex of a string: for storing lookup keys (e.g. OAuth state) without the value itself. */
export function sha256Hex(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

/** A PKCE pair (RFC 7636, S256): a 43-character verifier and its challenge. */
export function createPkcePair(): { verifier: string; challenge: string } {
  const verifier = randomToken(32);
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}
