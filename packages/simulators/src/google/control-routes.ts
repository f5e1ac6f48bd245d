import type { FastifyInstance, FastifyReply } from 'fastify';
import { applyClockChange, parseInstant } from '../world/clock.ts';
import type { UserSpec, WorldUser } from '../world/users.ts';
import { addUser, findUser, lastSync, syncUser } from '../world/world.ts';
import { addFault, type FaultSpec } from './faults.ts';
import { emptyCounters, grantedScopes, healthUserIdOf, isConnected, type GoogleState } from './state.ts';
import { describeDelivery, notifyManually, notifySyncs, publicKeyset, pump, redeliver, rotateKey } from './webhooks.ts';

/** A user as the control API lists it. */
export function describeUser(state: GoogleState, user: WorldUser): object {
  const synced = lastSync(state.world, user, state.clock.now());
  return {
    id: user.id,
    healthUserId: healthUserIdOf(state.world.seed, user),
    legacyUserId: user.id,
    name: user.name,
    preset: user.preset,
    zoneHistory: user.zoneHistory.map((s) => ({ from: Number.isFinite(s.from) ? new Date(s.from).toISOString() : null, zone: s.zone })),
    since: user.since,
    autoSyncMinutes: user.autoSyncMinutes,
    lastSyncAt: synced === null ? null : new Date(synced).toISOString(),
    connected: isConnected(state, user.id),
    grantedScopes: [...grantedScopes(state, user.id)],
    phone: state.phoneUsers.has(user.id),
  };
}

function bad(reply: FastifyReply, message: string): FastifyReply {
  return reply.code(400).send({ error: message });
}

