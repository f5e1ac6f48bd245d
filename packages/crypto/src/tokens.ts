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

const FORMAT = 'v1';
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

/** Encrypts with the active key and decrypts with any key it still knows (rotation). */
export interface TokenCipher {
  readonly activeKeyId: string;
  encrypt(plaintext: string): string;
  decrypt(ciphertext: string): string;
  /** The key id a stored value was written with, so a re-encryption job can find old rows. */
  keyIdOf(ciphertext: string): string;
}

/**
 * AES-256-GCM with a random 96-bit IV per value. The stored form is
 * `v1.<keyId>.<iv>.<ciphertext>.<tag>` (base64url); the key id is bound as associated data so a
 * value cannot be relabelled to another key.
 */
export function createTokenCipher(active: EncryptionKey, previous: EncryptionKey[] = []): TokenCipher {
  const keys = new Map<string, Buffer>();
  for (const k of [...previous, active]) keys.set(k.id, k.key);

  const split = (ciphertext: string) => {
    const parts = ciphertext.split('.');
    if (parts.length !== 5 || parts[0] !== FORMAT) {
      throw new CryptoError('ciphertext_malformed', 'stored secret is not in the v1 format');
    }
    const [, keyId, iv, body, tag] = parts as [string, string, string, string, string];
    return { keyId, iv, body, tag };
  };

  return {
    activeKeyId: active.id,
    encrypt(plaintext) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', active.key, iv);
      cipher.setAAD(Buffer.from(active.id));
      const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
      return [FORMAT, active.id, iv.toString('base64url'), body.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.');
    },
    decrypt(ciphertext) {
      const { keyId, iv, body, tag } = split(ciphertext);
      const key = keys.get(keyId);
      if (!key) throw new CryptoError('key_unknown', `no key with id "${keyId}" is configured`);
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
        decipher.setAAD(Buffer.from(keyId));
        decipher.setAuthTag(Buffer.from(tag, 'base64url'));
        return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
      } catch {
        throw new CryptoError('ciphertext_tampered', 'stored secret failed authentication');
      }
    },
    keyIdOf(ciphertext) {
      return split(ciphertext).keyId;
    },
  };
}
