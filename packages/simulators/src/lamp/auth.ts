import { Buffer } from 'node:buffer';
import { LampError, ownerOf, type LampStore } from './store.ts';

/**
 * Finds the credential an `Authorization` header names, as LAMP-server master's
 * `_createAuthSubject` does (reference §1.6): the value after `Basic` may be base64 or raw
 * `accessKey:secretKey`; it is split on the first two `:` only, so a secret containing `:` never
 * matches. Answers the credential's origin (`null` = root).
 *
 * @throws LampError `401.missing-credentials` (no header, no secret) or `403.no-such-credentials`.
 */
export function authenticate(store: LampStore, header: string | undefined): string | null {
  if (header === undefined) throw new LampError('401.missing-credentials');
  const raw = header.replace('Basic', '').trim();
  const decoded = raw.includes(':') ? raw : Buffer.from(raw, 'base64').toString();
  const parts = decoded.split(':', 2);
  const [accessKey, secretKey] = parts;
  if (parts.length !== 2 || !secretKey) throw new LampError('401.missing-credentials');
  const credential = store.credentials.find((c) => c.accessKey === accessKey && c.secretKey === secretKey);
  if (!credential) throw new LampError('403.no-such-credentials');
  return credential.origin;
}

/**
 * LAMP's `_verify(auth, ["self", "sibling", "parent"], id)` (reference §1.6): may this origin act
 * on this id? Answers the id with `me` resolved to the origin.
 *
 * - root (`null`): anything, without checking that the id exists; `me` is `400.context-substitution-failed`;
 * - self: the origin is the id;
 * - sibling: the id's owner is the origin's owner (so a participant credential reaches the other
 *   participants of its study, as observed);
 * - parent: the origin owns the id, directly or further up;
 * - an unknown id: `404.resource-not-found`; otherwise `403.security-context-out-of-scope`.
 */
export function verifyAccess(store: LampStore, origin: string | null, id: string): string {
  if (origin === null) {
    if (id === 'me') throw new LampError('400.context-substitution-failed');
    return id;
  }
  const target = id === 'me' ? origin : id;
  if (target === origin) return target;
  let owner = ownerOf(store, target);
  if (owner === ownerOf(store, origin)) return target;
  while (owner !== null) {
    if (owner === origin) return target;
    owner = ownerOf(store, owner);
  }
  throw new LampError('403.security-context-out-of-scope');
}

/** The HTTP status of an error the way LAMP maps it: the numeric prefix of its message, else 500 (reference §1.4). */
export function statusOfError(error: Error): number {
  return Number.parseInt(error.message.split('.')[0] ?? '', 10) || 500;
}