/** Control API under `/_control` (see the README). No auth; JSON in and out. */
export function registerControlRoutes(app: FastifyInstance, state: GoogleState): void {
  const wh = state.webhooks;
  const clockBody = (): object => ({ now: new Date(state.clock.now()).toISOString(), nowMs: state.clock.now(), frozen: state.clock.isFrozen() });

  app.get('/_control/users', async () => ({ users: state.world.users.map((u) => describeUser(state, u)) }));

  app.post('/_control/users', async (request, reply) => {
    const body = (request.body ?? {}) as UserSpec & { phone?: unknown };
    try {
      const { phone, ...spec } = body;
      const user = addUser(state.world, spec);
      if (phone === true) state.phoneUsers.add(user.id);
      return reply.code(201).send(describeUser(state, user));
    } catch (err) {
      return bad(reply, (err as Error).message);
    }
  });

  app.get('/_control/clock', async () => clockBody());

  app.post('/_control/clock', async (request, reply) => {
    const problem = applyClockChange(state.clock, (request.body ?? {}) as { set?: unknown; advanceMs?: unknown; frozen?: unknown });
    if (problem) return bad(reply, problem);
    // Automatic syncs the clock moved past now notify subscribers; due retries go out.
    notifySyncs(state);
    await pump(state);
    return clockBody();
  });

  app.post('/_control/sync', async (request, reply) => {
    const body = (request.body ?? {}) as { userId?: unknown };
    const now = state.clock.now();
    const users = body.userId === undefined ? state.world.users : [findUser(state.world, String(body.userId))];
    if (users.some((u) => u === undefined)) return reply.code(404).send({ error: `unknown user ${String(body.userId)}` });
    for (const u of users) if (u) syncUser(state.world, u, now);
    const notifications = notifySyncs(state);
    await pump(state);
    return { syncedAt: new Date(now).toISOString(), users: users.map((u) => u?.id), notifications };
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

  app.post('/_control/auto-consent', async (request, reply) => {
    const body = (request.body ?? {}) as { decision?: unknown; userId?: unknown; scopes?: unknown };
    if (body.decision !== 'allow' && body.decision !== 'deny') return bad(reply, 'decision must be allow or deny');
    if (body.userId !== undefined && !findUser(state.world, String(body.userId))) return bad(reply, `unknown user ${String(body.userId)}`);
    if (body.scopes !== undefined && !(Array.isArray(body.scopes) && body.scopes.every((s) => typeof s === 'string'))) return bad(reply, 'scopes must be an array of strings');
    state.autoConsent = { decision: body.decision, userId: body.userId === undefined ? undefined : String(body.userId), scopes: body.scopes as string[] | undefined };
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

  app.get('/_control/webhooks', async () => ({
    projectNumber: wh.projectNumber,
    serviceAccountToken: wh.serviceAccountToken,
    signatureHeaders: wh.signatureHeaders,
    envelope: wh.envelope,
    sendAuthorization: wh.sendAuthorization,
    badSignature: wh.badSignature,
    duplicateNext: wh.duplicateNext,
    subscribers: [...wh.subscribers.values()].map((s) => ({ id: s.id, endpointUri: s.endpointUri, state: s.state, configs: s.configs, secretSet: true })),
    keyset: publicKeyset(wh),
  }));

  app.post('/_control/webhooks/settings', async (request, reply) => {
    const body = (request.body ?? {}) as { signatureHeader?: unknown; envelope?: unknown; sendAuthorization?: unknown; badSignature?: unknown };
    if (body.signatureHeader !== undefined) {
      if (body.signatureHeader === 'both') wh.signatureHeaders = ['X-HEALTHAPI-SIGNATURE', 'GOOGLE-HEALTH-API-SIGNATURE'];
      else if (body.signatureHeader === 'X-HEALTHAPI-SIGNATURE' || body.signatureHeader === 'GOOGLE-HEALTH-API-SIGNATURE') wh.signatureHeaders = [body.signatureHeader];
      else return bad(reply, 'signatureHeader must be X-HEALTHAPI-SIGNATURE, GOOGLE-HEALTH-API-SIGNATURE or both');
    }
    if (body.envelope !== undefined) {
      if (body.envelope !== 'object' && body.envelope !== 'array') return bad(reply, 'envelope must be object or array');
      wh.envelope = body.envelope;
    }
    for (const k of ['sendAuthorization', 'badSignature'] as const) {
      if (body[k] === undefined) continue;
      if (typeof body[k] !== 'boolean') return bad(reply, `${k} must be a boolean`);
      wh[k] = body[k];
    }
    return { signatureHeaders: wh.signatureHeaders, envelope: wh.envelope, sendAuthorization: wh.sendAuthorization, badSignature: wh.badSignature };
  });

  app.get('/_control/webhooks/deliveries', async () => ({ deliveries: wh.deliveries.map(describeDelivery) }));

  app.post('/_control/webhooks/flush', async () => {
    notifySyncs(state);
    await pump(state);
    return { deliveries: wh.deliveries.map(describeDelivery) };
  });

  app.post('/_control/webhooks/duplicates', async (request, reply) => {
    const body = (request.body ?? {}) as { count?: unknown; deliveryId?: unknown };
    if (body.deliveryId !== undefined) {
      const d = redeliver(state, Number(body.deliveryId));
      if (!d) return reply.code(404).send({ error: `unknown delivery ${String(body.deliveryId)}` });
      await pump(state);
      return reply.code(201).send(describeDelivery(d));
    }
    const count = body.count ?? 1;
    if (!Number.isInteger(count) || (count as number) < 1) return bad(reply, 'count must be a positive integer');
    wh.duplicateNext += count as number;
    return { duplicateNext: wh.duplicateNext };
  });

  app.post('/_control/webhooks/rotate-key', async () => {
    const key = rotateKey(wh);
    return { primaryKeyId: key.keyId, keyset: publicKeyset(wh) };
  });

  app.post('/_control/webhooks/notify', async (request, reply) => {
    const body = (request.body ?? {}) as { userId?: unknown; dataType?: unknown; operation?: unknown; startTime?: unknown; endTime?: unknown };
    const user = findUser(state.world, String(body.userId));
    if (!user) return bad(reply, `unknown user ${String(body.userId)}`);
    if (typeof body.dataType !== 'string') return bad(reply, 'dataType is required (kebab-case)');
    const op = body.operation ?? 'UPSERT';
    if (op !== 'UPSERT' && op !== 'DELETE') return bad(reply, 'operation must be UPSERT or DELETE');
    const start = parseInstant(body.startTime);
    const end = parseInstant(body.endTime);
    if (start === undefined || end === undefined || end <= start) return bad(reply, 'startTime and endTime must be instants with endTime after startTime');
    const n = notifyManually(state, user, body.dataType, op, [[start, end]]);
    await pump(state);
    return { notifications: n };
  });
}
