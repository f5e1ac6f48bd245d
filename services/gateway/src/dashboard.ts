import { createHash } from 'node:crypto';
import helmet from '@fastify/helmet';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  findConnectionsOfParticipant,
  findZoneHistory,
  listDeliveryBatches,
  listParticipantStatuses,
  participantExists,
  type DayStatus,
  type DeliveryBatch,
  type ParticipantStatusRow,
} from '@fitlamp/db';
import { addDays, localDayAt } from '@fitlamp/provider';
import type { GatewayDeps } from './app.ts';
import { DAY_STATUSES, loadDayLedger, type DayRollup, type StreamDay } from './admin-days.ts';
import { PARTICIPANT_ID, replaceWarning } from './enrollment.ts';
import { createErrorHandler } from './errors.ts';
import { html, layout, problemPage, STYLE_HASH, type SafeHtml } from './pages.ts';

/**
 * The coordinator's dashboard: server-rendered pages behind `ADMIN_TOKEN` (a browser signs in
 * with HTTP Basic, the token as the password), no scripts, no external assets. The participant
 * pages' layout and stylesheet, widened by one more stylesheet allowed by its own hash.
 */

const DASHBOARD_STYLE = `
main{max-width:78rem}
table{border-collapse:collapse;width:100%;font-size:.9rem;margin:.5rem 0 1.5rem}
th,td{border:1px solid #c8c8c8;padding:.3rem .45rem;text-align:left;vertical-align:top}
th{font-weight:600}
.scroll{overflow-x:auto}
.grid td{text-align:center;white-space:nowrap;font-size:.8rem}
.grid td small{display:block;opacity:.8}
.st-settled{background:#d7f0dd;color:#0d3b1a}
.st-partial{background:#fff2c2;color:#4a3700}
.st-empty{background:#e6e6e6;color:#333}
.st-not_synced{background:#dde8f7;color:#14305a}
.st-failed{background:#f8d2d2;color:#5a0d0d}
.notice{border:1px solid #0b6e4f;border-radius:.6rem;padding:.5rem 1rem;margin:1rem 0}
.inline{display:inline;margin:0}
.inline button{display:inline-block;width:auto;margin:0;padding:.3rem .8rem;font-size:.9rem}
nav a{margin-right:1rem}
`.trim();

/** The CSP `style-src` source that allows the dashboard's extra stylesheet. */
const DASHBOARD_STYLE_HASH = `'sha256-${createHash('sha256').update(DASHBOARD_STYLE).digest('base64')}'`;

