import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import {
  findConnectionsOfParticipant,
  findLedgerDays,
  findScheduledStreams,
  participantExists,
  type Database,
  type DayStatus,
  type LedgerDay,
  type ProviderName,
} from '@fitlamp/db';
import { daysBetween, isStreamName, STREAMS } from '@fitlamp/provider';
import type { GatewayDeps } from './app.ts';
import { studyScopeOf } from './admin-auth.ts';
import { PARTICIPANT_ID } from './enrollment.ts';

/** The longest range one request may ask for, in days (inclusive). */
const MAX_RANGE_DAYS = 366;

/** What the coordinator sees for a day no sync has written yet. */
const NOT_FETCHED_REASON = 'not fetched yet';

/**
 * How bad each status is, for a day's rollup (the worst stream wins): a failure needs action,
 * a day the device has not synced has nothing yet, an empty day means the device was not worn,
 * a partial day is still arriving, a settled day is done.
 */
const STATUS_SEVERITY: Record<DayStatus, number> = { settled: 0, partial: 1, empty: 2, not_synced: 3, failed: 4 };
export const DAY_STATUSES = (Object.keys(STATUS_SEVERITY) as DayStatus[]).sort((a, b) => STATUS_SEVERITY[a] - STATUS_SEVERITY[b]);

/** One stream on one day, as the API answers it. */
export interface StreamDay {
  status: DayStatus;
  reason: string | null;
  recordsFetched: number;
  recordsDelivered: number;
  recordsParked: number;
  /** Events whose value changed after they left for mindLAMP (heart rate, sleep: counted, not sent again). */
  revisedEvents: number;
  /** Additive streams (steps, active zone minutes): events mindLAMP received a correction for, and the corrections' net difference. */
  correctedEvents: number;
  correctionDelta: number;
  fetchedAt: string | null;
  provider: ProviderName | null;
}

/** One day: its worst status over the streams, totals, and every stream. */
export interface DayRollup {
  day: string;
  status: DayStatus;
  /** Why, for the streams at the worst status (`stream: reason; …`); null when all settled. */
  reason: string | null;
  recordsFetched: number;
  recordsDelivered: number;
  recordsParked: number;
  /** How many streams are in each status this day. */
  counts: Record<DayStatus, number>;
  streams: Record<string, StreamDay>;
}

export interface DayLedgerView {
  from: string;
  to: string;
  /** The streams reported, in the order a dashboard shows them (columns). */
  streams: string[];
  /** Stream-days in each status over the whole range. */
  summary: Record<DayStatus, number>;
  /** Every day of the range, oldest first. */
  days: DayRollup[];
}

function zeroCounts(): Record<DayStatus, number> {
  return { settled: 0, partial: 0, empty: 0, not_synced: 0, failed: 0 };
}

/** Streams in the catalog's order (steps first), anything unknown after them by name. */
function orderStreams(streams: Iterable<string>): string[] {
  const known = STREAMS as readonly string[];
  return [...new Set(streams)].sort((a, b) => {
    const ia = known.indexOf(a);
    const ib = known.indexOf(b);
    if (ia !== ib) return (ia < 0 ? known.length : ia) - (ib < 0 ? known.length : ib);
    return a.localeCompare(b);
  });
}

/**
 * Streams that are snapshots, not days: `device` is read at every sync and stored on the day of
 * the device's last sync, so a day without a row has nothing to fetch, not something missing.
 */
const SNAPSHOT_STREAMS: ReadonlySet<string> = new Set(['device']);

/**
 * Fills the range: every day × stream gets an entry, `not_synced` / "not fetched yet" where the
 * ledger has no row, and each day rolls up to the worst status of its streams. A snapshot stream
 * without a row that day has no entry and no say in the rollup (so a day whose data streams are
 * all settled reads settled). A day with no stream at all (nothing scheduled, nothing fetched) is
 * `not_synced` too.
 */
function buildDayLedger(input: { from: string; to: string; streams: readonly string[]; rows: readonly LedgerDay[] }): DayLedgerView {
  const byKey = new Map(input.rows.map((r) => [`${r.stream}/${r.day}`, r]));
  const streams = orderStreams(input.streams);
  const summary = zeroCounts();
  const days = daysBetween(input.from, input.to).map((day): DayRollup => {
    const counts = zeroCounts();
    const entries: Record<string, StreamDay> = {};
    const present = streams.filter((stream) => !SNAPSHOT_STREAMS.has(stream) || byKey.has(`${stream}/${day}`));
    let worst: DayStatus = present.length === 0 ? 'not_synced' : 'settled';
    let fetched = 0;
    let delivered = 0;
    let parked = 0;
    for (const stream of present) {
      const row = byKey.get(`${stream}/${day}`);
      const entry: StreamDay = row
        ? {
            status: row.status,
            reason: row.reason,
            recordsFetched: row.recordsFetched,
            recordsDelivered: row.recordsDelivered,
            recordsParked: row.recordsParked,
            revisedEvents: row.revisedEvents,
            correctedEvents: row.correctedEvents,
            correctionDelta: row.correctionDelta,
            fetchedAt: row.fetchedAt?.toISOString() ?? null,
            provider: row.provider,
          }
        : {
            status: 'not_synced',
            reason: NOT_FETCHED_REASON,
            recordsFetched: 0,
            recordsDelivered: 0,
            recordsParked: 0,
            revisedEvents: 0,
            correctedEvents: 0,
            correctionDelta: 0,
            fetchedAt: null,
            provider: null,
          };
      entries[stream] = entry;
      counts[entry.status]++;
      summary[entry.status]++;
      fetched += entry.recordsFetched;
      delivered += entry.recordsDelivered;
      parked += entry.recordsParked;
      if (STATUS_SEVERITY[entry.status] > STATUS_SEVERITY[worst]) worst = entry.status;
    }
    const reasons = [
      ...new Set(
        present
          .filter((s) => entries[s]?.status === worst && entries[s]?.reason)
          .map((s) => `${s}: ${entries[s]!.reason}`),
      ),
    ];
    return {
      day,
      status: worst,
      reason: present.length === 0 ? NOT_FETCHED_REASON : reasons.length > 0 ? reasons.join('; ') : null,
      recordsFetched: fetched,
      recordsDelivered: delivered,
      recordsParked: parked,
      counts,
      streams: entries,
    };
  });
  return { from: input.from, to: input.to, streams, summary, days };
}

