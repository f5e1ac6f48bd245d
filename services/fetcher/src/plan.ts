import type { DayStatus } from '@fitlamp/db';
import {
  addDays,
  localDayAt,
  syncWindow,
  type DayRequest,
  type Provider,
  type StreamName,
  type ZoneHistory,
} from '@fitlamp/provider';

/** What the ledger knows of one participant × stream × day. */
export interface LedgerEntry {
  status: DayStatus;
  /**
   * The device's last sync time when the day was last fetched; null when never fetched, or when
   * a provider notification marked the day changed (webhooks clear it, durably, in Postgres).
   */
  syncedThrough: number | null;
  /** Records the last fetch stored for the day (unknown when absent). */
  records?: number;
}

/**
 * One value per night, computed once the night's sleep is processed (fitbit-web-api §3.4: HRV,
 * breathing rate and skin temperature ~15 min after the sync, SpO2 within an hour). A day that
 * holds its value is final: later syncs add minutes to today, not a new nightly value, so
 * re-fetching it after every sync only spends the rate budget (bench: `pnpm bench --sections
 * efficiency`). A notification naming the day still fetches it again.
 */
const NIGHTLY: ReadonlySet<StreamName> = new Set(['spo2', 'hrv', 'breathing_rate', 'skin_temperature']);

export type Tier = 'fresh' | 'catchup' | 'backfill';
const TIER_ORDER: Record<Tier, number> = { fresh: 0, catchup: 1, backfill: 2 };

export interface PlanInput {
  now: number;
  zones: ZoneHistory;
  /** Newest `lastSyncTime` of the participant's devices; null if never synced. */
  lastDeviceSync: number | null;
  /** Complete local days before today in the window (see `syncWindow`). */
  backfillDays: number;
  refetchDays: number;
  /** Data streams to consider (not `device`). */
  streams: readonly StreamName[];
  /** `stream -> day -> entry`. */
  ledger: ReadonlyMap<string, ReadonlyMap<string, LedgerEntry>>;
  /** A notification named these days as changed: fetch them even if settled. */
  changedDays?: readonly string[];
  /**
   * The streams the notification named (the days changed for these alone); absent: every
   * stream. A notification of today's steps says nothing of tonight's SpO2: forcing every
   * stream's named days spent a request per nightly stream on each webhook sync (bench:
   * `pnpm bench --sections efficiency --steady-mode webhooks`).
   */
  changedStreams?: readonly StreamName[];
}

export interface PlannedDay {
  stream: StreamName;
  day: string;
  tier: Tier;
}

export interface DayPlan {
  today: string;
  due: PlannedDay[];
  /** Days in the window the device has not synced yet: nothing to fetch, the ledger says why. */
  notSynced: Array<{ stream: StreamName; day: string }>;
}

/**
 * Decides which days each stream needs, from the ledger and the device's last sync (DESIGN.md:
 * spend requests only on days that changed). A day is due when it was never fetched, failed,
 * or was fetched before the device's latest sync while still incomplete; a complete day inside
 * the re-fetch window is fetched again after a newer sync to catch revisions; older complete
 * days, and nightly values already fetched, are left alone. Tiers order the work: today and yesterday, then catch-up, then backfill.
 */
