import { createCipheriv, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  CryptoError,
  createPkcePair,
  createTokenCipher,
  parseEncryptionKey,
  randomToken,
  safeEqual,
  sign,
  verifySignature,
} from './index.ts';

const keySetting = (id?: string) => `${id ? `${id}:` : ''}${randomBytes(32).toString('base64')}`;

describe('token cipher', () => {
  const here = { table: 'provider_connections', column: 'refresh_token_enc', participantId: 'U1' };

  it('round-trips and never stores the plaintext', () => {
    const cipher = createTokenCipher(parseEncryptionKey(keySetting('k1')));
    const secret = 'refresh-token-abc123';
    const stored = cipher.encrypt(secret, here);
    expect(stored).not.toContain(secret);
    expect(stored.startsWith('v2.k1.')).toBe(true);
    expect(cipher.decrypt(stored, here)).toBe(secret);
    // A fresh IV each time: equal plaintexts give unequal ciphertexts.
    expect(cipher.encrypt(secret, here)).not.toBe(stored);
  });

  it('rejects tampered ciphertext, tag and a relabelled key id', () => {
    const k1 = parseEncryptionKey(keySetting('k1'));
    const k2 = { id: 'k2', key: k1.key };
    const cipher = createTokenCipher(k1, [k2]);
    const stored = cipher.encrypt('hello world', here);
    const parts = stored.split('.');
    const body = Buffer.from(parts[3]!, 'base64url');
    body[0] = body[0]! ^ 1;
    const tampered = [...parts.slice(0, 3), body.toString('base64url'), parts[4]].join('.');
    expect(() => cipher.decrypt(tampered, here)).toThrow(expect.objectContaining({ code: 'ciphertext_tampered' }));
    const badTag = [...parts.slice(0, 4), Buffer.alloc(16).toString('base64url')].join('.');
    expect(() => cipher.decrypt(badTag, here)).toThrow(CryptoError);
    // Same key bytes under another id: the id is authenticated, so relabelling fails.
    const relabelled = ['v2', 'k2', ...parts.slice(2)].join('.');
    expect(() => cipher.decrypt(relabelled, here)).toThrow(expect.objectContaining({ code: 'ciphertext_tampered' }));
    expect(() => cipher.decrypt('garbage', here)).toThrow(expect.objectContaining({ code: 'ciphertext_malformed' }));
  });

  it('refuses a truncated tag or an IV of another length before GCM sees them', () => {
    const cipher = createTokenCipher(parseEncryptionKey(keySetting('k1')));
    const parts = cipher.encrypt('hello world', here).split('.');
    // GCM accepts tags down to 4 bytes unless told their length: a 4-byte tag is 2^32 guesses away.
    const shortTag = [...parts.slice(0, 4), Buffer.from(parts[4]!, 'base64url').subarray(0, 4).toString('base64url')].join('.');
    expect(() => cipher.decrypt(shortTag, here)).toThrow(expect.objectContaining({ code: 'ciphertext_malformed' }));
    const longIv = [parts[0], parts[1], Buffer.alloc(16).toString('base64url'), ...parts.slice(3)].join('.');
    expect(() => cipher.decrypt(longIv, here)).toThrow(expect.objectContaining({ code: 'ciphertext_malformed' }));
  });

  it('binds a value to its table, column and participant: moved to another row it fails', () => {
    const cipher = createTokenCipher(parseEncryptionKey(keySetting('k1')));
    const stored = cipher.encrypt('refresh-token', here);
    for (const elsewhere of [{ ...here, participantId: 'U2' }, { ...here, column: 'access_token_enc' }, { ...here, table: 'oauth_states' }]) {
      expect(() => cipher.decrypt(stored, elsewhere)).toThrow(expect.objectContaining({ code: 'ciphertext_tampered' }));
    }
  });

  it('still reads the v1 format (key id bound only), and calls it stale', () => {
    const k1 = parseEncryptionKey(keySetting('k1'));
    // A v1 value as the previous release wrote it.
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', k1.key, iv);
    c.setAAD(Buffer.from('k1'));
    const body = Buffer.concat([c.update('old-token', 'utf8'), c.final()]);
    const v1 = ['v1', 'k1', iv.toString('base64url'), body.toString('base64url'), c.getAuthTag().toString('base64url')].join('.');
    const cipher = createTokenCipher(k1);
    expect(cipher.decrypt(v1, here)).toBe('old-token');
    expect(cipher.isStale(v1)).toBe(true);
    expect(cipher.isStale(cipher.encrypt('x', here))).toBe(false);
  });

  it('decrypts values written under a rotated-out key while writing with the new one', () => {
    const oldKey = parseEncryptionKey(keySetting('2025a'));
    const newKey = parseEncryptionKey(keySetting('2026a'));
    const before = createTokenCipher(oldKey).encrypt('old-token', here);
    const rotated = createTokenCipher(newKey, [oldKey]);
    expect(rotated.decrypt(before, here)).toBe('old-token');
    expect(rotated.isStale(before)).toBe(true);
    expect(rotated.keyIdOf(rotated.encrypt('x', here))).toBe('2026a');
    // Once the old key is dropped entirely, its values are reported as such.
    const dropped = createTokenCipher(newKey);
    expect(() => dropped.decrypt(before, here)).toThrow(expect.objectContaining({ code: 'key_unknown' }));
  });

  it('refuses keys of the wrong size without echoing them', () => {
    const short = randomBytes(16).toString('base64');
    let message = '';
    try {
      parseEncryptionKey(short);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/32 bytes/);
    expect(message).not.toContain(short);
    expect(() => parseEncryptionKey('bad id!:' + randomBytes(32).toString('base64'))).toThrow(/key id/);
    expect(parseEncryptionKey(randomBytes(32).toString('base64')).id).toBe('k1');
  });
});

describe('signing', () => {
  it('verifies its own signatures and rejects any change', () => {
    const sig = sign('secret-1', 'participant=U1&exp=123');
    expect(verifySignature('secret-1', 'participant=U1&exp=123', sig)).toBe(true);
    expect(verifySignature('secret-1', 'participant=U2&exp=123', sig)).toBe(false);
    expect(verifySignature('secret-2', 'participant=U1&exp=123', sig)).toBe(false);
    expect(verifySignature('secret-1', 'participant=U1&exp=123', sig.slice(1))).toBe(false);
  });

  it('compares strings of different lengths safely', () => {
    expect(safeEqual('abc', 'abc')).toBe(true);
    expect(safeEqual('abc', 'abcd')).toBe(false);
    expect(safeEqual('', '')).toBe(true);
  });

  it('makes PKCE pairs per RFC 7636 and tokens with enough entropy', () => {
    const { verifier, challenge } = createPkcePair();
    expect(verifier).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(challenge).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(randomToken(16)).toHaveLength(22);
    expect(randomToken()).not.toBe(randomToken());
  });
});