/**
 * Loads and fills a participant's ledger: the streams shown are the ones scheduled for it plus
 * any the ledger has rows for in the range (a disconnected participant keeps its history), or
 * exactly `only` when given. `device` has no days of its own unless the ledger says otherwise.
 */
export async function loadDayLedger(
  db: Kysely<Database>,
  participantId: string,
  range: { from: string; to: string; only?: readonly string[] },
): Promise<DayLedgerView> {
  const rows = await findLedgerDays(db, participantId, { from: range.from, to: range.to, ...(range.only ? { streams: range.only } : {}) });
  const streams = range.only
    ? [...range.only]
    : [...(await findScheduledStreams(db, participantId)).filter((s) => s !== 'device'), ...rows.map((r) => r.stream)];
  return buildDayLedger({ from: range.from, to: range.to, streams, rows });
}

/** A real calendar day as YYYY-MM-DD (2026-02-30 is not one). */
export const isoDay = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, 'a day as YYYY-MM-DD')
  .refine((value) => {
    const date = new Date(`${value}T00:00:00Z`);
    return !Number.isNaN(date.getTime()) && date.toISOString().slice(0, 10) === value;
  }, 'not a calendar day');

const daysQuery = z
  .strictObject({
    from: isoDay,
    to: isoDay,
    /** One stream or a comma-separated list. */
    stream: z
      .string()
      .transform((value) => value.split(',').map((s) => s.trim()).filter((s) => s.length > 0))
      .pipe(
        z
          .array(z.string().refine(isStreamName, { error: (issue) => `unknown stream "${String(issue.input)}"; known: ${STREAMS.join(', ')}` }))
          .min(1, 'name at least one stream'),
      )
      .optional(),
  })
  .superRefine((q, ctx) => {
    if (q.from > q.to) {
      ctx.addIssue({ code: 'custom', path: ['to'], message: `must not be before from (${q.from})` });
      return;
    }
    const span = countDays(q.from, q.to);
    if (span > MAX_RANGE_DAYS) {
      ctx.addIssue({ code: 'custom', path: ['to'], message: `the range covers ${span} days; ask for at most ${MAX_RANGE_DAYS} at a time` });
    }
  });

/** How many days `from`…`to` covers, both included (arithmetic: a range may be refused for its length). */
function countDays(from: string, to: string): number {
  return Math.round((Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / 86_400_000) + 1;
}

const participantParams = z.object({ id: z.string().regex(PARTICIPANT_ID, 'a mindLAMP participant id: letters, digits, ".", "_" or "-", up to 128') });

/** The participant's connections, as the coordinator needs them next to its days. */
async function loadConnectionSummaries(db: Kysely<Database>, participantId: string) {
  const connections = await findConnectionsOfParticipant(db, participantId);
  return connections.map((c) => ({
    provider: c.provider,
    status: c.status,
    statusReason: c.status_reason,
    connectedAt: c.connected_at?.toISOString() ?? null,
    disconnectedAt: c.disconnected_at?.toISOString() ?? null,
    lastSyncAt: c.last_sync_at?.toISOString() ?? null,
    deviceLastSyncAt: c.device_last_sync_at?.toISOString() ?? null,
  }));
}

/** `GET /admin/participants/:id/days?from&to[&stream]`: the participant's day ledger (behind the admin guard). */
export function registerAdminDayRoutes(scope: FastifyInstance, deps: Pick<GatewayDeps, 'db'>): void {
  const app = scope.withTypeProvider<ZodTypeProvider>();
  const { db } = deps;
  app.get('/admin/participants/:id/days', { schema: { params: participantParams, querystring: daysQuery } }, async (request, reply) => {
    const participantId = request.params.id;
    if (!(await participantExists(db, participantId, studyScopeOf(request)))) {
      return reply.code(404).send({
        error: 'participant_not_found',
        message: `fitlamp knows no participant "${participantId}"; check the id, or issue an enrollment link first (POST /admin/enrollments)`,
      });
    }
    const { from, to, stream } = request.query;
    const [view, connections] = await Promise.all([
      loadDayLedger(db, participantId, { from, to, ...(stream ? { only: stream } : {}) }),
      loadConnectionSummaries(db, participantId),
    ]);
    return { participantId, connections, ...view };
  });
}
