// The soak: N participants at steady state for D simulated days, fetched and delivered by the real
// processors in the bench process on a simulated clock (bench/sim-pipeline.ts), reporting how big
// the database is at the end of each simulated day: its size minus the size of the empty migrated
// schema, measured without knowing its tables (bench/storage.ts).
import { storageSnapshot, walBytesBetween, largestTables, relationStats, type RelationStats } from './storage.ts';
import { startSimPipeline } from './sim-pipeline.ts';

export interface SoakOptions {
  participants: number;
  simDays: number;
  pollSeconds: number;
  backfillDays: number;
  refetchDays: number;
  startAt: string;
  ownPostgres: boolean;
  /** Simulated time per step (one scheduler pass, then the queues drained) [21600 s]. */
  stepSeconds?: number;
  log: (line: string) => void;
}

export interface SoakDay {
  /** Simulated days since the end of the backfill (0: right after it). */
  day: number;
  /** Database size minus the empty schema's, bytes. */
  keptBytes: number;
  /** WAL written since the empty schema, bytes. */
  walBytes: number;
  /** Events delivered to mindLAMP since the start (backfill included). */
  events: number;
  realSeconds: number;
  /** The tables over 64 KiB at the end of the day: heap, index and TOAST bytes, live and dead tuples (absent in runs before it was measured). */
  tables?: RelationStats[];
}

export interface SoakResult {
  participants: number;
  simDays: number;
  pollSeconds: number;
  stepSeconds: number;
  backfillDays: number;
  refetchDays: number;
  postgres: 'own cluster' | 'shared cluster';
  emptyDatabaseBytes: number;
  days: SoakDay[];
  /** (kept at day 30 − kept at day 15) ÷ kept at day 15, when the run reached day 30. */
  growthDay15To30?: number;
  /** Growth over the second half of the run, whatever its length: (last − middle) ÷ middle. */
  growthSecondHalf: number;
  /** Kept bytes at the end ÷ participants. */
  bytesPerParticipant: number;
  largest: Array<{ name: string; bytes: number }>;
  syncs: number;
  syncErrors: Record<string, number>;
  realSeconds: number;
}

export async function runSoak(o: SoakOptions): Promise<SoakResult> {
  const realStart = Date.now();
  const stepSeconds = o.stepSeconds ?? 21_600;
  const p = await startSimPipeline({
    participants: o.participants,
    pollSeconds: o.pollSeconds,
    backfillDays: o.backfillDays,
    refetchDays: o.refetchDays,
    startAt: o.startAt,
    seed: 'fitlamp-bench-soak',
    deliver: true,
    ownPostgres: o.ownPostgres,
  });
  try {
    const empty = await storageSnapshot(p.db);
    let delivered = 0;
    const days: SoakDay[] = [];
    const measure = async (day: number) => {
      // The simulator keeps every event it accepted; count them and let them go, so memory stays flat.
      delivered += p.lamp!.store.events.length;
      p.lamp!.reset();
      const s = await storageSnapshot(p.db);
      const entry: SoakDay = {
        day,
        keptBytes: s.databaseBytes - empty.databaseBytes,
        walBytes: await walBytesBetween(p.db, empty.walLsn, s.walLsn),
        events: delivered,
        realSeconds: (Date.now() - realStart) / 1000,
        tables: (await relationStats(p.db)).filter((t) => t.heapBytes + t.indexBytes + t.toastBytes > 64 * 1024),
      };
      days.push(entry);
      o.log(
        `    day ${String(day).padStart(2)}: ${(entry.keptBytes / 2 ** 20).toFixed(1)} MiB kept (${(entry.keptBytes / o.participants / 2 ** 20).toFixed(2)} MiB per participant), ` +
          `${entry.events.toLocaleString('en-US')} events delivered, ${(entry.walBytes / 2 ** 20).toFixed(0)} MiB WAL, ${entry.realSeconds.toFixed(0)} s`,
      );
      const mib = (b: number) => (b / 2 ** 20).toFixed(2);
      for (const t of entry.tables!.slice(0, 6)) {
        o.log(
          `      ${t.name.padEnd(22)} heap ${mib(t.heapBytes)} + index ${mib(t.indexBytes)} + toast ${mib(t.toastBytes)} MiB; ` +
            `tuples ${t.liveTuples} live, ${t.deadTuples} dead (toast ${t.toastDeadTuples} dead); ` +
            `vacuumed ${t.autovacuums}×${t.vacuumedSecondsAgo === null ? '' : `, last ${t.vacuumedSecondsAgo.toFixed(0)} s ago`}`,
        );
      }
    };
    await p.tick();
    await p.drain();
    await measure(0);
    const stepsPerDay = Math.max(1, Math.round(86_400 / stepSeconds));
    for (let day = 1; day <= o.simDays; day++) {
      for (let s = 0; s < stepsPerDay; s++) await p.step(stepSeconds * 1000);
      await measure(day);
    }
    const last = days.at(-1)!;
    const middle = days[Math.floor(days.length / 2)]!;
    const at = (d: number) => days.find((x) => x.day === d);
    const d15 = at(15);
    const d30 = at(30);
    return {
      participants: o.participants,
      simDays: o.simDays,
      pollSeconds: o.pollSeconds,
      stepSeconds,
      backfillDays: o.backfillDays,
      refetchDays: o.refetchDays,
      postgres: o.ownPostgres ? 'own cluster' : 'shared cluster',
      emptyDatabaseBytes: empty.databaseBytes,
      days,
      ...(d15 && d30 ? { growthDay15To30: (d30.keptBytes - d15.keptBytes) / d15.keptBytes } : {}),
      growthSecondHalf: middle.keptBytes ? (last.keptBytes - middle.keptBytes) / middle.keptBytes : 0,
      bytesPerParticipant: last.keptBytes / o.participants,
      largest: await largestTables(p.db),
      syncs: p.polls.length,
      syncErrors: p.syncErrors,
      realSeconds: (Date.now() - realStart) / 1000,
    };
  } finally {
    await p.close();
  }
}
