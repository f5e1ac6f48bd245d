import formbody from '@fastify/formbody';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { findBatchParticipant, listDeliveryBatches, participantExists, requeueParkedBatch, type BatchStatus, type DeliveryBatch } from '@fitlamp/db';
import { enqueue } from '@fitlamp/queues';
import type { GatewayDeps } from './app.ts';
import { PARTICIPANT_ID } from './enrollment.ts';
import { html, problemPage, type SafeHtml } from './pages.ts';
import { batchesTable, nav, parkedTable, retriedNotice, sendDashboardPage } from './dashboard.ts';
import { sendError } from './errors.ts';
import { studyScopeOf } from './admin-auth.ts';

const BATCH_STATUSES = ['sending', 'delivered', 'unknown', 'parked', 'abandoned'] as const satisfies readonly BatchStatus[];

const deliveriesQuery = z.strictObject({
  status: z.enum(BATCH_STATUSES).default('parked'),
  participantId: z.string().regex(PARTICIPANT_ID, 'a mindLAMP participant id').optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  offset: z.coerce.number().int().min(0).default(0),
  /** The page after a Retry from it shows which batch went back to the queue. */
  retried: z.string().regex(/^[1-9][0-9]{0,17}$/).optional().catch(undefined),
});
/** bigserial ids: digits only, short enough to stay a Postgres bigint. */
const batchIdSchema = z.string().regex(/^[1-9][0-9]{0,17}$/, 'a delivery batch id: a positive whole number');
const batchParams = z.object({ batchId: batchIdSchema });
/** Where the dashboard's Retry form may send the coordinator back to: dashboard pages only. */
const returnTo = z
  .string()
  .regex(/^\/admin(\/participants\/[A-Za-z0-9][A-Za-z0-9._-]{0,127}|\/deliveries)?$/, 'a dashboard page')
  .default('/admin');
/** The dashboard's form; a JSON client sends no body. */
const retryBody = z.preprocess((body) => body ?? {}, z.object({ returnTo }));

/** A delivery batch as the admin API shows it. */
function batchView(batch: DeliveryBatch) {
  return {
    batchId: batch.id,
    participantId: batch.participant_id,
    status: batch.status,
    reason: batch.last_error,
    eventCount: batch.event_count,
    bytes: batch.bytes,
    /** The first and last event's mindLAMP timestamp, as ISO instants. */
    from: new Date(Number(batch.from_ts)).toISOString(),
    to: new Date(Number(batch.to_ts)).toISOString(),
    attempts: batch.attempts,
    createdAt: batch.created_at.toISOString(),
    /** When the batch reached its status (parked: when mindLAMP refused it). */
    updatedAt: batch.updated_at.toISOString(),
    retryUrl: batch.status === 'parked' ? `/admin/deliveries/${batch.id}/retry` : null,
  };
}

/**
 * A browser asks for a page: it lists `text/html` in Accept. API clients asking for
 * `application/json` (or anything, as curl's `*\/*` does) get JSON, as before.
 */
function wantsPage(request: FastifyRequest): boolean {
  const accept = request.headers.accept ?? '';
  return /(^|,)\s*text\/html/.test(accept);
}

export function isForm(request: FastifyRequest): boolean {
  return (request.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded');
}

/**
 * Browsers attach cached Basic credentials to any request to this origin, including a form
 * another site makes them submit: refuse POSTs a browser marks as cross-site. API clients
 * (curl, scripts) send neither header and are judged by their bearer token alone.
 */
function isCrossSite(request: FastifyRequest): boolean {
  const site = request.headers['sec-fetch-site'];
  if (typeof site === 'string') return site !== 'same-origin' && site !== 'none';
  const origin = request.headers.origin;
  if (typeof origin !== 'string') return false;
  try {
    return new URL(origin).host !== request.host;
  } catch {
    return true;
  }
}

/**
 * A preValidation hook that refuses, before anything else, a dashboard form post (`button`, as
 * the page names it; `action`, as a sentence does) another site made the browser send.
 */
export function refuseCrossSiteFor(button: string, action: string) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    if (!isCrossSite(request)) return;
    if (isForm(request)) {
      return sendDashboardPage(
        reply,
        403,
        `${button} refused`,
        html`${problemPage(`${button} refused`, 'The request did not come from the fitlamp dashboard.', `Open the dashboard and press ${button} there.`)}${backLink('/admin')}`,
      );
    }
    return sendError(reply, 403, 'cross_site', `This ${action} came from another site, so it was refused. Open the dashboard at /admin and press ${button} there.`);
  };
}

export function backLink(to: string): SafeHtml {
  return html`<p><a href="${to}" id="back">Back to the dashboard</a></p>`;
}

/**
 * `GET /admin/deliveries?status=parked` and `POST /admin/deliveries/:batchId/retry` (JSON, or
 * the dashboard's form, answered with a redirect back). Register behind the admin guard.
 */
