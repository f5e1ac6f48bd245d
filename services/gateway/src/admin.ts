import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  ACTIVE_CONNECTION_STATUSES,
  endConnection,
  findConnectionsOfParticipant,
  listParticipantStatuses,
  participantExists,
  unscheduleStreams,
  type ConnectionStatus,
} from '@fitlamp/db';
import { ProviderError, type ProviderName } from '@fitlamp/provider';
import { jobIdFor } from '@fitlamp/queues';
import type { GatewayDeps } from './app.ts';
import { EnrollmentError, issueEnrollment, PARTICIPANT_ID } from './enrollment.ts';
import { studyScopeOf } from './admin-auth.ts';
import { sendError } from './errors.ts';
import { revocableToken } from './stored-tokens.ts';
import { issueReconsentLinks, migrationStates } from './reconsent.ts';

/** The providers and connection statuses a coordinator can filter by. */
export const PROVIDERS = ['fitbit', 'google-health'] as const satisfies readonly ProviderName[];
export const STATUSES = ['connected', 'reconnect_needed', 'needs_reconsent', 'revoked', 'disconnected'] as const satisfies readonly ConnectionStatus[];

const expiresInHours = z.number().int().min(1).max(24 * 365).optional();
/**
 * `POST /admin/enrollments`: a link for one participant, or (`status: "needs_reconsent"`) a link
 * for every participant waiting to re-consent.
 */
const enrollmentBody = z.discriminatedUnion(
  'status',
  [
    z.strictObject({
      participantId: z.string().regex(PARTICIPANT_ID, 'a mindLAMP participant id: letters, digits, ".", "_" or "-", up to 128'),
      provider: z.enum(PROVIDERS),
      expiresInHours,
      status: z.undefined().optional(),
    }),
    z.strictObject({ provider: z.enum(PROVIDERS), status: z.literal('needs_reconsent'), expiresInHours }),
  ],
  { error: 'either a participantId, or status "needs_reconsent" for a link to everyone waiting to re-consent' },
);
const participantsQuery = z.strictObject({
  status: z.enum([...STATUSES, 'not_connected']).optional(),
  provider: z.enum(PROVIDERS).optional(),
  /** Where participants stand in the move from the legacy API (see reconsent.ts). */
  migration: z.enum(['legacy_only', 'waiting', 'migrated']).optional(),
  limit: z.coerce.number().int().min(1).max(5000).default(1000),
  offset: z.coerce.number().int().min(0).default(0),
});
const participantParams = z.object({ id: z.string().regex(PARTICIPANT_ID) });
const disconnectQuery = z.strictObject({
  provider: z.enum(PROVIDERS).optional(),
  /** Delete the tokens even if the provider cannot be reached to revoke them. */
  force: z.enum(['true', 'false']).default('false').transform((v) => v === 'true'),
});

/**
 * The coordinator's API, behind `ADMIN_TOKEN` (the caller registers the guard):
 * `POST /admin/enrollments`, `GET /admin/participants`, `DELETE /admin/participants/:id/connection`.
 */
