import { setTimeout as sleep } from 'node:timers/promises';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { authenticate, statusOfError, verifyAccess } from './auth.ts';
import { registerControlRoutes } from './control.ts';
import {
  addFaultRule,
  clearFaultRules,
  createFaultBook,
  describeFaultRuleProblem,
  takeFaults,
  type FaultBook,
  type FaultPlan,
  type FaultRule,
  type FaultRuleInput,
} from './faults.ts';
import {
  addCredential,
  ancestorsOf,
  selfTypeOf,
  addParticipant,
  countEvents,
  createLampStore,
  findDuplicates,
  findRepeats,
  listCorrectedDatums,
  getTag,
  insertEvents,
  listEvents,
  listTags,
  parseLampNumber,
  resetLampStore,
  selectEvents,
  setTag,
  type DuplicateReport,
  type RepeatReport,
  type CorrectedDatum,
  type EventCounts,
  type EventFilter,
  type LampCredential,
  type LampParticipantInput,
  type LampStore,
  type LampWorldOptions,
  type RequestLogEntry,
  type StoredEvent,
} from './store.ts';

/** The real server's JSON body limit: `express.json({ limit: "50mb" })` (reference §1.2). */
export const LAMP_DEFAULT_BODY_LIMIT = 50 * 1024 * 1024;

/** Options for {@link createLampSimulator}. */
export interface LampSimulatorOptions extends LampWorldOptions {
  /** Largest request body in bytes before a 413; default 50 MB like the real server. */
  bodyLimit?: number;
  /** Fastify's logger; default off. */
  logger?: boolean;
}

/** A running-in-process mindLAMP simulator: the Fastify app and handles for tests. */
export interface LampSimulator {
  /** Start it with `app.listen({ port: 0, host: '127.0.0.1' })`; stop it with `app.close()`. */
  app: FastifyInstance;
  store: LampStore;
  faults: FaultBook;
  addParticipant(participant: LampParticipantInput): void;
  addCredential(credential: LampCredential): void;
  /** Stored events in arrival order, optionally for one participant and/or sensor. */
  listEvents(filter?: EventFilter): StoredEvent[];
  countEvents(): EventCounts;
  /** See `findDuplicates` in `store.ts` for what counts as a duplicate. */
  findDuplicates(filter?: EventFilter): DuplicateReport;
  /** See `findRepeats` in `store.ts`: one datum stored twice, whatever its source or value. */
  findRepeats(filter?: EventFilter): RepeatReport;
  /** See `listCorrectedDatums` in `store.ts`: each stored datum with its corrections added. */
  listCorrectedDatums(filter?: EventFilter): CorrectedDatum[];
  /** The mindLAMP API requests received, in order (the control API is not logged). */
  listRequests(): RequestLogEntry[];
  /** @throws Error naming the problem when the rule is malformed. */
  addFault(rule: FaultRuleInput): FaultRule;
  /** Removes one fault by id, or all; answers how many. */
  clearFaults(id?: string): number;
  /** Back to what the options say exists: no events, tags, faults or logged requests. */
  reset(): void;
}

const TAG_OWNER_TYPES = ['researcher', 'study', 'participant', 'activity', 'sensor', 'type'] as const;

/**
 * Creates the mindLAMP API simulator: `POST`/`GET /participant/{id}/sensor_event`,
 * `GET /participant/{id}`, tags, HTTP Basic auth with LAMP's error bodies, the 50 MB body limit,
 * injectable faults, and a control API under `/_control`. See `packages/simulators/README.md`.
 */
export function createLampSimulator(options: LampSimulatorOptions = {}): LampSimulator {
  const app = Fastify({
    bodyLimit: options.bodyLimit ?? LAMP_DEFAULT_BODY_LIMIT,
    logger: options.logger ?? false,
    // A simulator must never keep a test or the CLI waiting on a client's open connection.
    forceCloseConnections: true,
  });
  const store = createLampStore(options);
  const faults = createFaultBook();
  const closing = new AbortController();
  app.addHook('preClose', async () => closing.abort());

  const simulator: LampSimulator = {
    app,
    store,
    faults,
    addParticipant: (participant) => addParticipant(store, participant),
    addCredential: (credential) => void addCredential(store, credential),
    listEvents: (filter) => listEvents(store, filter),
    countEvents: () => countEvents(store),
    findDuplicates: (filter) => findDuplicates(store, filter),
    findRepeats: (filter) => findRepeats(store, filter),
    listCorrectedDatums: (filter) => listCorrectedDatums(store, filter),
    listRequests: () => store.requests,
    addFault: (rule) => {
      const problem = describeFaultRuleProblem(rule);
      if (problem) throw new Error(`invalid fault rule: ${problem}`);
      return addFaultRule(faults, rule);
    },
    clearFaults: (id) => clearFaultRules(faults, id),
    reset: () => {
      resetLampStore(store);
      clearFaultRules(faults);
    },
  };

  registerBodyParsing(app);
  registerRequestLog(app, store);
  registerLampRoutes(app, store, faults, closing.signal);
  registerControlRoutes(app, simulator);

  // Unknown routes answer `message`, not `error` (reference §1.4).
  app.setNotFoundHandler((_request, reply) => {
    void reply.code(404).send({ message: '404.api-endpoint-unimplemented' });
  });
  return simulator;
}

