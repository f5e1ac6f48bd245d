import type { FastifyReply, FastifyRequest } from 'fastify';
import { GONE_BODY, errorBody } from './errors.ts';
import type { Fault, FitbitState } from './state.ts';

/** What a control client may ask for when injecting a fault. */
export interface FaultSpec {
  path?: string;
  method?: string;
  kind: Fault['kind'];
  status?: number;
  latencyMs?: number;
  /** For `error`: send this `Retry-After` (seconds) with the answer. */
  retryAfterSeconds?: number;
  count?: number;
}

/** Adds a fault and returns it. Throws on an invalid spec. */
export function addFault(state: FitbitState, spec: FaultSpec): Fault {
  if (!['error', 'latency', 'drop', 'gone'].includes(spec.kind)) throw new Error('kind must be error, latency, drop or gone');
  const status = spec.status ?? (spec.kind === 'gone' ? 410 : 503);
  if (spec.kind === 'error' && (!Number.isInteger(status) || status < 400 || status > 599)) throw new Error('status must be 400-599');
  if (spec.count !== undefined && (!Number.isInteger(spec.count) || spec.count < 1)) throw new Error('count must be a positive integer');
  if (spec.retryAfterSeconds !== undefined && (!Number.isInteger(spec.retryAfterSeconds) || spec.retryAfterSeconds < 0)) {
    throw new Error('retryAfterSeconds must be a non-negative integer');
  }
  const fault: Fault = {
    id: state.nextFaultId++,
    path: spec.path ?? '*',
    method: spec.method?.toUpperCase(),
    kind: spec.kind,
    status,
    latencyMs: spec.latencyMs ?? 1000,
    ...(spec.retryAfterSeconds !== undefined ? { retryAfterSeconds: spec.retryAfterSeconds } : {}),
    remaining: spec.count,
  };
  state.faults.push(fault);
  return fault;
}

function matches(fault: Fault, request: FastifyRequest): boolean {
  const path = request.url.split('?')[0] ?? '';
  return (fault.path === '*' || path.startsWith(fault.path)) && (fault.method === undefined || fault.method === request.method);
}

/**
 * Applies the first matching fault to a request (an onRequest hook for every non-control route).
 * Returns true when the request was answered (or dropped) here.
 */
export async function applyFault(state: FitbitState, request: FastifyRequest, reply: FastifyReply): Promise<boolean> {
  const fault = state.faults.find((f) => matches(f, request));
  if (!fault) return false;
  if (fault.remaining !== undefined) {
    fault.remaining -= 1;
    if (fault.remaining <= 0) state.faults.splice(state.faults.indexOf(fault), 1);
  }
  state.counters.faultsApplied += 1;
  const bearer = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '')?.[1];
  state.servedFaults.push({
    faultId: fault.id,
    at: Date.now(),
    simAt: state.clock.now(),
    userId: bearer === undefined ? undefined : state.accessTokens.get(bearer)?.userId,
    path: request.url.split('?')[0] ?? '',
    kind: fault.kind,
    status: fault.kind === 'gone' ? 410 : fault.status,
    ...(fault.kind === 'error' && fault.retryAfterSeconds !== undefined ? { retryAfterSeconds: fault.retryAfterSeconds } : {}),
  });
  switch (fault.kind) {
    case 'latency':
      await new Promise((resolve) => setTimeout(resolve, fault.latencyMs));
      return false;
    case 'drop':
      reply.hijack();
      request.raw.socket.destroy();
      return true;
    case 'gone':
      await reply.code(410).type('application/json').send(GONE_BODY);
      return true;
    case 'error':
      if (fault.retryAfterSeconds !== undefined) reply.header('retry-after', String(fault.retryAfterSeconds));
      await reply
        .code(fault.status)
        .type('application/json')
        .send(errorBody('system', fault.status >= 500 ? 'An unexpected error has occurred. Please try again later.' : 'Injected fault.'));
      return true;
  }
}
