import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger } from 'pino';

/**
 * Field names whose values never reach a log line, at any depth pino can address. Tokens, OAuth
 * codes, PKCE verifiers, secrets and authorization headers are replaced with "[redacted]".
 */
const REDACTED_KEYS = [
  'authorization',
  'Authorization',
  'cookie',
  'set-cookie',
  'access_token',
  'accessToken',
  'refresh_token',
  'refreshToken',
  'id_token',
  'token',
  'code',
  'code_verifier',
  'codeVerifier',
  'verifier',
  'state',
  'secret',
  'clientSecret',
  'client_secret',
  'password',
  'signature',
  'sig',
];

const redactPaths = REDACTED_KEYS.flatMap((key) => [
  key,
  `*.${key}`,
  `*.*.${key}`,
  `req.headers.${key.toLowerCase()}`,
]);

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
      redact: { paths: [...new Set(redactPaths)], censor: '[redacted]' },
      // URLs can carry codes and states in their query string (OAuth callbacks): log the path only.
      serializers: {
        req: (req: { method?: string; url?: string; id?: unknown }) => ({
          method: req.method,
          url: stripQuery(req.url),
          id: req.id,
        }),
        err: pino.stdSerializers.err,
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