class BodySyntaxError extends Error {}

/**
 * Bodies as the real server parses them (reference §1.2, §1.4): `express.json({strict: false})`
 * takes any JSON value, `express.text()` takes text/plain, anything else becomes `{}`. A malformed
 * JSON body is a 400 and a too-large body a 413, both with Express's HTML error page, before
 * any LAMP handler (or auth) runs.
 */
function registerBodyParsing(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') return done(null, {});
    try {
      done(null, JSON.parse(text));
    } catch (error) {
      done(new BodySyntaxError((error as Error).message), undefined);
    }
  });
  app.addContentTypeParser('text/plain', { parseAs: 'string' }, (_request, body, done) => done(null, body));
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, _body, done) => done(null, {}));

  app.setErrorHandler((error, _request, reply) => {
    if ((error as { code?: string }).code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return sendExpressErrorPage(reply, 413, 'PayloadTooLargeError: request entity too large');
    }
    if (error instanceof BodySyntaxError) return sendExpressErrorPage(reply, 400, `SyntaxError: ${error.message}`);
    const message = error instanceof Error ? error.message : String(error);
    return reply.code(500).send({ error: message });
  });
}

function sendExpressErrorPage(reply: FastifyReply, status: number, text: string): FastifyReply {
  const page = `<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>Error</title>\n</head>\n<body>\n<pre>${escapeHtml(text)}</pre>\n</body>\n</html>\n`;
  return reply.code(status).type('text/html; charset=utf-8').send(page);
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const logEntries = new WeakMap<FastifyRequest, RequestLogEntry>();

function operationIdOf(request: FastifyRequest): string | undefined {
  return (request.routeOptions.config as { operationId?: string } | undefined)?.operationId;
}

/** Logs every mindLAMP API request (413s and 400s included), so tests can see what a client sent. */
function registerRequestLog(app: FastifyInstance, store: LampStore): void {
  app.addHook('onRequest', async (request) => {
    const operationId = operationIdOf(request);
    if (operationId === undefined) return;
    const entry: RequestLogEntry = {
      seq: store.nextRequestSeq++,
      at: Date.now(),
      method: request.method,
      url: request.url,
      operationId,
      status: null,
      outcome: 'answered',
      faults: [],
    };
    const participantId = (request.params as Record<string, string | undefined>).id;
    if (participantId !== undefined) entry.participantId = participantId;
    store.requests.push(entry);
    logEntries.set(request, entry);
  });
  app.addHook('onResponse', async (request, reply) => {
    const entry = logEntries.get(request);
    if (entry && entry.outcome === 'answered') entry.status = reply.statusCode;
  });
}

type Work = (request: FastifyRequest, plan: FaultPlan, entry: RequestLogEntry | undefined) => unknown;

function registerLampRoutes(app: FastifyInstance, store: LampStore, faults: FaultBook, closing: AbortSignal): void {
  const route = (method: 'GET' | 'POST' | 'PUT', url: string, operationId: string, work: Work): void => {
    app.route({
      method,
      url,
      config: { operationId },
      handler: async (request, reply) => {
        const entry = logEntries.get(request);
        const plan = takeFaults(faults, {
          operationId,
          routeKey: `${method} ${url}`,
          participantId: (request.params as Record<string, string | undefined>).id,
        });
        if (entry) entry.faults = plan.applied;
        if (plan.latencyMs > 0) await sleep(plan.latencyMs, undefined, { signal: closing });
        const terminal = plan.terminal;
        if (terminal?.kind === 'status') {
          const body = terminal.body ?? { error: `${terminal.status}.simulated-fault` };
          const type = terminal.contentType ?? (typeof body === 'string' ? 'text/html; charset=utf-8' : 'application/json; charset=utf-8');
          return reply.code(terminal.status).type(type).send(typeof body === 'string' ? body : JSON.stringify(body));
        }
        if (terminal?.kind === 'drop') return dropConnection(request, reply, entry);

        let status = 200;
        let body: unknown;
        try {
          body = { data: await work(request, plan, entry) };
        } catch (caught) {
          const error = caught instanceof Error ? caught : new Error(String(caught));
          status = statusOfError(error);
          body = { error: error.message };
          if (error.message === '401.missing-credentials') {
            void reply.header('WWW-Authenticate', 'Basic realm="LAMP" charset="UTF-8"');
          }
        }
        if (terminal?.kind === 'store-then-drop') return dropConnection(request, reply, entry);
        return reply.code(status).send(body);
      },
    });
  };

  const params = (request: FastifyRequest): Record<string, string> => request.params as Record<string, string>;
  const originOf = (request: FastifyRequest): string | null => authenticate(store, request.headers.authorization);

  route('POST', '/participant/:id/sensor_event', 'Participant.create_sensor_events', (request, plan, entry) => {
    const id = params(request).id ?? '';
    const objects: unknown[] = Array.isArray(request.body) ? request.body : [request.body];
    if (entry) entry.eventCount = objects.length;
    // The verified id is discarded: master stores under the raw path id, so `me` stays `me` (reference §1.6).
    verifyAccess(store, originOf(request), id);
    const before = store.events.length;
    try {
      insertEvents(store, id, objects, plan.terminal?.kind === 'partial-write' ? plan.terminal.stored : undefined);
    } finally {
      // What this request left stored: a partial write is partial only if the batch was larger.
      if (entry) entry.storedCount = store.events.length - before;
    }
    return {};
  });

  route('GET', '/participant/:id/sensor_event', 'Participant.query_sensor_events', (request) => {
    const participantId = verifyAccess(store, originOf(request), params(request).id ?? '');
    const query = request.query as Record<string, unknown>;
    if (query.transform !== undefined) {
      // The real server applies a JSONata expression; answering untransformed data would lie to the client.
      throw new Error('501.transform-not-simulated');
    }
    return selectEvents(store, {
      participantId,
      origin: typeof query.origin === 'string' ? query.origin : undefined,
      from: parseLampNumber(query.from),
      to: parseLampNumber(query.to),
      limit: parseLampNumber(query.limit),
    });
  });

  route('GET', '/participant/:id', 'Participant.view', (request) => {
    const origin = originOf(request);
    const id = verifyAccess(store, origin, params(request).id ?? '');
    // Root skips the existence check and gets an empty list for an unknown id (reference §2).
    return store.participants.has(id) ? [{ id }] : [];
  });

  // `GET /type/{id}/parent` (OpenAPI `API.parent`): the ids above this one, keyed by their type
  // (LAMP-server `TypeRepository._parent`), e.g. `{"Researcher": "…", "Study": "…"}` for a participant.
  route('GET', '/type/:id/parent', 'API.parent', (request) => {
    const id = verifyAccess(store, originOf(request), params(request).id ?? '');
    const parents: Record<string, string> = {};
    for (const ancestor of ancestorsOf(store, id)) parents[selfTypeOf(store, ancestor) ?? 'Unknown'] = ancestor;
    return parents;
  });

  // Tags answer on every owner type and on `/attachment/`, an exact alias (reference §2.2).
  for (const ownerType of TAG_OWNER_TYPES) {
    const typeName = ownerType[0]!.toUpperCase() + ownerType.slice(1);
    for (const segment of ['tag', 'attachment']) {
      route('GET', `/${ownerType}/:id/${segment}`, `${typeName}.list_tags`, (request) =>
        listTags(store, verifyAccess(store, originOf(request), params(request).id ?? '')),
      );
      route('GET', `/${ownerType}/:id/${segment}/:key`, `${typeName}.get_tag`, (request) =>
        getTag(store, verifyAccess(store, originOf(request), params(request).id ?? ''), params(request).key ?? ''),
      );
      route('PUT', `/${ownerType}/:id/${segment}/:key/:target`, `${typeName}.set_tag`, (request) => {
        const { id = '', key = '', target = '' } = params(request);
        verifyAccess(store, originOf(request), id);
        // Stored under the raw path id, like sensor events (LAMP-server `TypeService.set`).
        setTag(store, id, target, key, request.body);
        return {};
      });
    }
  }
}

/** The ambiguous failure: whatever the handler did stays done, and the client sees a socket error. */
function dropConnection(request: FastifyRequest, reply: FastifyReply, entry: RequestLogEntry | undefined): FastifyReply {
  if (entry) {
    entry.outcome = 'dropped';
    entry.status = null;
  }
  reply.hijack();
  request.raw.socket.destroy();
  return reply;
}