export function registerAdminRoutes(scope: FastifyInstance, deps: GatewayDeps): void {
  const app = scope.withTypeProvider<ZodTypeProvider>();
  const { env, db, logger } = deps;
  // Per request: the links hang off PUBLIC_BASE_URL as it is now (tests move it to their port).
  const enrollmentDeps = () => ({ db, lamp: deps.lamp, enrollmentSecret: env.ENROLLMENT_SECRET, publicBaseUrl: env.PUBLIC_BASE_URL, defaultTtlHours: env.ENROLLMENT_TTL_HOURS });

  app.post('/admin/enrollments', { schema: { body: enrollmentBody } }, async (request, reply) => {
    const body = request.body;
    const scope = studyScopeOf(request);
    if (!deps.providers[body.provider]) {
      const message = `provider "${body.provider}" is not configured on this gateway (enabled: ${Object.keys(deps.providers).join(', ') || 'none'})`;
      return sendError(reply, 400, 'provider_not_enabled', message, [{ path: 'provider', message }]);
    }
    if (body.status === 'needs_reconsent') {
      if (scope) return sendError(reply, 403, 'forbidden', 'links for everyone waiting to re-consent span studies: ask the global admin, or request one link per participant');
      const result = await issueReconsentLinks(enrollmentDeps(), { provider: body.provider, expiresInHours: body.expiresInHours });
      logger.info({ provider: body.provider, issued: result.links.length, failed: result.failed.length }, 're-consent links issued');
      // Every link made, and every participant that got none.
      return reply.code(201).send(result);
    }
    const { participantId, provider, expiresInHours } = body;
    try {
      const issued = await issueEnrollment(enrollmentDeps(), { participantId, provider, expiresInHours, ...(scope ? { studyIds: scope } : {}) });
      logger.info({ participantId, provider, expiresAt: issued.expiresAt }, 'enrollment link issued');
      return reply.code(201).send({ url: issued.url, expiresAt: issued.expiresAt, ...(issued.warning ? { warning: issued.warning } : {}) });
    } catch (error) {
      if (!(error instanceof EnrollmentError)) throw error;
      const status = error.code === 'participant_not_found' ? 404 : error.code === 'lamp_rejected' ? 502 : 503;
      return reply.code(status).send({ error: error.code, message: error.message });
    }
  });

  app.get('/admin/participants', { schema: { querystring: participantsQuery } }, async (request) => {
    const { status, provider, migration, limit, offset } = request.query;
    const scope = studyScopeOf(request);
    const rows = await listParticipantStatuses(db, {
      ...(scope ? { studyIds: scope } : {}),
      ...(status && status !== 'not_connected' ? { status } : {}),
      ...(provider ? { provider } : {}),
      limit,
      offset,
    });
    // Computed over every connection of each participant, whatever the filters.
    const migrations = migrationStates(
      provider || status ? await listParticipantStatuses(db, { limit: 100_000, ...(scope ? { studyIds: scope } : {}) }) : rows,
    );
    const participants = rows
      .map((r) => ({
        participantId: r.participantId,
        studyId: r.studyId,
        provider: r.provider,
        // Enrolled (a link was issued) but never connected.
        status: r.status ?? 'not_connected',
        statusReason: r.statusReason,
        scopes: r.scopes,
        connectedAt: r.connectedAt?.toISOString() ?? null,
        disconnectedAt: r.disconnectedAt?.toISOString() ?? null,
        lastSyncAt: r.lastSyncAt ? new Date(r.lastSyncAt).toISOString() : null,
        enrolledAt: r.createdAt.toISOString(),
        migration: migrations.get(r.participantId) ?? null,
      }))
      .filter((p) => status !== 'not_connected' || p.status === 'not_connected')
      .filter((p) => !migration || p.migration === migration);
    return { participants };
  });

  app.delete('/admin/participants/:id/connection', { schema: { params: participantParams, querystring: disconnectQuery } }, async (request, reply) => {
    const participantId = request.params.id;
    const { provider: only, force } = request.query;
    const scope = studyScopeOf(request);
    if (scope && !(await participantExists(db, participantId, scope))) {
      return reply.code(404).send({ error: 'not_connected', message: `participant "${participantId}" has no ${only ?? 'provider'} connection` });
    }
    const connections = (await findConnectionsOfParticipant(db, participantId)).filter((c) => !only || c.provider === only);
    if (connections.length === 0) {
      return reply.code(404).send({ error: 'not_connected', message: `participant "${participantId}" has no ${only ?? 'provider'} connection` });
    }

    // Revoke everything first: if the provider cannot be reached, change nothing (unless forced),
    // so the coordinator can retry and no grant stays alive at the provider unnoticed.
    const revoked = new Map<string, boolean>();
    for (const connection of connections) {
      if (!connection.refresh_token_enc && !connection.access_token_enc) {
        revoked.set(connection.provider, false);
        continue;
      }
      const provider = deps.providers[connection.provider];
      try {
        if (!provider) throw new Error(`provider "${connection.provider}" is not configured on this gateway`);
        await provider.revokeToken(revocableToken(deps.cipher, connection)!);
        revoked.set(connection.provider, true);
      } catch (error) {
        const code = error instanceof ProviderError ? error.code : 'unexpected';
        logger.warn({ participantId, provider: connection.provider, code }, 'revocation at the provider failed');
        if (!force) {
          return reply.code(502).send({
            error: 'revoke_failed',
            message: `could not revoke the ${connection.provider} grant (${code}); nothing was changed. Retry, or add ?force=true to delete the tokens anyway.`,
          });
        }
        revoked.set(connection.provider, false);
      }
    }

    const results = [];
    for (const connection of connections) {
      await endConnection(db, participantId, connection.provider, 'disconnected', 'disconnected by an administrator');
      results.push({ provider: connection.provider, status: 'disconnected' as const, revokedAtProvider: revoked.get(connection.provider) ?? false });
    }
    const remaining = (await findConnectionsOfParticipant(db, participantId)).filter((c) =>
      (ACTIVE_CONNECTION_STATUSES as readonly string[]).includes(c.status),
    );
    if (remaining.length === 0) {
      await unscheduleStreams(db, participantId);
      try {
        // A waiting or delayed job goes now; a running one finds the tokens gone and stops.
        await deps.queues.queueFor('sync', participantId).remove(jobIdFor('sync', participantId));
      } catch (error) {
        logger.warn({ participantId, err: error instanceof Error ? error.message : String(error) }, 'could not remove the queued sync job');
      }
    }
    logger.info({ participantId, connections: results }, 'connection removed by an administrator');
    return { participantId, connections: results };
  });
}
