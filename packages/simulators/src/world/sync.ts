import type { WorldUser } from './users.ts';
import { utcOfLocal, zoneAt } from './zones.ts';

/**
 * Device syncs. Data exists for an API only up to the device's last sync, and each sync
 * recomputes recent days (fitbit-web-api §7.3). Automatic syncs fall on a per-user grid
 * (`autoSyncMinutes`, phase from the seed); manual syncs are the instants the control API added.
 */
export interface SyncLog {
  manual: number[];
}

/** How long after a day ends later syncs still revise it. */
export const REVISION_WINDOW_MS = 48 * 3_600_000;

function firstDataInstant(user: WorldUser): number {
  return utcOfLocal(zoneAt(user.zoneHistory, -Infinity), user.since);
}

function gridStep(user: WorldUser): number {
  return user.autoSyncMinutes * 60_000;
}

/** The user's last sync at or before `now`, or null if the device never synced. */
export function lastSyncAt(user: WorldUser, log: SyncLog, now: number): number | null {
  let last: number | null = null;
  const step = gridStep(user);
  if (step > 0) {
    const t = Math.floor((now - user.autoSyncPhaseMs) / step) * step + user.autoSyncPhaseMs;
    if (t >= firstDataInstant(user)) last = t;
  }
  for (const m of log.manual) if (m <= now && (last === null || m > last)) last = m;
  return last;
}

/** The first sync at or after `t` that has happened by `now`, or null. */
export function firstSyncAtOrAfter(user: WorldUser, log: SyncLog, t: number, now: number): number | null {
  let first: number | null = null;
  const step = gridStep(user);
  if (step > 0) {
    const g = Math.ceil((Math.max(t, firstDataInstant(user)) - user.autoSyncPhaseMs) / step) * step + user.autoSyncPhaseMs;
    if (g <= now) first = g;
  }
  for (const m of log.manual) if (m >= t && m <= now && (first === null || m < first)) first = m;
  return first;
}

/** How many syncs happened in [from, to] (to capped at `now`). */
export function countSyncs(user: WorldUser, log: SyncLog, from: number, to: number, now: number): number {
  const end = Math.min(to, now);
  if (end < from) return 0;
  let n = 0;
  const step = gridStep(user);
  if (step > 0) {
    const lo = Math.max(from, firstDataInstant(user));
    const first = Math.ceil((lo - user.autoSyncPhaseMs) / step);
    const last = Math.floor((end - user.autoSyncPhaseMs) / step);
    if (last >= first) n += last - first + 1;
  }
  for (const m of log.manual) if (m >= from && m <= end) n += 1;
  return n;
}

/**
 * The revision generation of a local day: the number of syncs from the day's start until
 * {@link REVISION_WINDOW_MS} after its end. Each sync in that window recomputes the day.
 */
export function revisionGeneration(user: WorldUser, log: SyncLog, day: { start: number; end: number }, now: number): number {
  return countSyncs(user, log, day.start, day.end + REVISION_WINDOW_MS, now);
}
