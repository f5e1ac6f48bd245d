import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, sendApiError } from './errors.ts';
import type { Fault, GoogleState } from './state.ts';

/** What a control client may ask for when injecting a fault. */
export interface FaultSpec {
  /** Path prefix (`/v4/users/me/dataTypes/steps`, `/token`) or `*` (default). */
  path?: string;
  method?: string;
  kind: Fault['kind'];
  /** For `error`: 500-599 (or any 4xx); default 503. */
  status?: number;
  latencyMs?: number;
  /** Apply to the next N matching requests only. */
  count?: number;
}

/** Adds a fault; throws on an invalid spec. */
export function addFault(state: GoogleState, spec: FaultSpec): Fault {
  if (!['error', 'latency', 'drop'].includes(spec.kind)) throw new Error('kind must be error, latency or drop');
  const status = spec.status ?? 503;
  if (!Number.isInteger(status) || status < 400 || status > 599) throw new Error('status must be 400-599');
  if (spec.count !== undefined && (!Number.isInteger(spec.count) || spec.count < 1)) throw new Error('count must be a positive integer');
  if (spec.latencyMs !== undefined && (!Number.isFinite(spec.latencyMs) || spec.latencyMs < 0)) throw new Error('latencyMs must be a non-negative number');
  const fault: Fault = {
    id: state.nextFaultId++,
    path: spec.path ?? '*',
    method: spec.method?.toUpperCase(),
    kind: spec.kind,
    status,
    latencyMs: spec.latencyMs ?? 1000,
    remaining: spec.count,
    applied: 0,
  };
  state.faults.push(fault);
  return fault;
}

const MESSAGES: Record<number, string> = {
  500: 'Internal error encountered.',
  502: 'Bad Gateway',
  503: 'The service is currently unavailable.',
  504: 'The request timed out.',
};

/** Applies the first matching fault; true when the request was answered or dropped here. */
export async function applyFault(state: GoogleState, request: FastifyRequest, reply: FastifyReply): Promise<boolean> {
  const path = request.url.split('?')[0] ?? '';
  const fault = state.faults.find((f) => (f.path === '*' || path.startsWith(f.path)) && (f.method === undefined || f.method === request.method) && f.remaining !== 0);
  if (!fault) return false;
  if (fault.remaining !== undefined) fault.remaining -= 1;
  fault.applied += 1;
  state.counters.faultsApplied += 1;
  if (fault.kind === 'latency') {
    await new Promise((resolve) => setTimeout(resolve, fault.latencyMs));
    return false;
  }
  if (fault.kind === 'drop') {
    reply.hijack();
    request.raw.socket.destroy();
    return true;
  }
  await sendApiError(reply, new ApiError(fault.status, MESSAGES[fault.status] ?? 'Injected fault.', fault.status >= 500 ? undefined : 'INJECTED_FAULT'));
  return true;
}
