import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger } from 'pino';

/**
 * Field names whose values never reach a log line, compared without case, `_` or `-`: tokens, OAuth
 * codes and states, PKCE verifiers, secrets, keys, signatures, cookies and authorization headers.
 * A provider's error code is logged as `providerError` (or `errorCode`), which stays readable.
 */
const REDACTED_NAMES = new Set([
  'authorization',
  'proxyauthorization',
  'cookie',
  'setcookie',
  'token',
  'code',
  'codeverifier',
  'verifier',
  'state',
  'nonce',
  'secret',
  'password',
  'signature',
  'sig',
  'key',
  'assertion',
  'credentials',
]);
/** Any name ending like these is secret too: accessToken, refresh_token, clientSecret, LAMP_SECRET_KEY... */
const REDACTED_SUFFIX = /(token|secret|password|apikey|accesskey|secretkey|privatekey|encryptionkey)$/;

const CENSOR = '[redacted]';
const MAX_DEPTH = 32;

function isSecretName(key: string): boolean {
  const name = key.toLowerCase().replace(/[^a-z0-9]/g, '');
  return REDACTED_NAMES.has(name) || REDACTED_SUFFIX.test(name);
}

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Returns a copy of `value` with every secret-named field censored, at any depth. Plain objects,
 * arrays and errors are walked (errors through pino's serializer first, so their own properties
 * are covered); other class instances are left to their serializers (fastify's req and res).
 * Strings under a `url` field lose their query string, where OAuth codes and states travel.
 */
export function redactDeep(value: unknown, depth = 0, seen = new WeakSet<object>()): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (depth > MAX_DEPTH) return '[too deep]';
  if (seen.has(value)) return '[circular]';
  seen.add(value);
  try {
    if (Array.isArray(value)) return value.map((item) => redactDeep(item, depth + 1, seen));
    const source = value instanceof Error ? (pino.stdSerializers.err(value) as object) : value;
    if (!(value instanceof Error) && !isPlainObject(value)) return value;
    const out: Record<string, unknown> = {};
    for (const [key, child] of Object.entries(source)) {
      if (isSecretName(key)) out[key] = child === undefined ? undefined : CENSOR;
      else if (typeof child === 'string' && /url$/i.test(key)) out[key] = stripQuery(child);
      else out[key] = redactDeep(child, depth + 1, seen);
    }
    return out;
  } finally {
    seen.delete(value);
  }
}

export interface LoggerOptions {
  name: string;
  level?: string;
  /** Where lines go; tests pass a stream to capture them. Defaults to stdout. */
  destination?: DestinationStream;
}

/** The one logger factory: JSON lines, service name, redaction of every secret-bearing field. */
export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      name: options.name,
      level: options.level ?? 'info',
      // Every logged object is walked to any depth before serialisation (see redactDeep).
      formatters: { log: (object) => redactDeep(object) as Record<string, unknown> },
      // Header paths stay covered when fastify's raw request reaches a serializer unwalked.
      redact: { paths: ['req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]'], censor: CENSOR },
      serializers: {
        req: (req: { method?: string; url?: string; id?: unknown }) => ({
          method: req.method,
          url: stripQuery(req.url),
          id: req.id,
        }),
        // Errors were already serialised and walked by redactDeep; one logged raw is walked here.
        err: (err: unknown) => (err instanceof Error ? redactDeep(err) : err),
      },
    },
    options.destination,
  );
}

/** Drops the query string of a URL or path, where OAuth codes and states travel. */
export function stripQuery(url: string | undefined): string | undefined {
  if (!url) return url;
  const i = url.indexOf('?');
  return i === -1 ? url : `${url.slice(0, i)}?[redacted]`;
}