export async function registerAdminDeliveryRoutes(scope: FastifyInstance, deps: Pick<GatewayDeps, 'db' | 'queues' | 'logger'>): Promise<void> {
  const app = scope.withTypeProvider<ZodTypeProvider>();
  const { db, queues, logger } = deps;

  app.get('/admin/deliveries', { schema: { querystring: deliveriesQuery } }, async (request, reply) => {
    const { status, participantId, limit, offset } = request.query;
    const scope = studyScopeOf(request);
    const { batches, total } = await listDeliveryBatches(db, { status, limit, offset, ...(participantId ? { participantId } : {}), ...(scope ? { studyIds: scope } : {}) });
    if (!wantsPage(request)) return { status, total, limit, offset, deliveries: batches.map(batchView) };
    const filter = (s: BatchStatus) =>
      s === status ? html`<strong>${s}</strong>` : html`<a href="/admin/deliveries?status=${s}${participantId ? `&participantId=${participantId}` : ''}">${s}</a>`;
    const page = (at: number, label: string) =>
      html`<a href="/admin/deliveries?status=${status}&amp;offset=${at}&amp;limit=${limit}${participantId ? `&participantId=${participantId}` : ''}">${label}</a>`;
    return sendDashboardPage(
      reply,
      200,
      `Deliveries (${status}) — fitlamp`,
      html`${nav()}
<h1>Deliveries: ${status}${participantId ? html` of <a href="/admin/participants/${participantId}">${participantId}</a>` : html``}</h1>
${retriedNotice(request.query.retried)}
<p id="status-filter">Status: ${BATCH_STATUSES.map((s, i) => html`${i > 0 ? ' · ' : ''}${filter(s)}`)}</p>
<p class="note">${total} batches; showing ${batches.length === 0 ? 0 : offset + 1}–${offset + batches.length}. As JSON: <code>GET /admin/deliveries?status=${status}</code> with <code>Accept: application/json</code>.</p>
${status === 'parked' ? parkedTable(batches, '/admin/deliveries', true) : batchesTable(batches)}
<p>${offset > 0 ? page(Math.max(0, offset - limit), 'Newer') : html``} ${offset + batches.length < total ? page(offset + limit, 'Older') : html``}</p>`,
    );
  });

  const refuseCrossSite = refuseCrossSiteFor('Retry', 'retry');
  /** The dashboard's form gets a page; a JSON client the JSON 400. */
  const retryNotUnderstood = (request: FastifyRequest, reply: FastifyReply) =>
    isForm(request)
      ? sendDashboardPage(
          reply,
          400,
          'Retry not understood',
          html`${problemPage('That retry was not understood', 'The batch id or the page to return to is malformed.', 'Go back to the dashboard and press Retry on the batch again.')}${backLink('/admin')}`,
        )
      : undefined;

  // The dashboard's Retry button posts a form: parse it here only, so the rest of the JSON API
  // keeps refusing form bodies.
  await app.register(async (formScope) => {
    await formScope.register(formbody, { bodyLimit: 4 * 1024 });

    formScope.withTypeProvider<ZodTypeProvider>().post(
      '/admin/deliveries/:batchId/retry',
      { schema: { params: batchParams, body: retryBody }, preValidation: refuseCrossSite, config: { answerInvalidInput: retryNotUnderstood } },
      async (request, reply) => {
        const form = isForm(request);
        const batchId = request.params.batchId;
        const back = request.body.returnTo;
        const scope = studyScopeOf(request);
        // A batch of another study's participant does not exist, as far as a scoped coordinator knows.
        const owner = scope ? await findBatchParticipant(db, batchId) : undefined;
        const inScope = !scope || (owner !== undefined && (await participantExists(db, owner, scope)));
        const outcome = inScope ? await requeueParkedBatch(db, batchId) : ({ kind: 'not_found' } as const);
        if (outcome.kind === 'not_found') {
          const message = `there is no delivery batch ${batchId}; list parked batches with GET /admin/deliveries?status=parked`;
          if (!form) return sendError(reply, 404, 'batch_not_found', message);
          return sendDashboardPage(
            reply,
            404,
            'Batch not found',
            html`${problemPage(`There is no delivery batch ${batchId}`, 'It may have been removed, or the link is wrong.', 'Reload the dashboard to see the batches that are parked now.')}${backLink(back)}`,
          );
        }
        if (outcome.kind === 'not_parked') {
          const message = `delivery batch ${batchId} is ${outcome.status}, not parked: only a parked batch can be retried`;
          if (!form) return reply.code(409).send({ error: 'batch_not_parked', status: outcome.status, message });
          return sendDashboardPage(
            reply,
            409,
            'Batch not parked',
            html`${problemPage(
              `Batch ${batchId} is not parked any more`,
              `Its status is "${outcome.status}": it was probably retried already, so its records are back on their way to mindLAMP.`,
              'Reload the dashboard; nothing else needs doing.',
            )}${backLink(back)}`,
          );
        }

        let jobId: string | null = null;
        try {
          jobId = await enqueue(queues, 'deliver', { participantId: outcome.batch.participant_id, reason: 'manual' });
        } catch (error) {
          // The records are pending in Postgres already: the scheduler's undelivered sweep will
          // create the delivery job if Redis cannot take it now.
          logger.warn({ batchId, err: error instanceof Error ? error.message : String(error) }, 'could not enqueue delivery after a retry');
        }
        logger.info({ batchId, participantId: outcome.batch.participant_id, records: outcome.records, queued: jobId !== null }, 'parked batch retried by an administrator');
        if (form) {
          return reply.code(303).header('location', `${back}?retried=${batchId}`).send();
        }
        return reply.code(202).send({
          batchId,
          participantId: outcome.batch.participant_id,
          status: outcome.batch.status,
          recordsRequeued: outcome.records,
          queued: jobId !== null,
          jobId,
          message:
            jobId !== null
              ? `${outcome.records} records are pending again and a delivery job is queued`
              : `${outcome.records} records are pending again; the queue could not be reached, so the scheduler's sweep will deliver them`,
        });
      },
    );
  });
}
