import type { FastifyInstance, FastifyReply } from 'fastify';
import type { LampSimulator } from './app.ts';
import { describeFaultRuleProblem, type FaultRuleInput } from './faults.ts';
import { insertEvents, type EventFilter, type LampParticipantInput } from './store.ts';

/**
 * The control API under `/_control`, for tests and demos in another process: what exists, what
 * was received, faults, reset. No auth: a simulator never runs where strangers reach it.
 * Documented in `packages/simulators/README.md`.
 */
export function registerControlRoutes(app: FastifyInstance, simulator: LampSimulator): void {
  const { store } = simulator;
  const badRequest = (reply: FastifyReply, message: string) => reply.code(400).send({ error: message });

  app.get('/_control/participants', async () => ({
    data: [...store.participants].map(([id, studyId]) => ({ id, studyId, researcherId: store.studies.get(studyId) })),
  }));

  app.post('/_control/participants', async (request, reply) => {
    const items = asList(request.body);
    for (const item of items) {
      const participant = item as Partial<LampParticipantInput> | null;
      if (typeof participant?.id !== 'string' || participant.id === '' || typeof participant.studyId !== 'string' || participant.studyId === '') {
        return badRequest(reply, 'send {"id": "U1234567890", "studyId": "S1"} or an array of them');
      }
    }
    for (const item of items) simulator.addParticipant(item as LampParticipantInput);
    return reply.code(201).send({ data: items });
  });

  app.post('/_control/credentials', async (request, reply) => {
    const body = request.body as Record<string, unknown> | null;
    const validOrigin = body?.origin === undefined || body.origin === null || typeof body.origin === 'string';
    if (typeof body?.accessKey !== 'string' || typeof body.secretKey !== 'string' || body.secretKey === '' || !validOrigin) {
      return badRequest(reply, 'send {"accessKey": "...", "secretKey": "...", "origin"?: researcher id or null for root}');
    }
    const origin = body.origin as string | null | undefined;
    simulator.addCredential({ accessKey: body.accessKey, secretKey: body.secretKey, ...(origin === undefined ? {} : { origin }) });
    return reply.code(201).send({ data: { accessKey: body.accessKey } });
  });

  app.get('/_control/events', async (request) => ({ data: simulator.listEvents(filterOf(request.query)) }));

  // Seeds events as if some other client (the phone app, an earlier run) had posted them: no auth, no faults, not logged.
  app.post('/_control/events', async (request, reply) => {
    const body = request.body as Record<string, unknown> | null;
    if (typeof body?.participantId !== 'string' || !Array.isArray(body.events) || body.events.length === 0) {
      return badRequest(reply, 'send {"participantId": "U…", "events": [{"timestamp", "sensor", "data"}, …]}');
    }
    try {
      insertEvents(store, body.participantId, body.events);
    } catch (error) {
      return badRequest(reply, (error as Error).message);
    }
    return reply.code(201).send({ data: { stored: body.events.length } });
  });

  app.get('/_control/counts', async () => ({ data: simulator.countEvents() }));
  app.get('/_control/duplicates', async (request) => ({ data: simulator.findDuplicates(filterOf(request.query)) }));
  app.get('/_control/requests', async () => ({ data: simulator.listRequests() }));

  app.get('/_control/faults', async () => ({ data: simulator.faults.rules }));
  app.post('/_control/faults', async (request, reply) => {
    const items = asList(request.body);
    for (const item of items) {
      const problem = describeFaultRuleProblem(item);
      if (problem) return badRequest(reply, `invalid fault rule: ${problem}`);
    }
    const added = items.map((item) => simulator.addFault(item as FaultRuleInput));
    return reply.code(201).send({ data: added });
  });
  app.delete('/_control/faults', async () => ({ data: { removed: simulator.clearFaults() } }));
  app.delete('/_control/faults/:id', async (request, reply) => {
    const removed = simulator.clearFaults((request.params as { id: string }).id);
    if (removed === 0) return reply.code(404).send({ error: 'no such fault; GET /_control/faults lists them' });
    return { data: { removed } };
  });

  app.post('/_control/reset', async () => {
    simulator.reset();
    return { data: {} };
  });
}

function asList(body: unknown): unknown[] {
  return Array.isArray(body) ? body : [body];
}

function filterOf(query: unknown): EventFilter {
  const q = query as Record<string, unknown>;
  return {
    participantId: typeof q.participant === 'string' ? q.participant : undefined,
    sensor: typeof q.sensor === 'string' ? q.sensor : undefined,
  };
}
