import type { FastifyInstance, FastifyReply } from 'fastify';
import { applyClockChange } from '../world/clock.ts';
import type { UserSpec, WorldUser } from '../world/users.ts';
import { addUser, findUser, lastSync, syncUser } from '../world/world.ts';
import { addFault, type FaultSpec } from './faults.ts';
import { emptyCounters, isConnected, type FitbitState } from './state.ts';

/** A user as the control API lists it. */
export function describeUser(state: FitbitState, user: WorldUser): object {
  const synced = lastSync(state.world, user, state.clock.now());
  return {
    id: user.id,
    name: user.name,
    preset: user.preset,
    zoneHistory: user.zoneHistory.map((s) => ({ from: Number.isFinite(s.from) ? new Date(s.from).toISOString() : null, zone: s.zone })),
    since: user.since,
    autoSyncMinutes: user.autoSyncMinutes,
    lastSyncAt: synced === null ? null : new Date(synced).toISOString(),
    connected: isConnected(state, user.id),
  };
}

function bad(reply: FastifyReply, message: string): FastifyReply {
  return reply.code(400).send({ error: message });
}

/** Control API under `/_control` (see the README): users, clock, syncs, faults, shutdown, counters. */
export function registerControlRoutes(app: FastifyInstance, state: FitbitState): void {
  const clockBody = (): object => ({ now: new Date(state.clock.now()).toISOString(), nowMs: state.clock.now(), frozen: state.clock.isFrozen() });

  app.get('/_control/users', async () => ({ users: state.world.users.map((u) => describeUser(state, u)) }));

  app.post('/_control/users', async (request, reply) => {
    try {
      const user = addUser(state.world, (request.body ?? {}) as UserSpec);
      return reply.code(201).send(describeUser(state, user));
    } catch (err) {
      return bad(reply, (err as Error).message);
    }
  });

  app.get('/_control/clock', async () => clockBody());

  app.post('/_control/clock', async (request, reply) => {
    const problem = applyClockChange(state.clock, (request.body ?? {}) as { set?: unknown; advanceMs?: unknown; frozen?: unknown });
    if (problem) return bad(reply, problem);
    return clockBody();
  });

  app.post('/_control/sync', async (request, reply) => {
    const body = (request.body ?? {}) as { userId?: unknown };
    const now = state.clock.now();
    const users = body.userId === undefined ? state.world.users : [findUser(state.world, String(body.userId))];
    if (users.some((u) => u === undefined)) return reply.code(404).send({ error: `unknown user ${String(body.userId)}` });
    for (const u of users) if (u) syncUser(state.world, u, now);
    return { syncedAt: new Date(now).toISOString(), users: users.map((u) => u?.id) };
  });

  app.get('/_control/faults', async () => ({ faults: state.faults }));

  app.post('/_control/faults', async (request, reply) => {
    try {
      return reply.code(201).send(addFault(state, (request.body ?? {}) as FaultSpec));
    } catch (err) {
      return bad(reply, (err as Error).message);
    }
  });

  app.delete('/_control/faults', async () => {
    state.faults.length = 0;
    return { faults: [] };
  });

  app.post('/_control/shutdown', async (request, reply) => {
    const body = (request.body ?? {}) as { gone?: unknown };
    if (typeof body.gone !== 'boolean') return bad(reply, 'gone must be a boolean');
    state.gone = body.gone;
    return { gone: state.gone };
  });

  app.post('/_control/intraday', async (request, reply) => {
    const body = (request.body ?? {}) as { enabled?: unknown };
    if (typeof body.enabled !== 'boolean') return bad(reply, 'enabled must be a boolean');
    state.intradayAccess = body.enabled;
    return { intradayAccess: state.intradayAccess };
  });

  app.post('/_control/auto-consent', async (request, reply) => {
    const body = (request.body ?? {}) as { decision?: unknown; userId?: unknown; scopes?: unknown };
    if (body.decision !== 'allow' && body.decision !== 'deny') return bad(reply, 'decision must be allow or deny');
    if (body.userId !== undefined && !findUser(state.world, String(body.userId))) return bad(reply, `unknown user ${String(body.userId)}`);
    if (body.scopes !== undefined && !(Array.isArray(body.scopes) && body.scopes.every((s) => typeof s === 'string'))) {
      return bad(reply, 'scopes must be an array of strings');
    }
    state.autoConsent = {
      decision: body.decision,
      userId: body.userId === undefined ? undefined : String(body.userId),
      scopes: body.scopes as string[] | undefined,
    };
    return { autoConsent: state.autoConsent };
  });

  app.delete('/_control/auto-consent', async () => {
    state.autoConsent = undefined;
    return { autoConsent: null };
  });

  app.get('/_control/counters', async () => state.counters);

  app.post('/_control/counters/reset', async () => {
    state.counters = emptyCounters();
    return state.counters;
  });
}
