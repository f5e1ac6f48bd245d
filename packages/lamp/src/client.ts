import { Agent, request, type Dispatcher } from 'undici';

/**
 * What went wrong talking to mindLAMP. The distinction that matters most for exactly-once
 * delivery (DESIGN.md principle 2, reference §6):
 *
 * - `unavailable`: the request never left (connection refused, DNS failure, connect timeout):
 *   nothing can have been stored, a retry is safe.
 * - `outcome_unknown`: the request was (or may have been) sent, and no status came back (timeout
 *   waiting for the answer, socket reset, connection dropped). The server may have stored it:
 *   read back before resending.
 * - `server_error` (5xx): answered, but an ordered `insertMany` can fail mid-batch after storing a
 *   prefix (reference §1.3): for a POST, reconcile too.
 */
export type LampErrorCode =
  | 'unauthorized'
  | 'forbidden'
  | 'participant_not_found'
  | 'too_large'
  | 'rejected'
  | 'server_error'
  | 'outcome_unknown'
  | 'unavailable';

/** The one error class of `@fitlamp/lamp`. Messages name the request and mindLAMP's error slug, never credentials. */
export class LampError extends Error {
  constructor(
    readonly code: LampErrorCode,
    message: string,
    /** The HTTP status, when mindLAMP answered. */
    readonly status?: number,
    /** mindLAMP's error slug (e.g. `403.no-such-credentials`), when it sent one. */
    readonly slug?: string,
  ) {
    super(message);
    this.name = 'LampError';
  }
}

/** One sensor event as mindLAMP stores it (reference §1.2). */
export interface SensorEvent {
  /** UTC epoch milliseconds. */
  timestamp: number;
  sensor: string;
  data: Record<string, unknown>;
  /** Extra top-level keys are stored and returned as sent. */
  [extra: string]: unknown;
}

export interface ListSensorEventsOptions {
  /** Exact sensor name, e.g. `lamp.steps`. */
  origin?: string;
  /** Inclusive lower bound, epoch ms. mindLAMP ignores 0. */
  from?: number;
  /** EXCLUSIVE upper bound, epoch ms (`from === to` is treated as `to + 1` by the server). */
  to?: number;
  /** Server default 1000. Positive: newest first; negative: oldest first, `|limit|` events. */
  limit?: number;
}

export interface LampClientOptions {
  /** e.g. `https://api.lamp.digital`; a path prefix is kept. */
  baseUrl: string;
  /** A researcher-scoped credential (reference §7.1); never an admin one. */
  accessKey: string;
  secretKey: string;
  /** Defaults to an agent of the client's own (closed by `close()`); tests pass a MockAgent. */
  dispatcher?: Dispatcher;
  /** How long to wait for an answer once the request is sent (headers, then between body chunks). Default 30 s. */
  timeoutMs?: number;
  /** How long to wait for a connection. Default 10 s. */
  connectTimeoutMs?: number;
}

/** A mindLAMP API client with a researcher credential. */
export interface LampClient {
  /** `GET /participant/{id}`. @throws LampError `participant_not_found` when it does not exist (or is not this researcher's). */
  getParticipant(participantId: string): Promise<{ id: string }>;
  /**
   * The participant's study: `GET /type/{id}/parent` answers the ids above it keyed by type
   * (`{"Researcher": …, "Study": …}`). `null` when mindLAMP names none.
   */
  getParticipantStudy(participantId: string): Promise<string | null>;
  /**
   * `POST /participant/{id}/sensor_event` with an array body. Resolves only on a 2xx. mindLAMP
   * does not deduplicate: see {@link LampError} for which failures may have stored the events.
   */
  postSensorEvents(participantId: string, events: readonly SensorEvent[]): Promise<void>;
  /** `GET /participant/{id}/sensor_event`; see {@link ListSensorEventsOptions} for the server's semantics. */
  listSensorEvents(participantId: string, options?: ListSensorEventsOptions): Promise<SensorEvent[]>;
  /** `GET /participant/{id}/tag/{key}`; `undefined` when the tag is not set. */
  getTag(participantId: string, key: string): Promise<unknown>;
  /** `PUT /participant/{id}/tag/{key}/me`; `null` deletes the tag. Never put secrets in tags (participants can read them). */
  setTag(participantId: string, key: string, value: unknown): Promise<void>;
  /** Closes the client's own connection pool (not a dispatcher that was passed in). */
  close(): Promise<void>;
}

