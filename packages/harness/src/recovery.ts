/**
 * Recovery of failed stream-days as issue 16 item 4 defines it: from the end of the provider
 * outage that failed the day to the day's successful re-fetch. The outage end is the last faulty
 * response the provider simulator served to that participant before the re-fetch; when that
 * response was a 429 (the participant's rate budget spent), the day is measured from the budget's
 * reset instead (Retry-After, or the top of the provider's hour for a bare 429) and reported apart.
 */

/** A faulty response served to one user (the simulator's log; times in wall-clock ms). */
export interface ServedFaultEntry {
  at: number;
  /** The simulated clock's instant at `at` (for a bare 429: its reset is the next top of the hour). */
  simAt: number;
  userId: string | undefined;
  status: number;
  retryAfterSeconds?: number;
}

/** A stream-day that was `failed` and then fetched again (`fetchedAgainAt`: day_ledger.fetched_at once it left `failed`). */
export interface RefetchedDay {
  /** "participant stream day". */
  key: string;
  userId: string;
  fetchedAgainAt: number;
}

export interface DayRecovery {
  key: string;
  /** The outage's end (or the budget's reset), wall ms. */
  from: number;
  fetchedAgainAt: number;
  ms: number;
  /** What the day is allowed (ms from `from`). */
  boundMs: number;
}

export interface RecoveryBounds {
  /** The poll interval: a failed day is due again one interval after the failed sync (services/fetcher finishSync). */
  pollMs: number;
  /** How often the scheduler enqueues due participants. */
  tickMs: number;
  /** The sync's own duration: the failing sync's requests after the fault, the re-fetching one's before the day is stored. */
  slackMs: number;
}

export interface RecoveryFigures {
  /** Days measured from the outage's end. */
  outage: DayRecovery[];
  /** Days whose last faulty response was a 429: measured from the budget's reset. */
  budget: DayRecovery[];
  /** Failed days with no faulty response logged for their participant before the re-fetch (not a provider outage). */
  noFault: string[];
}

/** The provider's rate-limit reset after a 429: its Retry-After, else the next top of the provider's hour. */
export function budgetResetAt(fault: ServedFaultEntry): number {
  if (fault.retryAfterSeconds !== undefined) return fault.at + fault.retryAfterSeconds * 1000;
  return fault.at + (Math.floor(fault.simAt / 3_600_000) + 1) * 3_600_000 - fault.simAt;
}

/**
 * The fetcher waits for a reset plus jitter of at most min(30 s, wait/10 + 1 s)
 * (services/fetcher sync.worker delayUntilReset), so a budget day's bound adds that.
 */
export function resetJitterMaxMs(fault: ServedFaultEntry): number {
  return Math.min(30_000, (budgetResetAt(fault) - fault.at) / 10 + 1_000);
}

export function computeRecoveries(faults: readonly ServedFaultEntry[], days: readonly RefetchedDay[], bounds: RecoveryBounds): RecoveryFigures {
  const figures: RecoveryFigures = { outage: [], budget: [], noFault: [] };
  const base = bounds.pollMs + bounds.tickMs + bounds.slackMs;
  for (const day of days) {
    let last: ServedFaultEntry | undefined;
    for (const f of faults) if (f.userId === day.userId && f.at <= day.fetchedAgainAt && (!last || f.at >= last.at)) last = f;
    if (!last) {
      figures.noFault.push(day.key);
      continue;
    }
    if (last.status === 429) {
      const from = budgetResetAt(last);
      figures.budget.push({ key: day.key, from, fetchedAgainAt: day.fetchedAgainAt, ms: day.fetchedAgainAt - from, boundMs: resetJitterMaxMs(last) + bounds.tickMs + bounds.slackMs });
    } else {
      figures.outage.push({ key: day.key, from: last.at, fetchedAgainAt: day.fetchedAgainAt, ms: day.fetchedAgainAt - last.at, boundMs: base });
    }
  }
  return figures;
}

/** The slowest of a list (null when empty). */
export function slowest(list: readonly DayRecovery[]): DayRecovery | null {
  return list.reduce<DayRecovery | null>((a, b) => (a && a.ms >= b.ms ? a : b), null);
}
