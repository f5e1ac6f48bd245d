import type { Kysely } from 'kysely';
import {
  countLedgerStatuses,
  findCurrentTimeZones,
  findDayTotals,
  listParticipantStatuses,
  type ConnectionStatus,
  type Database,
  type DayStatus,
  type ParticipantStatusRow,
  type ProviderName,
} from '@fitlamp/db';
import { addDays, daysBetween, localDayAt } from '@fitlamp/provider';

/**
 * The study overview's model: one row per participant, its connection's health, and per local day
 * of the last {@link OVERVIEW_DAYS} its wear time and what the day ledger says of it. Rendering is
 * dashboard.ts's; this file decides what a cell means.
 */

/** Days the overview shows, newest last. */
export const OVERVIEW_DAYS = 28;
/** The compliance window: wear over this many most recent days orders the overview. */
export const COMPLIANCE_DAYS = 7;

/**
 * What a cell shows, worst first: a stream failed; nothing arrived yet (not synced, or not
 * fetched); the day is complete without heart rate (not worn); wear time; a day after the
 * participant's today (their zone is behind the newest one shown).
 */
export type CellKind = 'failed' | 'not_synced' | 'no_data' | 'worn' | 'future';

export interface OverviewCell {
  day: string;
  kind: CellKind;
  wearMinutes: number;
  /** Some stream of the day is still arriving (partial). */
  partial: boolean;
}

export interface OverviewRow {
  participantId: string;
  studyId: string | null;
  provider: ProviderName | null;
  status: ConnectionStatus | null;
  statusReason: string | null;
  deviceLastSyncAt: Date | null;
  batteryLevel: number | null;
  /** Whole days since the device last synced; null if it never did. */
  daysSinceSync: number | null;
  /** Wear minutes over the participant's last {@link COMPLIANCE_DAYS} local days. */
  recentWearMinutes: number;
  cells: OverviewCell[];
}

export interface Overview {
  /** The days shown, oldest first (the newest participant-local today is last). */
  days: string[];
  rows: OverviewRow[];
  /** More participants matched than are shown. */
  truncated: boolean;
}

export interface OverviewFilter {
  studyIds?: readonly string[];
  status?: ConnectionStatus | 'not_connected';
  provider?: ProviderName;
  sort: 'compliance' | 'participant';
  limit: number;
}

/** Which of a participant's connections the overview speaks for: the one in use, else the most recent. */
const CONNECTION_RANK: Record<ConnectionStatus, number> = { connected: 0, reconnect_needed: 1, needs_reconsent: 2, revoked: 3, disconnected: 4 };

function pickConnections(rows: readonly ParticipantStatusRow[]): ParticipantStatusRow[] {
  const byParticipant = new Map<string, ParticipantStatusRow>();
  for (const row of rows) {
    const held = byParticipant.get(row.participantId);
    const rank = (r: ParticipantStatusRow) => (r.status === null ? 9 : CONNECTION_RANK[r.status]);
    if (!held || rank(row) < rank(held) || (rank(row) === rank(held) && (row.connectedAt?.getTime() ?? 0) > (held.connectedAt?.getTime() ?? 0))) {
      byParticipant.set(row.participantId, row);
    }
  }
  return [...byParticipant.values()];
}

/** What one participant-day's cell shows, from its ledger counts and wear minutes. */
export function cellKind(input: { counts: Record<DayStatus, number> | undefined; wearMinutes: number; future: boolean }): CellKind {
  if (input.future) return 'future';
  const counts = input.counts;
  if (counts && counts.failed > 0) return 'failed';
  if (input.wearMinutes > 0) return 'worn';
  if (!counts || counts.not_synced > 0) return 'not_synced';
  // Every stream of the day was fetched (complete or still arriving) and no heart rate came.
  if (counts.partial > 0) return 'not_synced';
  return 'no_data';
}

/** Values of per participant-day rows, by participant, then by day. */
function byParticipantDay<R extends { participantId: string; day: string }, V>(rows: readonly R[], value: (row: R) => V): Map<string, Map<string, V>> {
  const out = new Map<string, Map<string, V>>();
  for (const row of rows) {
    let days = out.get(row.participantId);
    if (!days) out.set(row.participantId, (days = new Map()));
    days.set(row.day, value(row));
  }
  return out;
}

/** Loads the overview for the participants the filter matches, at `now`. */
export async function loadOverview(db: Kysely<Database>, filter: OverviewFilter, now: number): Promise<Overview> {
  const statuses = await listParticipantStatuses(db, {
    ...(filter.status && filter.status !== 'not_connected' ? { status: filter.status } : {}),
    ...(filter.provider ? { provider: filter.provider } : {}),
    ...(filter.studyIds ? { studyIds: filter.studyIds } : {}),
  });
  let participants = pickConnections(statuses);
  if (filter.status === 'not_connected') participants = participants.filter((p) => p.status === null);
  const ids = participants.map((p) => p.participantId);

  const zones = await findCurrentTimeZones(db, ids);
  const todayOf = new Map(ids.map((id) => [id, localDayAt([{ zone: zones.get(id) ?? 'UTC', validFrom: 0 }], now)]));
  const last = [...todayOf.values(), localDayAt([{ zone: 'UTC', validFrom: 0 }], now)].reduce((a, b) => (b > a ? b : a));
  const first = addDays(last, -(OVERVIEW_DAYS - 1));
  const days = daysBetween(first, last);

  const [totals, ledger] = await Promise.all([
    findDayTotals(db, { participantIds: ids, from: first, to: last }),
    countLedgerStatuses(db, { participantIds: ids, from: first, to: last }),
  ]);
  // By participant, then day: 28 lookups per participant without a key string built for each.
  const wearOf = byParticipantDay(totals, (t) => t.wearMinutes);
  const countsOf = byParticipantDay(ledger, (l) => l.counts);

  const rows = participants.map((p): OverviewRow => {
    const today = todayOf.get(p.participantId)!;
    const recentFrom = addDays(today, -(COMPLIANCE_DAYS - 1));
    let recentWearMinutes = 0;
    const wearByDay = wearOf.get(p.participantId);
    const countsByDay = countsOf.get(p.participantId);
    const cells = days.map((day): OverviewCell => {
      const wearMinutes = wearByDay?.get(day) ?? 0;
      const counts = countsByDay?.get(day);
      if (day >= recentFrom && day <= today) recentWearMinutes += wearMinutes;
      return { day, wearMinutes, partial: (counts?.partial ?? 0) > 0, kind: cellKind({ counts, wearMinutes, future: day > today }) };
    });
    return {
      participantId: p.participantId,
      studyId: p.studyId,
      provider: p.provider,
      status: p.status,
      statusReason: p.statusReason,
      deviceLastSyncAt: p.deviceLastSyncAt,
      batteryLevel: p.batteryLevel,
      daysSinceSync: p.deviceLastSyncAt ? Math.max(0, Math.floor((now - p.deviceLastSyncAt.getTime()) / 86_400_000)) : null,
      recentWearMinutes,
      cells,
    };
  });
  rows.sort((a, b) =>
    filter.sort === 'compliance' && a.recentWearMinutes !== b.recentWearMinutes
      ? a.recentWearMinutes - b.recentWearMinutes
      : a.participantId < b.participantId
        ? -1
        : a.participantId > b.participantId
          ? 1
          : 0,
  );
  return { days, rows: rows.slice(0, filter.limit), truncated: rows.length > filter.limit };
}
