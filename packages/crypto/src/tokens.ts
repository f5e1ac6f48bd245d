import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/** The one error class of this package; `code` says what went wrong without echoing secrets. */
export class CryptoError extends Error {
  constructor(
    readonly code: 'key_invalid' | 'key_unknown' | 'ciphertext_malformed' | 'ciphertext_tampered',
    message: string,
  ) {
    super(message);
    this.name = 'CryptoError';
  }
}

export interface EncryptionKey {
  /** Short id stored beside every ciphertext so that old rows stay readable after rotation. */
  id: string;
  key: Buffer;
}

const FORMAT = 'v2';
const LEGACY_FORMAT = 'v1';
const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/;

/**
 * Parses a key setting: `base64` (id `k1`) or `id:base64`, where base64 decodes to 32 bytes.
 * The error never contains the value.
 */
export function parseEncryptionKey(setting: string, variable = 'TOKEN_ENCRYPTION_KEY'): EncryptionKey {
  const colon = setting.indexOf(':');
  const id = colon === -1 ? 'k1' : setting.slice(0, colon);
  const material = colon === -1 ? setting : setting.slice(colon + 1);
  if (!KEY_ID.test(id)) {
    throw new CryptoError('key_invalid', `${variable}: key id must be 1-32 letters, digits, - or _`);
  }
  const key = Buffer.from(material, 'base64');
  if (key.length !== 32 || key.toString('base64').replace(/=+$/, '') !== material.replace(/=+$/, '')) {
    throw new CryptoError('key_invalid', `${variable}: expected base64 of exactly 32 bytes (openssl rand -base64 32)`);
  }
  return { id, key };
}

/**
 * Where a stored secret lives: bound into its ciphertext as associated data, so a value moved to
 * another table, column or participant's row fails authentication instead of decrypting.
 */
export interface SecretPlace {
  table: string;
  column: string;
  participantId: string;
}

/** Encrypts with the active key and decrypts with any key it still knows (rotation). */
export interface TokenCipher {
  readonly activeKeyId: string;
  encrypt(plaintext: string, place: SecretPlace): string;
  decrypt(ciphertext: string, place: SecretPlace): string;
  /** The key id a stored value was written with, so a re-encryption job can find old rows. */
  keyIdOf(ciphertext: string): string;
  /** Whether a stored value is not yet in the current format under the active key (`rotate-keys` rewrites it). */
  isStale(ciphertext: string): boolean;
}

const IV_BYTES = 12;
const TAG_BYTES = 16;

function associatedData(format: string, keyId: string, place: SecretPlace): Buffer {
  // v1 bound the key id only; it is read (never written) until `rotate-keys` has rewritten it.
  if (format === LEGACY_FORMAT) return Buffer.from(keyId);
  return Buffer.from(JSON.stringify([FORMAT, keyId, place.table, place.column, place.participantId]));
}

/**
 * AES-256-GCM with a random 96-bit IV per value and a 128-bit tag. The stored form is
 * `v2.<keyId>.<iv>.<ciphertext>.<tag>` (base64url); the format, key id, table, column and
 * participant are bound as associated data, so a value can be neither relabelled to another key
 * nor moved to another row. `v1` values (key id bound only) still decrypt, so an upgrade needs no
 * downtime; `rotate-keys` rewrites them.
 */
export function createTokenCipher(active: EncryptionKey, previous: EncryptionKey[] = []): TokenCipher {
  const keys = new Map<string, Buffer>();
  for (const k of [...previous, active]) keys.set(k.id, k.key);

  const split = (ciphertext: string) => {
    const parts = ciphertext.split('.');
    if (parts.length !== 5 || (parts[0] !== FORMAT && parts[0] !== LEGACY_FORMAT)) {
      throw new CryptoError('ciphertext_malformed', 'stored secret is not in the v1 or v2 format');
    }
    const [format, keyId, iv, body, tag] = parts as [string, string, string, string, string];
    return { format, keyId, iv: Buffer.from(iv, 'base64url'), body: Buffer.from(body, 'base64url'), tag: Buffer.from(tag, 'base64url') };
  };

  return {
    activeKeyId: active.id,
    encrypt(plaintext, place) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', active.key, iv, { authTagLength: TAG_BYTES });
      cipher.setAAD(associatedData(FORMAT, active.id, place));
      const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
      return [FORMAT, active.id, iv.toString('base64url'), body.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.');
    },
    decrypt(ciphertext, place) {
      const { format, keyId, iv, body, tag } = split(ciphertext);
      const key = keys.get(keyId);
      if (!key) throw new CryptoError('key_unknown', `no key with id "${keyId}" is configured`);
      // A short tag would be accepted by GCM and weaken it; a short IV is not what we write.
      if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) throw new CryptoError('ciphertext_malformed', 'stored secret has a wrong IV or tag length');
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
        decipher.setAAD(associatedData(format, keyId, place));
        decipher.setAuthTag(tag);
        return Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
      } catch {
        throw new CryptoError('ciphertext_tampered', 'stored secret failed authentication');
      }
    },
    keyIdOf(ciphertext) {
      return split(ciphertext).keyId;
    },
    isStale(ciphertext) {
      const { format, keyId } = split(ciphertext);
      return format !== FORMAT || keyId !== active.id;
    },
  };
}