// Errors raised before any byte of the request can have reached the server.
const NOT_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_CLOSED',
  'UND_ERR_DESTROYED',
  'UND_ERR_INVALID_ARG',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_HAS_EXPIRED',
]);

function errorCodes(error: unknown): string[] {
  if (typeof error !== 'object' || error === null) return [];
  const codes: string[] = [];
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') codes.push(code);
  // Node's happy-eyeballs connect reports an AggregateError of per-address failures.
  if (error instanceof AggregateError) for (const inner of error.errors) codes.push(...errorCodes(inner));
  const cause = (error as { cause?: unknown }).cause;
  if (cause && cause !== error) codes.push(...errorCodes(cause));
  return codes;
}

/**
 * Classifies a transport failure. Anything not positively known to happen before sending counts
 * as `outcome_unknown`: wrongly calling a sent request unsent would let a retry duplicate events.
 */
function classifyTransportError(error: unknown): 'unavailable' | 'outcome_unknown' {
  const codes = errorCodes(error);
  return codes.length > 0 && codes.every((c) => NOT_SENT_CODES.has(c)) ? 'unavailable' : 'outcome_unknown';
}

const SLUG = /^\d{3}\.[a-z0-9-]+$/;

async function readSlug(body: Dispatcher.ResponseData['body']): Promise<string | undefined> {
  try {
    const text = await body.text();
    const parsed = JSON.parse(text) as { error?: unknown; message?: unknown };
    // `{error}` from LAMP handlers, `{message}` for unknown routes (reference §1.4); HTML for body-parser errors.
    const slug = typeof parsed.error === 'string' ? parsed.error : typeof parsed.message === 'string' ? parsed.message : undefined;
    // Only well-formed slugs: a 500 carries raw database messages that may echo request content.
    return slug !== undefined && SLUG.test(slug) ? slug : undefined;
  } catch {
    return undefined;
  }
}

function codeForStatus(status: number, slug: string | undefined, participantPath: boolean): LampErrorCode {
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'forbidden';
  if (status === 404 && participantPath && slug === '404.resource-not-found') return 'participant_not_found';
  if (status === 413) return 'too_large';
  if (status >= 500) return 'server_error';
  return 'rejected';
}

function assertParticipantId(participantId: string): void {
  // `me` stores events under the literal parent "me" (reference §1.6); an empty id hits another route.
  if (participantId === '' || participantId === 'me') {
    throw new LampError('rejected', 'a participant id is required (not empty, not "me")');
  }
}