export function planDays(input: PlanInput): DayPlan {
  const { first, today } = syncWindow(input.zones, input.now, input.backfillDays);
  const yesterday = addDays(today, -1);
  const refetchFrom = addDays(today, -(input.refetchDays - 1));
  const lastSyncDay = input.lastDeviceSync === null ? null : localDayAt(input.zones, input.lastDeviceSync);
  const changed = new Set(input.changedDays ?? []);
  const due: PlannedDay[] = [];
  const notSynced: DayPlan['notSynced'] = [];

  const sleepEntries = input.ledger.get('sleep');
  for (const stream of input.streams) {
    const entries = input.ledger.get(stream);
    for (let day = today; day >= first; day = addDays(day, -1)) {
      const entry = entries?.get(day);
      if (lastSyncDay === null || day > lastSyncDay) {
        if (!entry) notSynced.push({ stream, day });
        continue;
      }
      const nightlyFinal = NIGHTLY.has(stream) && (entry?.records ?? 0) > 0 && entry?.status !== 'failed';
      // A nightly value exists only once the night's sleep is there: while the sleep stream
      // holds no sleep for the day, or has not been fetched again since the value was asked
      // for, a newer device sync cannot have brought the value.
      const sleep = sleepEntries?.get(day);
      const waitsForSleep =
        NIGHTLY.has(stream) &&
        input.streams.includes('sleep') &&
        entry !== undefined &&
        (entry.records ?? 0) === 0 &&
        entry.status !== 'failed' &&
        entry.syncedThrough !== null &&
        !((sleep?.records ?? 0) > 0 && (sleep?.syncedThrough ?? Number.POSITIVE_INFINITY) > entry.syncedThrough);
      const newerSync = !nightlyFinal && !waitsForSleep && (entry?.syncedThrough ?? -1) < input.lastDeviceSync!;
      const isDue =
        !entry ||
        entry.status === 'failed' ||
        (newerSync && (entry.status === 'partial' || entry.status === 'not_synced')) ||
        (newerSync && day >= refetchFrom && (entry.status === 'settled' || entry.status === 'empty')) ||
        // A fetched day whose watermark was cleared: a provider notification said it changed.
        (entry.syncedThrough === null && entry.status !== 'not_synced') ||
        (changed.has(day) && (input.changedStreams === undefined || input.changedStreams.includes(stream)));
      if (!isDue) continue;
      const tier: Tier = day >= yesterday ? 'fresh' : entry || day >= refetchFrom ? 'catchup' : 'backfill';
      due.push({ stream, day, tier });
    }
  }
  return { today, due, notSynced };
}

export interface PlannedRequest extends DayRequest {
  tier: Tier;
}

/**
 * Turns due days into provider requests, grouped per stream and tier so that a range request
 * never mixes fresh days with backfill. Fresh first, then catch-up, then backfill newest first.
 */
export function planRequests(
  provider: Provider,
  due: readonly PlannedDay[],
  intraday: boolean,
): PlannedRequest[] {
  const groups = new Map<string, { stream: StreamName; tier: Tier; days: string[] }>();
  for (const d of due) {
    const key = `${d.tier}|${d.stream}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { stream: d.stream, tier: d.tier, days: [] }));
    g.days.push(d.day);
  }
  const out: PlannedRequest[] = [];
  const streams = [...new Set([...groups.values()].map((g) => g.stream))];
  for (const stream of streams) {
    const tiered = [...groups.values()]
      .filter((g) => g.stream === stream)
      .flatMap((g) => provider.planRequests(stream, [...g.days].sort(), { intraday }).map((r) => ({ ...r, tier: g.tier })));
    // A range endpoint can cover every tier's days in one request: then one request in the
    // most urgent tier beats one per tier. Per-day endpoints cost the same either way.
    const allDays = [...new Set(tiered.flatMap((r) => r.days))].sort();
    const merged = provider.planRequests(stream, allDays, { intraday });
    const cost = (rs: readonly DayRequest[]) => rs.reduce((n, r) => n + r.cost, 0);
    if (cost(merged) < cost(tiered)) {
      const urgent = tiered.reduce<Tier>((best, r) => (TIER_ORDER[r.tier] < TIER_ORDER[best] ? r.tier : best), 'backfill');
      out.push(...merged.map((r) => ({ ...r, tier: urgent })));
    } else {
      out.push(...tiered);
    }
  }
  const newest = (r: PlannedRequest) => r.days[r.days.length - 1] ?? '';
  return out.sort((a, b) => TIER_ORDER[a.tier] - TIER_ORDER[b.tier] || (newest(a) < newest(b) ? 1 : newest(a) > newest(b) ? -1 : 0));
}
