export {
  CryptoError,
  createTokenCipher,
  parseEncryptionKey,
  type EncryptionKey,
  type SecretPlace,
  type TokenCipher,
} from './tokens.ts';
export { sign, verifySignature, safeEqual, randomToken, sha256Hex, createPkcePair } from './signing.ts';