/** Creates a mindLAMP client that authenticates with HTTP Basic `accessKey:secretKey` (reference §1.6). */
export function createLampClient(options: LampClientOptions): LampClient {
  if (options.secretKey.includes(':')) {
    // LAMP splits on the first two ":" only, so such a secret can never authenticate (reference §1.6).
    throw new LampError('unauthorized', 'the mindLAMP secret key must not contain ":" (mindLAMP cannot verify it)');
  }
  const base = options.baseUrl.replace(/\/+$/, '');
  const timeoutMs = options.timeoutMs ?? 30_000;
  const ownAgent = options.dispatcher
    ? undefined
    : new Agent({ connect: { timeout: options.connectTimeoutMs ?? 10_000 }, keepAliveTimeout: 4_000 });
  const dispatcher = options.dispatcher ?? ownAgent!;
  const authorization = `Basic ${Buffer.from(`${options.accessKey}:${options.secretKey}`).toString('base64')}`;

  async function call(
    method: 'GET' | 'POST' | 'PUT',
    path: string,
    init: { body?: unknown; query?: Record<string, string>; participantPath?: boolean } = {},
  ): Promise<{ status: number; json: () => Promise<unknown> }> {
    const url = new URL(base + path);
    for (const [k, v] of Object.entries(init.query ?? {})) url.searchParams.set(k, v);
    const what = `${method} ${path}`;
    let response: Dispatcher.ResponseData;
    try {
      response = await request(url, {
        dispatcher,
        method,
        headers: {
          authorization,
          accept: 'application/json',
          ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
    } catch (error) {
      const code = classifyTransportError(error);
      const reason = errorCodes(error)[0] ?? (error instanceof Error ? error.name : 'error');
      throw new LampError(
        code,
        code === 'unavailable'
          ? `mindLAMP unreachable for ${what} (${reason}): the request was not sent`
          : `no answer from mindLAMP for ${what} (${reason}): it may or may not have been applied`,
      );
    }
    const status = response.statusCode;
    if (status < 200 || status >= 300) {
      const slug = await readSlug(response.body);
      const code = codeForStatus(status, slug, init.participantPath ?? false);
      throw new LampError(code, `mindLAMP answered ${status}${slug ? ` ${slug}` : ''} to ${what}`, status, slug);
    }
    return {
      status,
      json: async () => {
        try {
          return await response.body.json();
        } catch (error) {
          if (error instanceof SyntaxError) throw new LampError('rejected', `mindLAMP sent a body that is not JSON for ${what}`, status);
          throw new LampError('outcome_unknown', `the answer to ${what} was cut off`, status);
        }
      },
    };
  }

  const participantPath = (participantId: string) => `/participant/${encodeURIComponent(participantId)}`;

  return {
    async getParticipant(participantId) {
      assertParticipantId(participantId);
      const res = await call('GET', participantPath(participantId), { participantPath: true });
      const body = (await res.json()) as { data?: unknown };
      // A root credential skips the existence check and answers an empty list (reference §1.6).
      const first = Array.isArray(body.data) ? (body.data[0] as { id?: unknown } | undefined) : undefined;
      if (!first || typeof first.id !== 'string') {
        throw new LampError('participant_not_found', `mindLAMP has no participant ${participantId}`, res.status);
      }
      return { id: first.id };
    },

    async getParticipantStudy(participantId) {
      assertParticipantId(participantId);
      const res = await call('GET', `/type/${encodeURIComponent(participantId)}/parent`, { participantPath: true });
      const body = (await res.json()) as { data?: { Study?: unknown } };
      return typeof body.data?.Study === 'string' ? body.data.Study : null;
    },

    async postSensorEvents(participantId, events) {
      assertParticipantId(participantId);
      // An empty insertMany fails on the Mongo backend (reference §1.3).
      if (events.length === 0) throw new LampError('rejected', 'refusing to post an empty batch of sensor events');
      const res = await call('POST', `${participantPath(participantId)}/sensor_event`, {
        body: events,
        participantPath: true,
      });
      // The 2xx is the commitment; the `{"data":{}}` body carries nothing more, so it is not read.
      void res;
    },

    async listSensorEvents(participantId, query = {}) {
      assertParticipantId(participantId);
      const params: Record<string, string> = {};
      if (query.origin !== undefined) params.origin = query.origin;
      if (query.from !== undefined) params.from = String(Math.trunc(query.from));
      if (query.to !== undefined) params.to = String(Math.trunc(query.to));
      if (query.limit !== undefined) params.limit = String(Math.trunc(query.limit));
      const res = await call('GET', `${participantPath(participantId)}/sensor_event`, { query: params, participantPath: true });
      const body = (await res.json()) as { data?: unknown };
      if (!Array.isArray(body.data)) throw new LampError('rejected', 'mindLAMP answered sensor events without a data array', res.status);
      return body.data as SensorEvent[];
    },

    async getTag(participantId, key) {
      assertParticipantId(participantId);
      try {
        const res = await call('GET', `${participantPath(participantId)}/tag/${encodeURIComponent(key)}`, { participantPath: true });
        return ((await res.json()) as { data?: unknown }).data;
      } catch (error) {
        if (error instanceof LampError && error.slug === '404.object-not-found') return undefined;
        throw error;
      }
    },

    async setTag(participantId, key, value) {
      assertParticipantId(participantId);
      if (key.startsWith('lamp.')) {
        // `lamp.*` keys drive mindLAMP itself (automations, dashboard settings): reference §2.2.
        throw new LampError('rejected', 'tag keys starting with "lamp." are reserved by mindLAMP; use a reverse-DNS key');
      }
      await call('PUT', `${participantPath(participantId)}/tag/${encodeURIComponent(key)}/me`, {
        body: value ?? null,
        participantPath: true,
      });
    },

    async close() {
      await ownAgent?.close();
    },
  };
}
