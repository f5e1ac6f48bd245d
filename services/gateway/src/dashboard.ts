import { createHash } from 'node:crypto';
import helmet from '@fastify/helmet';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  findConnectionsOfParticipant,
  findDayTotals,
  findZoneHistory,
  listDeliveryBatches,
  listOpenAlerts,
  listStudyIds,
  type OpenAlert,
  participantExists,
  type DayStatus,
  type DayTotals,
  type DeliveryBatch,
} from '@fitlamp/db';
import { addDays, localDayAt } from '@fitlamp/provider';
import type { GatewayDeps } from './app.ts';
import { PROVIDERS, STATUSES } from './admin.ts';
import { studyScopeOf } from './admin-auth.ts';
import { ALERT_LABELS } from './alerts.ts';
import { DAY_STATUSES, isoDay, loadDayLedger, type DayRollup, type StreamDay } from './admin-days.ts';
import { PARTICIPANT_ID, replaceWarning } from './enrollment.ts';
import { createErrorHandler } from './errors.ts';
import { COMPLIANCE_DAYS, loadOverview, OVERVIEW_DAYS, type CellKind, type Overview, type OverviewCell } from './overview.ts';
import { html, layout, problemPage, STYLE_HASH, type SafeHtml } from './pages.ts';

/**
 * The coordinator's dashboard: server-rendered pages behind `ADMIN_TOKEN` (a browser signs in
 * with HTTP Basic, the token as the password), no scripts, no external assets. The participant
 * pages' layout and stylesheet, widened by one more stylesheet allowed by its own hash.
 */

const DASHBOARD_STYLE = `
main{max-width:80rem}
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
.filters{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:end;margin:.5rem 0}
.filters label{display:flex;flex-direction:column;font-size:.85rem}
.filters select,.filters button{font:inherit;font-size:.9rem;padding:.25rem .4rem;margin:0;width:auto}
.heatmap{overflow:auto;max-height:75vh;max-width:100%;border:1px solid #c8c8c8;margin:.5rem 0 1rem}
.heatmap table{width:auto;margin:0;font-size:.8rem}
.heatmap th,.heatmap td{white-space:nowrap}
.heatmap thead th{position:sticky;top:0;z-index:1;background:Canvas}
.heatmap .p{position:sticky;left:0;z-index:2;background:Canvas;min-width:7rem}
.heatmap thead .p{z-index:3}
.hm td.c{padding:0;text-align:center;min-width:2.2rem;font-size:.75rem}
.hm td.c a{display:block;padding:.3rem .1rem;color:inherit;text-decoration:none}
.k-failed{background:#f8d2d2;color:#5a0d0d}
.k-not_synced{background:repeating-linear-gradient(45deg,#dde8f7 0 4px,#f4f7fc 4px 8px);color:#14305a}
.k-no_data{background:#e6e6e6;color:#444}
.k-future{background:transparent}
.w1{background:#eef8f0;color:#0d3b1a}.w2{background:#c9ebd2;color:#0d3b1a}.w3{background:#8fd3a1;color:#0d3b1a}.w4{background:#3f9e5c;color:#fff}
.pt{font-style:italic}
.low{color:#b00020;font-weight:600}
.days{table-layout:fixed;width:100%;font-size:.72rem}
.days th,.days td{padding:.2rem .1rem;text-align:center;overflow:hidden}
.days th:first-child{width:8.5rem;text-align:left;padding-left:.3rem}
.days td.sel,.days th.sel{outline:2px solid #0b6e4f;outline-offset:-2px}
.legend span{display:inline-block;padding:.1rem .4rem;margin:.1rem .3rem .1rem 0;border-radius:.2rem}
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

/** Days of the participant page's grid: as many as the overview shows. */
const GRID_DAYS = OVERVIEW_DAYS;

function when(value: Date | string | null | undefined): string {
  if (!value) return '—';
  const date = typeof value === 'string' ? new Date(value) : value;
  return `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** The dashboard's navigation: every page links back to the overview. */
