import { Readable } from 'node:stream';
import { stringify } from 'csv-stringify';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { findDayTotals, findLedgerStatuses, listParticipantIds, listParticipantStatuses } from '@fitlamp/db';
import { daysBetween, STREAMS } from '@fitlamp/provider';
import type { GatewayDeps } from './app.ts';
import { isoDay } from './admin-days.ts';
import { studyScopeOf } from './admin-auth.ts';

/** Participants read per round trip: memory stays bounded by one page whatever the study's size. */
const PAGE = 200;
/** The longest range one compliance export covers, in days. */
const MAX_EXPORT_DAYS = 366;
/** The streams with days of their own (the `device` snapshot has none). */
const DAY_STREAMS = STREAMS.filter((s) => s !== 'device');

const exportQuery = z
  .strictObject({ from: isoDay, to: isoDay })
  .superRefine((q, ctx) => {
    if (q.from > q.to) ctx.addIssue({ code: 'custom', path: ['to'], message: `must not be before from (${q.from})` });
    else if (daysBetween(q.from, q.to).length > MAX_EXPORT_DAYS) {
      ctx.addIssue({ code: 'custom', path: ['to'], message: `ask for at most ${MAX_EXPORT_DAYS} days at a time` });
    }
  });

/** Pages of participant ids in the caller's scope, in id order. */
async function* participantPages(deps: Pick<GatewayDeps, 'db'>, studyIds: readonly string[] | undefined) {
  let afterId: string | undefined;
  for (;;) {
    const page = await listParticipantIds(deps.db, { limit: PAGE, ...(afterId !== undefined ? { afterId } : {}), ...(studyIds ? { studyIds } : {}) });
    if (page.length === 0) return;
    yield page;
    afterId = page[page.length - 1]!.id;
    if (page.length < PAGE) return;
  }
}

/** Sends rows as a CSV download, produced while it is sent (csv-stringify quotes commas, quotes and line breaks). */
function sendCsv(reply: FastifyReply, filename: string, columns: string[], rows: AsyncIterable<unknown[]>): FastifyReply {
  const csv = stringify({ header: true, columns });
  const source = Readable.from(rows);
  source.on('error', (error) => csv.destroy(error));
  source.pipe(csv);
  return reply
    .header('content-type', 'text/csv; charset=utf-8')
    .header('content-disposition', `attachment; filename="${filename}"`)
    .header('cache-control', 'no-store')
    .send(csv);
}

/**
 * `GET /admin/export/compliance.csv?from=&to=` (one row per participant-day: wear minutes, steps,
 * sleep minutes, each stream's ledger status) and `GET /admin/export/participants.csv`, streamed,
 * limited to the caller's studies. Register behind the admin guard.
 */
export function registerAdminExportRoutes(scope: FastifyInstance, deps: Pick<GatewayDeps, 'db'>): void {
  const app = scope.withTypeProvider<ZodTypeProvider>();
  const { db } = deps;

  app.get('/admin/export/compliance.csv', { schema: { querystring: exportQuery } }, async (request, reply) => {
    const { from, to } = request.query;
    const studyIds = studyScopeOf(request);
    const days = daysBetween(from, to);
    async function* rows() {
      for await (const page of participantPages(deps, studyIds)) {
        const participantIds = page.map((p) => p.id);
        const [totals, statuses] = await Promise.all([
          findDayTotals(db, { participantIds, from, to }),
          findLedgerStatuses(db, { participantIds, from, to }),
        ]);
        const totalOf = new Map(totals.map((t) => [`${t.participantId}/${t.day}`, t]));
        const statusOf = new Map(statuses.map((s) => [`${s.participantId}/${s.day}`, s.statuses]));
        for (const participant of page) {
          for (const day of days) {
            const t = totalOf.get(`${participant.id}/${day}`);
            const status = statusOf.get(`${participant.id}/${day}`);
            yield [
              participant.id,
              participant.studyId ?? '',
              day,
              t?.wearMinutes ?? 0,
              t?.steps ?? 0,
              t?.sleepMinutes ?? 0,
              ...DAY_STREAMS.map((s) => status?.[s] ?? ''),
            ];
          }
        }
      }
    }
    return sendCsv(
      reply,
      `compliance-${from}-${to}.csv`,
      ['participant_id', 'study_id', 'day', 'wear_minutes', 'steps', 'sleep_minutes', ...DAY_STREAMS.map((s) => `${s}_status`)],
      rows(),
    );
  });

  app.get('/admin/export/participants.csv', async (request, reply) => {
    const studyIds = studyScopeOf(request);
    async function* rows() {
      for await (const page of participantPages(deps, studyIds)) {
        const statuses = await listParticipantStatuses(db, { participantIds: page.map((p) => p.id) });
        for (const r of statuses) {
          yield [
            r.participantId,
            r.studyId ?? '',
            r.provider ?? '',
            r.status ?? 'not_connected',
            r.statusReason ?? '',
            r.connectedAt?.toISOString() ?? '',
            r.lastSyncAt?.toISOString() ?? '',
            r.deviceLastSyncAt?.toISOString() ?? '',
            r.batteryLevel ?? '',
            r.createdAt.toISOString(),
          ];
        }
      }
    }
    return sendCsv(
      reply,
      'participants.csv',
      ['participant_id', 'study_id', 'provider', 'status', 'status_reason', 'connected_at', 'last_sync_at', 'device_last_sync_at', 'battery_percent', 'enrolled_at'],
      rows(),
    );
  });
}