/** The dashboard's Content-Security-Policy: no scripts, the two stylesheets, forms to itself only. */
const DASHBOARD_CSP = [
  "default-src 'none'",
  `style-src ${STYLE_HASH} ${DASHBOARD_STYLE_HASH}`,
  "img-src 'self' data:",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

/** Sends a dashboard page (also used by the JSON API's form branch, so it sets its own CSP). */
export function sendDashboardPage(reply: FastifyReply, status: number, title: string, body: SafeHtml): FastifyReply {
  return reply
    .code(status)
    .header('cache-control', 'no-store')
    .header('content-security-policy', DASHBOARD_CSP)
    .type('text/html; charset=utf-8')
    .send(layout(title, html`<style>${{ __html: DASHBOARD_STYLE }}</style>${body}`));
}

const STATUS_LABELS: Record<DayStatus, string> = {
  settled: 'settled',
  partial: 'partial',
  empty: 'empty',
  not_synced: 'not synced',
  failed: 'failed',
};
const STATUS_MEANINGS: Record<DayStatus, string> = {
  settled: 'complete: the device synced after the day ended',
  partial: 'still arriving: the device has not synced since the day ended',
  empty: 'complete, but no data: the device was not worn or recorded nothing',
  not_synced: 'nothing yet: not fetched, not synced, or waiting for the rate limit',
  failed: 'could not be fetched: see the reason; fitlamp retries by itself unless access is missing',
};

/** Days of the participant page's grid. */
const GRID_DAYS = 14;

function when(value: Date | string | null | undefined): string {
  if (!value) return '—';
  const date = typeof value === 'string' ? new Date(value) : value;
  return `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

function nav(): SafeHtml {
  return html`<nav><a href="/admin">Participants</a><a href="/admin/queues" id="queues">Queues (Bull Board)</a></nav>`;
}

function retriedNotice(retried: string | undefined): SafeHtml {
  if (!retried) return html``;
  return html`<p class="notice" id="notice">Batch ${retried} is back in the delivery queue: its records are pending again and will be sent to mindLAMP within minutes. If mindLAMP refuses them again, the batch reappears below with the new reason.</p>`;
}

function participantLink(id: string): string {
  return `/admin/participants/${encodeURIComponent(id)}`;
}

function parkedTable(batches: readonly DeliveryBatch[], returnTo: string, withParticipant: boolean): SafeHtml {
  if (batches.length === 0) return html`<p id="no-parked">No parked deliveries: mindLAMP has accepted everything sent so far.</p>`;
  return html`<p class="note">mindLAMP refused these batches, so their records wait here instead of being retried forever.
Fix the cause the reason names (for example a participant missing in mindLAMP, or a permission of the researcher key), then press Retry.</p>
<div class="scroll"><table id="parked">
<thead><tr><th>Batch</th>${withParticipant ? html`<th>Participant</th>` : html``}<th>Reason</th><th>Events</th><th>Time range</th><th>Parked at</th><th></th></tr></thead>
<tbody>${batches.map(
    (b) => html`<tr data-batch="${b.id}">
<td>${b.id}</td>${withParticipant ? html`<td><a href="${participantLink(b.participant_id)}">${b.participant_id}</a></td>` : html``}
<td>${b.last_error ?? 'no reason recorded'}</td><td>${b.event_count}</td>
<td>${when(new Date(Number(b.from_ts)))} – ${when(new Date(Number(b.to_ts)))}</td><td>${when(b.updated_at)}</td>
<td><form class="inline" method="post" action="/admin/deliveries/${b.id}/retry"><input type="hidden" name="returnTo" value="${returnTo}"><button type="submit" id="retry-${b.id}">Retry</button></form></td>
</tr>`,
  )}</tbody></table></div>`;
}

function participantsTable(rows: readonly ParticipantStatusRow[]): SafeHtml {
  if (rows.length === 0) {
    return html`<p id="no-participants">No participants yet. Create enrollment links with <code>pnpm fitlamp enroll &lt;participant ids…&gt;</code> or <code>POST /admin/enrollments</code>.</p>`;
  }
  return html`<div class="scroll"><table id="participants">
<thead><tr><th>Participant</th><th>Provider</th><th>Status</th><th>Connected at</th><th>Last sync</th></tr></thead>
<tbody>${rows.map(
    (r) => html`<tr data-participant="${r.participantId}">
<td><a href="${participantLink(r.participantId)}">${r.participantId}</a></td>
<td>${r.provider ?? '—'}</td>
<td>${r.status ?? 'not connected'}${r.statusReason ? html`<br><small>${r.statusReason}</small>` : html``}</td>
<td>${when(r.connectedAt)}</td><td>${when(r.lastSyncAt)}</td>
</tr>`,
  )}</tbody></table></div>`;
}

function cellTitle(entry: { status: DayStatus; reason: string | null; recordsFetched: number; recordsDelivered: number; recordsParked: number }, fetchedAt?: string | null): string {
  const parts = [`${STATUS_LABELS[entry.status]}: ${entry.reason ?? STATUS_MEANINGS[entry.status]}`];
  parts.push(`${entry.recordsFetched} fetched, ${entry.recordsDelivered} delivered${entry.recordsParked ? `, ${entry.recordsParked} parked` : ''}`);
  if (fetchedAt) parts.push(`fetched ${when(fetchedAt)}`);
  return parts.join('. ');
}

function cell(entry: StreamDay | DayRollup, stream: string, fetchedAt: string | null): SafeHtml {
  return html`<td class="st st-${entry.status}" data-stream="${stream}" title="${cellTitle(entry, fetchedAt)}">${STATUS_LABELS[entry.status]}<small>${entry.recordsFetched} / ${entry.recordsDelivered}</small></td>`;
}

function ledgerGrid(streams: readonly string[], days: readonly DayRollup[]): SafeHtml {
  return html`<div class="scroll"><table class="grid" id="ledger">
<thead><tr><th>Day</th><th>All streams</th>${streams.map((s) => html`<th>${s}</th>`)}</tr></thead>
<tbody>${[...days].reverse().map(
    (d) => html`<tr data-day="${d.day}"><th>${d.day}</th>${cell(d, 'all', null)}${streams.map((s) => {
      const entry = d.streams[s];
      return entry ? cell(entry, s, entry.fetchedAt) : html`<td></td>`;
    })}</tr>`,
  )}</tbody></table></div>
<p class="note">Each cell: status, then records fetched / delivered to mindLAMP. Hover a cell for the reason.
${DAY_STATUSES.map((s) => html`<br><strong>${STATUS_LABELS[s]}</strong>: ${STATUS_MEANINGS[s]}`)}</p>`;
}

/** The notice after a retry: a malformed batch id is only ignored (it changes nothing and shows nothing). */
const dashboardQuery = z.object({ retried: z.string().regex(/^[1-9][0-9]{0,17}$/).optional().catch(undefined) });
const participantParams = z.object({ id: z.string().regex(PARTICIPANT_ID) });

const backToDashboard = html`<p><a href="/admin">Back to the dashboard</a></p>`;

/** How many participants the overview lists; more are reachable through the JSON API. */
const OVERVIEW_LIMIT = 1000;

/**
 * `GET /admin` and `GET /admin/participants/:id` (HTML), each behind the admin guard in its own
 * scope: strict CSP, HTML answers for every error, including the sign-in prompt's.
 */
export async function registerDashboard(
  app: FastifyInstance,
  deps: Pick<GatewayDeps, 'db'>,
  requireAdmin: (request: FastifyRequest, reply: FastifyReply) => Promise<void>,
): Promise<void> {
  const { db } = deps;
  await app.register(async (scope) => {
    const dash = scope.withTypeProvider<ZodTypeProvider>();
    await dash.register(helmet, {
      contentSecurityPolicy: {
        useDefaults: false,
        directives: {
          defaultSrc: ["'none'"],
          styleSrc: [STYLE_HASH, DASHBOARD_STYLE_HASH],
          imgSrc: ["'self'", 'data:'],
          formAction: ["'self'"],
          frameAncestors: ["'none'"],
          baseUri: ["'none'"],
        },
      },
      // Same-origin form posts carry their Origin, which the retry route checks.
      referrerPolicy: { policy: 'same-origin' },
    });
    dash.addHook('onRequest', requireAdmin);
    // The guard answers JSON for API clients; a person in a browser who cancelled the sign-in
    // prompt gets a page saying how to sign in.
    dash.addHook('onSend', async (_request, reply, payload) => {
      if (reply.statusCode !== 401) return payload;
      reply.header('content-type', 'text/html; charset=utf-8').header('content-security-policy', DASHBOARD_CSP);
      return layout(
        'Sign in',
        html`<style>${{ __html: DASHBOARD_STYLE }}</style>${problemPage(
          'Sign in to the fitlamp dashboard',
          'This page is for the study team: your browser did not send the admin token.',
          'Reload the page and sign in with any user name and the ADMIN_TOKEN of this deployment as the password.',
        )}`,
      );
    });
    dash.setErrorHandler(
      createErrorHandler({
        badRequest: (reply, status) =>
          sendDashboardPage(
            reply,
            status,
            'Request not understood',
            html`${problemPage('That request was not understood', 'Something in the address or the form was malformed.', 'Go back to the dashboard and try again from there.')}${backToDashboard}`,
          ),
        internal: (reply) =>
          sendDashboardPage(
            reply,
            500,
            'Something went wrong',
            html`${problemPage('The dashboard could not load', 'Something failed on the server (the gateway log has the details).', 'Reload in a minute; if it keeps failing, check that Postgres is reachable (GET /readyz).')}`,
          ),
      }),
    );

    const overview = async (request: FastifyRequest<{ Querystring: z.output<typeof dashboardQuery> }>, reply: FastifyReply) => {
      const [participants, parked] = await Promise.all([
        listParticipantStatuses(db, { limit: OVERVIEW_LIMIT + 1 }),
        listDeliveryBatches(db, { status: 'parked', limit: 200 }),
      ]);
      const shown = participants.slice(0, OVERVIEW_LIMIT);
      return sendDashboardPage(
        reply,
        200,
        'fitlamp — coordinator dashboard',
        html`${nav()}
<h1>Coordinator dashboard</h1>
${retriedNotice(request.query.retried)}
<h2>Participants</h2>
${participantsTable(shown)}
${participants.length > OVERVIEW_LIMIT ? html`<p class="note">Showing the first ${OVERVIEW_LIMIT}; page through all of them with <code>GET /admin/participants?offset=…</code>.</p>` : html``}
<h2>Parked deliveries (${parked.total})</h2>
${parkedTable(parked.batches, '/admin', true)}
${parked.total > parked.batches.length ? html`<p class="note">Showing the newest ${parked.batches.length}; list all with <code>GET /admin/deliveries?status=parked</code>.</p>` : html``}`,
      );
    };
    dash.get('/admin', { schema: { querystring: dashboardQuery } }, overview);
    dash.get('/admin/', { schema: { querystring: dashboardQuery } }, overview);

    const notAParticipantId = (_request: FastifyRequest, reply: FastifyReply) =>
      sendDashboardPage(
        reply,
        400,
        'Not a participant id',
        html`${problemPage('That is not a participant id', 'Participant ids are mindLAMP ids: letters, digits, ".", "_" or "-".', 'Pick the participant from the dashboard list.')}${backToDashboard}`,
      );
    dash.get(
      '/admin/participants/:id',
      { schema: { params: participantParams, querystring: dashboardQuery }, config: { answerInvalidInput: notAParticipantId } },
      async (request, reply) => {
        const participantId = request.params.id;
        if (!(await participantExists(db, participantId))) {
          return sendDashboardPage(
            reply,
            404,
            'Participant not found',
            html`${problemPage(`fitlamp knows no participant "${participantId}"`, 'No enrollment link was ever issued for this id.', 'Check the id against mindLAMP, or create an enrollment link for it first.')}${backToDashboard}`,
          );
        }
        const zones = await findZoneHistory(db, participantId);
        const history = zones.length > 0 ? zones : [{ zone: 'UTC', validFrom: 0 }];
        const to = localDayAt(history, Date.now());
        const from = addDays(to, -(GRID_DAYS - 1));
        const [ledger, connections, parked] = await Promise.all([
          loadDayLedger(db, participantId, { from, to }),
          findConnectionsOfParticipant(db, participantId),
          listDeliveryBatches(db, { status: 'parked', participantId, limit: 200 }),
        ]);
        const zone = history[history.length - 1]!.zone;
        const self = participantLink(participantId);
        return sendDashboardPage(
          reply,
          200,
          `Participant ${participantId} — fitlamp`,
          html`${nav()}
  <h1>Participant <span id="participant">${participantId}</span></h1>
  ${retriedNotice(request.query.retried)}
  <h2>Connection</h2>
  ${
    connections.length === 0
      ? html`<p id="no-connection">Not connected yet: the participant has not completed consent. Send them an enrollment link.</p>`
      : html`<div class="scroll"><table id="connections"><thead><tr><th>Provider</th><th>Status</th><th>Connected at</th><th>Last sync</th><th>Device last synced</th></tr></thead>
  <tbody>${connections.map(
          (c) => html`<tr><td>${c.provider}</td><td>${c.status}${c.status_reason ? html`<br><small>${c.status_reason}</small>` : html``}</td>
  <td>${when(c.connected_at)}</td><td>${when(c.last_sync_at)}</td><td>${when(c.device_last_sync_at)}</td></tr>`,
        )}</tbody></table></div>
  ${connections.filter((c) => c.provider_user_id).map((c) => html`<p class="warn" id="replace-warning-${c.provider}">Careful: ${replaceWarning(participantId, c.provider)} Links issued before ${when(c.connected_at)} cannot.</p>`)}`
  }
  <h2>Last ${GRID_DAYS} days</h2>
  <p class="note">The participant's local days (${zone}), newest first. As JSON:
  <code>GET /admin/participants/${participantId}/days?from=${from}&amp;to=${to}</code></p>
  ${ledger.streams.length === 0 ? html`<p id="no-streams">No streams are scheduled for this participant and nothing was fetched in these days.</p>` : html``}
  ${ledgerGrid(ledger.streams, ledger.days)}
  <h2>Parked deliveries (${parked.total})</h2>
  ${parkedTable(parked.batches, self, false)}`,
        );
      },
    );
  });
}