export function nav(): SafeHtml {
  return html`<nav><a href="/admin" id="overview">Overview</a><a href="/admin/deliveries" id="deliveries">Deliveries</a><a href="/admin/queues" id="queues">Queues (Bull Board)</a></nav>`;
}

export function retriedNotice(retried: string | undefined): SafeHtml {
  if (!retried) return html``;
  return html`<p class="notice" id="notice">Batch ${retried} is back in the delivery queue: its records are pending again and will be sent to mindLAMP within minutes. If mindLAMP refuses them again, the batch reappears below with the new reason.</p>`;
}

function participantLink(id: string): string {
  return `/admin/participants/${encodeURIComponent(id)}`;
}

export function parkedTable(batches: readonly DeliveryBatch[], returnTo: string, withParticipant: boolean): SafeHtml {
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

const CELL_SYMBOL: Record<Exclude<CellKind, 'worn'>, string> = { failed: '✗', not_synced: '…', no_data: '∅', future: '' };
const CELL_MEANING: Record<CellKind, string> = {
  worn: 'hours worn (minutes with heart rate)',
  failed: 'a stream could not be fetched',
  not_synced: 'not synced or not fetched yet',
  no_data: 'complete, but no heart rate: not worn',
  future: 'not yet this day in the participant’s time zone',
};

/** Wear hours as a short label, and its shade (0: under 1 h … 4: 20 h or more). */
function wearLabel(minutes: number): { text: string; shade: number } {
  const hours = minutes / 60;
  return { text: hours >= 10 ? hours.toFixed(0) : hours.toFixed(1), shade: hours >= 20 ? 4 : hours >= 12 ? 3 : hours >= 4 ? 2 : 1 };
}

/** Batches in any status but parked (those get {@link parkedTable} and its Retry buttons). */
export function batchesTable(batches: readonly DeliveryBatch[]): SafeHtml {
  if (batches.length === 0) return html`<p id="no-batches">No delivery batches in this status.</p>`;
  return html`<div class="scroll"><table id="batches">
<thead><tr><th>Batch</th><th>Participant</th><th>Status</th><th>Reason</th><th>Events</th><th>Attempts</th><th>Time range</th><th>Updated</th></tr></thead>
<tbody>${batches.map(
    (b) => html`<tr data-batch="${b.id}"><td>${b.id}</td><td><a href="${participantLink(b.participant_id)}">${b.participant_id}</a></td><td>${b.status}</td>
<td>${b.last_error ?? '—'}</td><td>${b.event_count}</td><td>${b.attempts}</td>
<td>${when(new Date(Number(b.from_ts)))} – ${when(new Date(Number(b.to_ts)))}</td><td>${when(b.updated_at)}</td></tr>`,
  )}</tbody></table></div>`;
}

/** Open alerts nobody acknowledged yet, each with its Acknowledge button. */
function alertsTable(alerts: readonly OpenAlert[]): SafeHtml {
  if (alerts.length === 0) return html`<p id="no-alerts">No open alerts: every participant is syncing, charged, worn and delivered.</p>`;
  return html`<div class="scroll"><table id="alerts">
<thead><tr><th>Participant</th><th>Study</th><th>Alert</th><th>Since</th><th></th></tr></thead>
<tbody>${alerts.map(
    (a) => html`<tr data-alert="${a.id}" data-participant="${a.participantId}" data-rule="${a.rule}">
<td><a href="${participantLink(a.participantId)}">${a.participantId}</a></td><td>${a.studyId ?? '—'}</td><td>${ALERT_LABELS[a.rule]}</td><td>${when(a.openedAt)}</td>
<td><form class="inline" method="post" action="/admin/alerts/${a.id}/acknowledge"><button type="submit" id="ack-${a.id}">Acknowledge</button></form></td></tr>`,
  )}</tbody></table></div>
<p class="note">An acknowledged alert leaves this list; it closes by itself when its condition clears, and a new one opens if it returns later.</p>`;
}

/** A heatmap cell; `link` is the participant's page, escaped once for the row's 28 cells. */
function heatCell(link: SafeHtml, cell: OverviewCell): SafeHtml {
  if (cell.kind === 'future') return html`<td class="c k-future"></td>`;
  const href = html`${link}?day=${cell.day}#day-detail`;
  if (cell.kind === 'worn') {
    const { text, shade } = wearLabel(cell.wearMinutes);
    const title = `${cell.day}: ${cell.wearMinutes} minutes worn${cell.partial ? ', still arriving' : ''}`;
    return html`<td class="c w${shade}${cell.partial ? ' pt' : ''}" data-kind="worn" data-day="${cell.day}" title="${title}"><a href="${href}">${text}</a></td>`;
  }
  const title = `${cell.day}: ${CELL_MEANING[cell.kind]}${cell.wearMinutes > 0 ? ` (${cell.wearMinutes} minutes worn)` : ''}`;
  return html`<td class="c k-${cell.kind}" data-kind="${cell.kind}" data-day="${cell.day}" title="${title}"><a href="${href}">${CELL_SYMBOL[cell.kind]}</a></td>`;
}

function battery(level: number | null): SafeHtml {
  if (level === null) return html`—`;
  return level < LOW_BATTERY_MARK ? html`<span class="low">${level} %</span>` : html`${level} %`;
}

/** A row's cells, newest day first. */
function heatCells(participantId: string, cells: readonly OverviewCell[]): SafeHtml[] {
  const link = html`${participantLink(participantId)}`;
  return [...cells].reverse().map((c) => heatCell(link, c));
}

function heatmap(overview: Overview): SafeHtml {
  if (overview.rows.length === 0) {
    return html`<p id="no-participants">No participants match. Create enrollment links with <code>pnpm fitlamp enroll &lt;participant ids…&gt;</code> or <code>POST /admin/enrollments</code>, or change the filters.</p>`;
  }
  return html`<div class="heatmap" id="heatmap-box"><table class="hm" id="heatmap">
<thead><tr><th class="p">Participant</th><th>Study</th><th>Status</th><th>Provider</th><th>Device last synced</th><th>Battery</th><th>Days since sync</th><th title="hours worn over the last ${COMPLIANCE_DAYS} days">${COMPLIANCE_DAYS}-day wear</th>${[...overview.days].reverse().map(
    (d) => html`<th title="${d}">${d.slice(5)}</th>`,
  )}</tr></thead>
<tbody>${overview.rows.map(
    (r) => html`<tr data-participant="${r.participantId}">
<th class="p" scope="row"><a href="${participantLink(r.participantId)}">${r.participantId}</a></th>
<td>${r.studyId ?? '—'}</td>
<td class="status">${r.status ?? 'not connected'}${r.statusReason ? html`<br><small>${r.statusReason}</small>` : html``}</td>
<td>${r.provider ?? '—'}</td>
<td>${when(r.deviceLastSyncAt)}</td>
<td class="battery">${battery(r.batteryLevel)}</td>
<td class="since">${r.daysSinceSync ?? 'never'}</td>
<td class="wear7">${(r.recentWearMinutes / 60).toFixed(1)} h</td>
${heatCells(r.participantId, r.cells)}</tr>`,
  )}</tbody></table></div>
<p class="note legend">Newest day first. Each cell: hours the device was worn that local day (minutes with heart rate); click it for the day's detail.
<span class="w3">12</span> worn <span class="k-no_data">${CELL_SYMBOL.no_data}</span> ${CELL_MEANING.no_data}
<span class="k-not_synced">${CELL_SYMBOL.not_synced}</span> ${CELL_MEANING.not_synced} <span class="k-failed">${CELL_SYMBOL.failed}</span> ${CELL_MEANING.failed}.
Italic: still arriving.</p>`;
}

function filterForm(query: OverviewQuery, studies: readonly string[]): SafeHtml {
  const option = (value: string, label: string, selected: string | undefined) =>
    html`<option value="${value}"${value === (selected ?? '') ? html` selected` : html``}>${label}</option>`;
  return html`<form class="filters" id="filters" method="get" action="/admin">
<label>Study<select name="study">${option('', 'all', query.study)}${studies.map((s) => option(s, s, query.study))}</select></label>
<label>Status<select name="status">${option('', 'all', query.status)}${[...STATUSES, 'not_connected'].map((s) => option(s, s.replace('_', ' '), query.status))}</select></label>
<label>Provider<select name="provider">${option('', 'all', query.provider)}${PROVIDERS.map((p) => option(p, p, query.provider))}</select></label>
<label>Order<select name="sort">${option('compliance', `least worn first (last ${COMPLIANCE_DAYS} days)`, query.sort)}${option('participant', 'participant id', query.sort)}</select></label>
<button type="submit" id="apply-filters">Show</button>
</form>`;
}

function cellTitle(entry: { status: DayStatus; reason: string | null; recordsFetched: number; recordsDelivered: number; recordsParked: number }, fetchedAt?: string | null): string {
  const parts = [`${STATUS_LABELS[entry.status]}: ${entry.reason ?? STATUS_MEANINGS[entry.status]}`];
  parts.push(`${entry.recordsFetched} fetched, ${entry.recordsDelivered} delivered${entry.recordsParked ? `, ${entry.recordsParked} parked` : ''}`);
  if (fetchedAt) parts.push(`fetched ${when(fetchedAt)}`);
  return parts.join('. ');
}

const STATUS_SYMBOL: Record<DayStatus, string> = { settled: '✓', partial: '◐', empty: '∅', not_synced: '…', failed: '✗' };

function dayCell(entry: StreamDay | DayRollup | undefined, stream: string, day: string, selected: boolean): SafeHtml {
  const sel = selected ? ' sel' : '';
  if (!entry) return html`<td class="${sel.trim()}" data-stream="${stream}" data-day="${day}" title="nothing to fetch this day">—</td>`;
  const fetchedAt = 'fetchedAt' in entry ? entry.fetchedAt : null;
  return html`<td class="st st-${entry.status}${sel}" data-stream="${stream}" data-day="${day}" data-status="${entry.status}" title="${day} ${cellTitle(entry, fetchedAt)}">${STATUS_SYMBOL[entry.status]}</td>`;
}

/** Days as columns (oldest first, so a week reads left to right), streams as rows. */
function ledgerGrid(participantId: string, streams: readonly string[], days: readonly DayRollup[], wear: ReadonlyMap<string, number>, selected: string | undefined): SafeHtml {
  const link = (day: string) => `${participantLink(participantId)}?day=${day}#day-detail`;
  return html`<div class="scroll"><table class="grid days" id="ledger">
<thead><tr><th>Day</th>${days.map((d) => html`<th data-day="${d.day}" class="${d.day === selected ? 'sel' : ''}"><a href="${link(d.day)}" title="${d.day}">${d.day.slice(8)}</a></th>`)}</tr></thead>
<tbody>
<tr data-row="wear"><th>Hours worn</th>${days.map((d) => {
    const minutes = wear.get(d.day) ?? 0;
    return html`<td data-day="${d.day}" title="${d.day}: ${minutes} minutes with heart rate">${minutes > 0 ? wearLabel(minutes).text : ''}</td>`;
  })}</tr>
<tr data-row="all"><th>All streams</th>${days.map((d) => dayCell(d, 'all', d.day, d.day === selected))}</tr>
${streams.map((s) => html`<tr data-row="${s}"><th>${s}</th>${days.map((d) => dayCell(d.streams[s], s, d.day, d.day === selected))}</tr>`)}
</tbody></table></div>
<p class="note legend">Columns are the participant's local days (${days[0]?.day ?? ''} to ${days.at(-1)?.day ?? ''}); hover a cell for its reason and counts, or open a day.
${DAY_STATUSES.map((s) => html`<br><span class="st-${s}">${STATUS_SYMBOL[s]}</span> <strong>${STATUS_LABELS[s]}</strong>: ${STATUS_MEANINGS[s]}`)}
<br>—: nothing to fetch that day (the device stream is read at each sync, not per day).</p>`;
}

/** One day in full: each stream's status, reason and counts, and the day's totals. */
function dayDetail(day: DayRollup, streams: readonly string[], totals: DayTotals | undefined): SafeHtml {
  return html`<h2 id="day-detail">${day.day}</h2>
<p id="day-totals">Worn ${totals?.wearMinutes ?? 0} minutes; ${totals?.steps ?? 0} steps; ${totals?.sleepMinutes ?? 0} minutes asleep. All streams: <strong>${STATUS_LABELS[day.status]}</strong>${day.reason ? html` (${day.reason})` : html``}.</p>
<div class="scroll"><table id="day-streams"><thead><tr><th>Stream</th><th>Status</th><th>Reason</th><th>Fetched</th><th>Delivered</th><th>Parked</th><th>Revised after delivery</th><th>Fetched at</th></tr></thead>
<tbody>${streams.map((s) => {
    const e = day.streams[s];
    if (!e) return html`<tr data-stream="${s}"><td>${s}</td><td colspan="7">nothing to fetch this day</td></tr>`;
    return html`<tr data-stream="${s}"><td>${s}</td><td class="st st-${e.status}">${STATUS_LABELS[e.status]}</td><td>${e.reason ?? STATUS_MEANINGS[e.status]}</td><td>${e.recordsFetched}</td><td>${e.recordsDelivered}</td><td>${e.recordsParked}</td><td>${revisionLabel(s, e)}</td><td>${when(e.fetchedAt)}</td></tr>`;
  })}</tbody></table></div>`;
}

/** What a revision after delivery changes, per additive stream: what its correction's difference counts. */
const CORRECTION_UNITS: Record<string, string> = { steps: 'steps', active_zone_minutes: 'active zone minutes' };

const signed = (n: number) => `${n > 0 ? '+' : n < 0 ? '−' : '±'}${Math.abs(Math.round(n * 100) / 100)}`;

/**
 * A stream-day's revisions after delivery, in words: additive streams got corrections (events
 * corrected and their net difference), the others were counted only (docs/pipeline.md).
 */
function revisionLabel(stream: string, e: StreamDay): string {
  const unit = CORRECTION_UNITS[stream];
  if (unit && e.correctedEvents > 0) return `${e.correctedEvents} corrected (${signed(e.correctionDelta)} ${unit})`;
  if (e.revisedEvents > 0) return unit ? `${e.revisedEvents} revised` : `${e.revisedEvents} revised, not sent again`;
  return '';
}

/** Every stream-day of the range revised after delivery, newest first: which days changed in mindLAMP's eyes, and by how much. */
function revisionsTable(days: readonly DayRollup[], streams: readonly string[]): SafeHtml {
  const rows = days
    .flatMap((d) => streams.flatMap((s) => {
      const e = d.streams[s];
      return e && (e.revisedEvents > 0 || e.correctedEvents > 0) ? [{ day: d.day, stream: s, e }] : [];
    }))
    .reverse();
  if (rows.length === 0) return html`<p id="no-revisions">No data mindLAMP had received was revised by the provider in these days.</p>`;
  return html`<p class="note">The provider changed these days after mindLAMP received them. Steps and active zone minutes get a correction
event carrying the difference (<code>data.correction: true</code>), so sums in mindLAMP match the provider's; other streams keep the value first
sent (mindLAMP cannot update), and the change is only counted here.</p>
<div class="scroll"><table id="revisions"><thead><tr><th>Day</th><th>Stream</th><th>Events revised</th><th>Events corrected</th><th>Difference sent</th></tr></thead>
<tbody>${rows.map(
    ({ day, stream, e }) =>
      html`<tr data-day="${day}" data-stream="${stream}"><td>${day}</td><td>${stream}</td><td>${e.revisedEvents}</td><td>${CORRECTION_UNITS[stream] ? String(e.correctedEvents) : 'not sent again'}</td><td>${CORRECTION_UNITS[stream] ? `${signed(e.correctionDelta)} ${CORRECTION_UNITS[stream]}` : ''}</td></tr>`,
  )}</tbody></table></div>`;
}

/** The notice after a retry: a malformed batch id is only ignored (it changes nothing and shows nothing). */
const retried = z.string().regex(/^[1-9][0-9]{0,17}$/).optional().catch(undefined);
/** The form's "all" sends an empty value. */
const allOr = <T extends z.ZodType>(schema: T) => z.union([z.literal('').transform(() => undefined), schema]).optional();
const overviewQuery = z.object({
  retried,
  acknowledged: retried,
  study: allOr(z.string().regex(/^[A-Za-z0-9._-]{1,128}$/, 'a mindLAMP study id')),
  status: allOr(z.enum([...STATUSES, 'not_connected'])),
  provider: allOr(z.enum(PROVIDERS)),
  sort: z.enum(['compliance', 'participant']).default('compliance'),
});
type OverviewQuery = z.output<typeof overviewQuery>;
const participantPageQuery = z.object({ retried, day: isoDay.optional() });
const participantParams = z.object({ id: z.string().regex(PARTICIPANT_ID) });

const backToDashboard = html`<p><a href="/admin">Back to the dashboard</a></p>`;

/** How many participants the overview lists; more are reachable through the JSON API. */
const OVERVIEW_LIMIT = 1000;
/** Below this battery percent the overview marks the level. */
const LOW_BATTERY_MARK = 20;

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
          'This page is for the study team: your browser did not send a valid sign-in.',
          'Reload the page and sign in with your coordinator name and token, or with any user name and the ADMIN_TOKEN of this deployment as the password.',
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

    const overview = async (request: FastifyRequest<{ Querystring: OverviewQuery }>, reply: FastifyReply) => {
      const query = request.query;
      const scope = studyScopeOf(request);
      // A scoped coordinator's study filter narrows their own studies, never widens them.
      const studyIds = query.study ? (scope && !scope.includes(query.study) ? [] : [query.study]) : scope;
      const [model, allStudies, parked, alerts] = await Promise.all([
        loadOverview(
          db,
          {
            ...(studyIds ? { studyIds } : {}),
            ...(query.status ? { status: query.status } : {}),
            ...(query.provider ? { provider: query.provider } : {}),
            sort: query.sort,
            limit: OVERVIEW_LIMIT,
          },
          Date.now(),
        ),
        listStudyIds(db),
        listDeliveryBatches(db, { status: 'parked', limit: 200, ...(scope ? { studyIds: scope } : {}) }),
        listOpenAlerts(db, { limit: 500, ...(scope ? { studyIds: scope } : {}) }),
      ]);
      const studies = scope ? allStudies.filter((s) => scope.includes(s)) : allStudies;
      return sendDashboardPage(
        reply,
        200,
        'fitlamp — study overview',
        html`${nav()}
<h1>Study overview</h1>
${retriedNotice(query.retried)}
${query.acknowledged ? html`<p class="notice" id="acknowledged">Alert ${query.acknowledged} acknowledged.</p>` : html``}
<h2 id="alerts-heading">Open alerts (${alerts.length})</h2>
${alertsTable(alerts)}
${filterForm(query, studies)}
${heatmap(model)}
<p id="exports">Download as CSV: <a href="/admin/export/compliance.csv?from=${model.days[0]}&amp;to=${model.days.at(-1)}" id="export-compliance">compliance, these ${OVERVIEW_DAYS} days</a> · <a href="/admin/export/participants.csv" id="export-participants">participants</a></p>
${model.truncated ? html`<p class="note">Showing ${OVERVIEW_LIMIT} participants; narrow the filters, or page through all of them with <code>GET /admin/participants?offset=…</code>.</p>` : html``}
<h2>Parked deliveries (${parked.total})</h2>
${parkedTable(parked.batches, '/admin', true)}
${parked.total > parked.batches.length ? html`<p class="note">Showing the newest ${parked.batches.length}; list all with <code>GET /admin/deliveries?status=parked</code>.</p>` : html``}`,
      );
    };
    dash.get('/admin', { schema: { querystring: overviewQuery } }, overview);
    dash.get('/admin/', { schema: { querystring: overviewQuery } }, overview);

    const notAParticipantId = (_request: FastifyRequest, reply: FastifyReply) =>
      sendDashboardPage(
        reply,
        400,
        'Not a participant id',
        html`${problemPage('That is not a participant id', 'Participant ids are mindLAMP ids: letters, digits, ".", "_" or "-".', 'Pick the participant from the dashboard list.')}${backToDashboard}`,
      );
    dash.get(
      '/admin/participants/:id',
      { schema: { params: participantParams, querystring: participantPageQuery }, config: { answerInvalidInput: notAParticipantId } },
      async (request, reply) => {
        const participantId = request.params.id;
        if (!(await participantExists(db, participantId, studyScopeOf(request)))) {
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
        const [ledger, connections, parked, totals] = await Promise.all([
          loadDayLedger(db, participantId, { from, to }),
          findConnectionsOfParticipant(db, participantId),
          listDeliveryBatches(db, { status: 'parked', participantId, limit: 200 }),
          findDayTotals(db, { participantIds: [participantId], from, to }),
        ]);
        const zone = history[history.length - 1]!.zone;
        const self = participantLink(participantId);
        const selected = request.query.day;
        const selectedDay = selected ? ledger.days.find((d) => d.day === selected) : undefined;
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
      : html`<div class="scroll"><table id="connections"><thead><tr><th>Provider</th><th>Status</th><th>Connected at</th><th>Last sync</th><th>Device last synced</th><th>Battery</th></tr></thead>
  <tbody>${connections.map(
          (c) => html`<tr><td>${c.provider}</td><td>${c.status}${c.status_reason ? html`<br><small>${c.status_reason}</small>` : html``}</td>
  <td>${when(c.connected_at)}</td><td>${when(c.last_sync_at)}</td><td>${when(c.device_last_sync_at)}</td><td>${battery(c.device_battery_level)}</td></tr>`,
        )}</tbody></table></div>
  ${connections.filter((c) => c.provider_user_id).map((c) => html`<p class="warn" id="replace-warning-${c.provider}">Careful: ${replaceWarning(participantId, c.provider)} Links issued before ${when(c.connected_at)} cannot.</p>`)}`
  }
  <h2>Last ${GRID_DAYS} days</h2>
  <p class="note">The participant's local days (${zone}), oldest first. As JSON:
  <code>GET /admin/participants/${participantId}/days?from=${from}&amp;to=${to}</code></p>
  ${ledger.streams.length === 0 ? html`<p id="no-streams">No streams are scheduled for this participant and nothing was fetched in these days.</p>` : html``}
  ${ledgerGrid(participantId, ledger.streams, ledger.days, new Map(totals.map((t) => [t.day, t.wearMinutes ?? 0])), selected)}
  ${
    selected === undefined
      ? html``
      : selectedDay
        ? dayDetail(selectedDay, ledger.streams, totals.find((t) => t.day === selected))
        : html`<p class="notice" id="day-detail">${selected} is outside the last ${GRID_DAYS} days; ask the JSON API for it: <code>GET /admin/participants/${participantId}/days?from=${selected}&amp;to=${selected}</code></p>`
  }
  <h2>Revised after delivery</h2>
  ${revisionsTable(ledger.days, ledger.streams)}
  <h2>Parked deliveries (${parked.total})</h2>
  ${parkedTable(parked.batches, self, false)}`,
        );
      },
    );
  });
}
