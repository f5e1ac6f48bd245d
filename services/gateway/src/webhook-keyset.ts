import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { request, type Dispatcher } from 'undici';

/**
 * Verifies Google Health webhook signatures (google-health-api §4.5): the header is
 * base64(0x01 ‖ keyId (4 bytes, big-endian) ‖ DER ECDSA-P256-SHA256 signature) over the raw body;
 * the public keys are a Tink JSON keyset (`EcdsaPublicKey` protos) at a published URL. Keys
 * rotate about monthly, so the keyset is cached and fetched again when a signature names a key id
 * the cache does not hold (at most once per `refetchAfterMs`).
 */
export interface KeysetVerifier {
  /** Answers whether `signature` (the header value) signs `body` with a key of the keyset. */
  verify(body: Buffer, signature: string): Promise<boolean>;
}

export interface KeysetVerifierOptions {
  url: string;
  /** Keep a fetched keyset this long [1 h]. */
  maxAgeMs?: number;
  /** Fetch again for an unknown key id at most this often [5 s]. */
  refetchAfterMs?: number;
  dispatcher?: Dispatcher;
  now?: () => number;
}

const TINK_PREFIX = 0x01;
const ECDSA_PUBLIC_KEY = 'type.googleapis.com/google.crypto.tink.EcdsaPublicKey';

interface ProtoField {
  field: number;
  bytes?: Buffer;
  varint?: number;
}

/** The top-level fields of a protobuf message (varints and length-delimited only: all EcdsaPublicKey uses). */
function readProto(buf: Buffer): ProtoField[] {
  const fields: ProtoField[] = [];
  let i = 0;
  const varint = (): number => {
    let value = 0;
    let shift = 0;
    for (;;) {
      if (i >= buf.length) throw new Error('truncated varint');
      const b = buf[i++]!;
      value += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return value;
      shift += 7;
      if (shift > 49) throw new Error('varint too long');
    }
  };
  while (i < buf.length) {
    const key = varint();
    const field = Math.floor(key / 8);
    const wire = key % 8;
    if (wire === 0) fields.push({ field, varint: varint() });
    else if (wire === 2) {
      const length = varint();
      if (i + length > buf.length) throw new Error('truncated field');
      fields.push({ field, bytes: buf.subarray(i, i + length) });
      i += length;
    } else throw new Error(`unsupported wire type ${wire}`);
  }
  return fields;
}

/** A P-256 coordinate as 32 bytes: Tink may prepend 0x00 (33 bytes) or drop leading zeros. */
function coordinate(bytes: Buffer): Buffer {
  let b = bytes;
  while (b.length > 32 && b[0] === 0) b = b.subarray(1);
  if (b.length > 32) throw new Error('coordinate longer than 32 bytes');
  return Buffer.concat([Buffer.alloc(32 - b.length), b]);
}

/** Parses a Tink JSON keyset into its enabled ECDSA P-256 public keys by key id. Throws on a malformed keyset. */
function parseTinkKeyset(json: unknown): Map<number, KeyObject> {
  const keys = new Map<number, KeyObject>();
  const list = (json as { key?: unknown })?.key;
  if (!Array.isArray(list)) throw new Error('keyset has no "key" list');
  for (const entry of list as Array<Record<string, any>>) {
    if (entry?.status !== 'ENABLED' || entry?.keyData?.typeUrl !== ECDSA_PUBLIC_KEY) continue;
    const keyId = Number(entry.keyId);
    if (!Number.isInteger(keyId)) continue;
    const proto = readProto(Buffer.from(String(entry.keyData.value ?? ''), 'base64'));
    const x = proto.find((f) => f.field === 3)?.bytes;
    const y = proto.find((f) => f.field === 4)?.bytes;
    if (!x || !y) continue;
    keys.set(
      keyId >>> 0,
      createPublicKey({ format: 'jwk', key: { kty: 'EC', crv: 'P-256', x: coordinate(x).toString('base64url'), y: coordinate(y).toString('base64url') } }),
    );
  }
  return keys;
}

/** Splits a Tink signature header into key id and DER signature; `undefined` if malformed. */
function parseTinkSignature(header: string): { keyId: number; der: Buffer } | undefined {
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(header.trim())) return undefined;
  const raw = Buffer.from(header.trim(), 'base64');
  if (raw.length < 5 + 8 || raw[0] !== TINK_PREFIX) return undefined;
  return { keyId: raw.readUInt32BE(1), der: raw.subarray(5) };
}

export function createKeysetVerifier(options: KeysetVerifierOptions): KeysetVerifier {
  const now = options.now ?? Date.now;
  const maxAgeMs = options.maxAgeMs ?? 3_600_000;
  const refetchAfterMs = options.refetchAfterMs ?? 5_000;
  let keys = new Map<number, KeyObject>();
  let fetchedAt = -Infinity;
  let inflight: Promise<void> | undefined;

  async function load(): Promise<void> {
    const res = await request(options.url, {
      method: 'GET',
      headersTimeout: 5_000,
      bodyTimeout: 5_000,
      ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}),
    });
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new Error(`keyset answered ${res.statusCode}`);
    }
    const parsed = parseTinkKeyset(await res.body.json());
    // Keys seen before stay valid until the next successful fetch: a rotation adds the new key
    // while the old one is still published.
    keys = parsed;
    fetchedAt = now();
  }

  /** One fetch at a time; a failed fetch keeps the keys already held. */
  function refresh(): Promise<void> {
    inflight ??= load().finally(() => {
      inflight = undefined;
    });
    return inflight;
  }

  return {
    async verify(body, signature) {
      const parsed = parseTinkSignature(signature);
      if (!parsed) return false;
      const age = now() - fetchedAt;
      if (age > maxAgeMs || (!keys.has(parsed.keyId) && age > refetchAfterMs)) {
        try {
          await refresh();
        } catch {
          if (keys.size === 0) throw new Error('webhook keyset unavailable');
        }
      }
      const key = keys.get(parsed.keyId);
      if (!key) return false;
      try {
        return verify('sha256', body, { key, dsaEncoding: 'der' }, parsed.der);
      } catch {
        return false;
      }
    },
  };
}
