// Section 1/4/5: a backfill of N participants × D days through the four services as processes,
// against the in-process simulators with provider latency. Measures events per second into
// mindLAMP end to end, each service's peak RSS and CPU time, and (optionally) CPU profiles.
import { Session } from 'node:inspector/promises';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sql } from 'kysely';
import { startStack, type ServiceName, type ServiceResources, type Stack, type StackParticipant } from '@fitlamp/harness';
import { findUser, syncUser } from '@fitlamp/simulators';
import { storageBetween, storageSnapshot, type StorageResult } from './storage.ts';

export interface ThroughputOptions {
  participants: number;
  days: number;
  fetchers: number;
  writers: number;
  latencyMs: number;
  /** Write CPU profiles of the fetchers, lamp-writers and this process (the simulators) here. */
  profileDir?: string;
  logDir: string;
  timeoutMs: number;
  serviceEnv?: Partial<Record<ServiceName, Record<string, string>>>;
  /** Keep the stack running for the raw-limit measurements (the caller stops it). */
  keepStack?: boolean;
  /** Run the services' built JavaScript on node, as production does [true]; false: TypeScript source through tsx. */
  built?: boolean;
  /** Run the stack on a Postgres cluster of its own [false], for a WAL figure nothing else adds to. */
  ownPostgres?: boolean;
  log: (line: string) => void;
}

export interface ThroughputResult {
  participants: number;
  days: number;
  fetchers: number;
  writers: number;
  latencyMs: number;
  /** The services ran their built JavaScript (`dist/main.js` on node); false: source through tsx. */
  built: boolean;
  /** Environment given to the services beyond the stack's own (concurrency settings). */
  serviceEnv?: Partial<Record<ServiceName, Record<string, string>>>;
  /** WAL written during the run and database bytes kept at its end, per event delivered. */
  storage?: StorageResult;
  finished: boolean;
  events: number;
  duplicates: number;
  providerRequests: number;
  /** From the first connect to the last event stored in mindLAMP. */
  seconds: number;
  eventsPerSecond: number;
  /** Between 10% and 90% of the events: the rate once the pipeline is full. */
  steadyEventsPerSecond: number;
  connectSeconds: number;
  /** Enrolments tried again after the gateway answered 503 (its mindLAMP check failed under load). */
  connectRetries?: number;
  /** Seconds from the first connect to the first event in mindLAMP. */
  firstEventSeconds: number;
  /** Per process: peak RSS, CPU time, mean cores over the run and the busiest second's cores. */
  services: Array<ServiceResources & { cpuCores: number; peakCores: number }>;
  /** CPU time of this process (simulators, harness) over the run, in cores. */
  benchProcessCores: number;
  /** CPU of this stack's Postgres backends (all services' connections), mean and busiest second, in cores. */
  postgresCores: number;
  postgresPeakCores: number;
  loadAverage: number[];
  profiles: string[];
  stack?: Stack;
  /** With `keepStack`: the provider requests the backfill made (bearer tokens included: never written out). */
  providerRequestLog?: Array<{ url: string; authorization: string }>;
}

export function participantsFor(count: number): StackParticipant[] {
  const presets = ['new-york', 'traveler', 'sydney', 'kolkata'];
  return Array.from({ length: count }, (_, i) => ({
    id: `U${String(i + 1).padStart(10, '0')}`,
    user: { id: `FB${String(i + 1).padStart(4, '0')}`, preset: presets[i % presets.length]! },
  }));
}

/** Runs `fn` over `items`, at most `limit` at a time. */
export async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

export async function runThroughput(o: ThroughputOptions): Promise<ThroughputResult> {
  const participants = participantsFor(o.participants);
  const profiled: ServiceName[] = o.profileDir ? ['fetcher', 'lamp-writer'] : [];
  const stack = await startStack({
    participants,
    backfillDays: o.days,
    fetcherReplicas: o.fetchers,
    writerReplicas: o.writers,
    providerLatencyMs: o.latencyMs,
    logDir: o.logDir,
    seed: 'fitlamp-bench',
    built: o.built ?? true,
    ownPostgres: o.ownPostgres ?? false,
    ...(o.serviceEnv ? { serviceEnv: o.serviceEnv } : {}),
    ...(o.profileDir ? { cpuProfile: profiled, cpuProfileDir: o.profileDir } : {}),
  });
  let session: Session | undefined;
  let handedOver = false;
  const profiles: string[] = [];
  try {
    // Every watch synced two minutes ago: the whole window is there to fetch.
    const now = stack.fitbit.clock.now();
    for (const p of participants) syncUser(stack.fitbit.world, findUser(stack.fitbit.world, p.user.id)!, now - 120_000);
    if (o.profileDir) {
      session = new Session();
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.start');
    }
    // The requests the backfill makes, for the provider side's raw limit (replayed after the run).
    const recording = o.keepStack ? stack.fitbit.recordRequests() : undefined;
    // The migrated schema with no participant yet: what the run adds is measured from here.
    const storage0 = await storageSnapshot(stack.db);
    const cpu0 = process.cpuUsage();
    const services0 = new Map(stack.resources().map((r) => [`${r.name}-${r.replica}`, r.cpuMs ?? 0]));
    const events = stack.lamp.store.events;
    // CPU per service, sampled each second: the busiest second says what a CPU limit must allow.
    const peakCores = new Map<string, number>();
    let previous = new Map(stack.resources().map((r) => [`${r.name}-${r.replica}`, { cpuMs: r.cpuMs ?? 0, at: Date.now() }]));
    // Postgres does its work in this stack's backends: their CPU, from /proc, per second.
    const backendCpu = new Map<number, number>();
    let postgresCpuMs = 0;
    let postgresPeakCores = 0;
    let lastPgSample = Date.now();
    let sampling = false;
    const samplePostgres = async () => {
      if (sampling) return;
      sampling = true;
      try {
        const { rows } = await sql<{ pid: number }>`select pid from pg_stat_activity where datname = current_database()`.execute(stack.db);
        let delta = 0;
        for (const { pid } of rows) {
          const ms = readCpuMs(pid);
          if (ms === null) continue;
          const before = backendCpu.get(pid);
          if (before !== undefined) delta += ms - before;
          backendCpu.set(pid, ms);
        }
        const at = Date.now();
        postgresCpuMs += delta;
        postgresPeakCores = Math.max(postgresPeakCores, delta / Math.max(1, at - lastPgSample));
        lastPgSample = at;
      } catch {
        // The stack is stopping.
      } finally {
        sampling = false;
      }
    };
    const sampler = setInterval(() => {
      void samplePostgres();
      const at = Date.now();
      const next = new Map<string, { cpuMs: number; at: number }>();
      for (const r of stack.resources()) {
        const key = `${r.name}-${r.replica}`;
        const before = previous.get(key);
        if (r.cpuMs !== null && before) peakCores.set(key, Math.max(peakCores.get(key) ?? 0, (r.cpuMs - before.cpuMs) / (at - before.at)));
        next.set(key, { cpuMs: r.cpuMs ?? 0, at });
      }
      previous = next;
    }, 1_000);
    const t0 = Date.now();
    // On a loaded machine the gateway's mindLAMP check can fail ("try again in a few minutes",
    // 503): the bench tries again as a person would, and counts it.
    let connectRetries = 0;
    await mapLimit(participants, 8, async (p) => {
      for (let attempt = 1; ; attempt++) {
        try {
          await stack.connect(p);
          return;
        } catch (error) {
          if (attempt >= 5 || !/\b503\b/.test(String(error))) throw error;
          connectRetries++;
          await new Promise((r) => setTimeout(r, 2_000));
        }
      }
    });
    const connectSeconds = (Date.now() - t0) / 1000;
    o.log(`    connected ${participants.length} participants in ${connectSeconds.toFixed(1)} s${connectRetries ? ` (${connectRetries} retried after a 503)` : ''}`);

    const expected = participants.length * stack.dataStreams.length * o.days;
    const deadline = t0 + o.timeoutMs;
    let finished = false;
    let streak = 0;
    let lastReport = 0;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 2_000));
      // One cheap aggregate, not the harness's per-participant progress(): polling must not load the DB.
      const { rows } = await sql<{ done: string; undelivered: string; open: string; failed: string }>`
        select
          (select count(*) from day_ledger where status in ('settled', 'partial', 'empty')
             or (status = 'not_synced' and reason like 'the device has%')) as done,
          (select coalesce(sum(event_count), 0) from event_chunks where status in ('pending', 'sending')) as undelivered,
          (select count(*) from delivery_batches where status in ('sending', 'unknown')) as open,
          (select count(*) from day_ledger where status = 'failed') as failed`.execute(stack.db);
      const r = rows[0]!;
      const done = Number(r.done) >= expected && Number(r.undelivered) === 0 && Number(r.open) === 0 && Number(r.failed) === 0;
      streak = done ? streak + 1 : 0;
      if (Date.now() - lastReport > 15_000) {
        lastReport = Date.now();
        o.log(`    ${((Date.now() - t0) / 1000).toFixed(0)} s: ${r.done}/${expected} stream-days, ${events.length} events in mindLAMP, ${r.undelivered} undelivered`);
      }
      if (streak >= 2) {
        finished = true;
        break;
      }
    }
    clearInterval(sampler);
    const storage1 = await storageSnapshot(stack.db);
    const resources = stack.resources();
    const cpu = process.cpuUsage(cpu0);
    if (session) {
      const { profile } = await session.post('Profiler.stop');
      mkdirSync(join(o.profileDir!, 'bench-process'), { recursive: true });
      const file = join(o.profileDir!, 'bench-process', 'simulators.cpuprofile');
      writeFileSync(file, JSON.stringify(profile));
      profiles.push(file);
      session.disconnect();
      session = undefined;
    }
    const total = events.length;
    const lastAt = total ? events[total - 1]!.receivedAt : t0;
    const firstAt = total ? events[0]!.receivedAt : t0;
    const at = (fraction: number) => events[Math.min(total - 1, Math.floor(total * fraction))]?.receivedAt ?? t0;
    const seconds = (lastAt - t0) / 1000;
    const steadySpan = (at(0.9) - at(0.1)) / 1000;
    const requests = Object.values(stack.fitbit.counters().requests).reduce(
      (n, perEndpoint) => n + Object.values(perEndpoint).reduce((a, b) => a + b, 0),
      0,
    );
    const wall = (Date.now() - t0) / 1000;
    o.log(`    simulator: ${stack.fitbit.world.generated} days and nights generated for ${o.participants * (o.days + 1)} participant-days`);
    const result: ThroughputResult = {
      participants: o.participants,
      days: o.days,
      fetchers: o.fetchers,
      writers: o.writers,
      latencyMs: o.latencyMs,
      built: o.built ?? true,
      ...(o.serviceEnv ? { serviceEnv: o.serviceEnv } : {}),
      storage: await storageBetween(stack.db, storage0, storage1, total, o.ownPostgres ? 'own cluster' : 'shared cluster'),
      finished,
      events: total,
      duplicates: stack.lamp.findDuplicates().extraCopies,
      providerRequests: requests,
      seconds,
      eventsPerSecond: seconds > 0 ? total / seconds : 0,
      steadyEventsPerSecond: steadySpan > 0 ? (total * 0.8) / steadySpan : 0,
      connectSeconds,
      connectRetries,
      firstEventSeconds: (firstAt - t0) / 1000,
      services: resources.map((r) => ({
        ...r,
        cpuCores: r.cpuMs === null ? 0 : (r.cpuMs - (services0.get(`${r.name}-${r.replica}`) ?? 0)) / 1000 / wall,
        peakCores: peakCores.get(`${r.name}-${r.replica}`) ?? 0,
      })),
      benchProcessCores: (cpu.user + cpu.system) / 1e6 / wall,
      postgresCores: postgresCpuMs / 1000 / wall,
      postgresPeakCores,
      loadAverage: (await import('node:os')).loadavg(),
      profiles,
    };
    if (o.keepStack) {
      result.stack = stack;
      if (recording) result.providerRequestLog = recording.stop();
      handedOver = true;
    }
    return result;
  } finally {
    if (session) session.disconnect();
    if (!handedOver) await stack.stop();
  }
}

/** utime + stime of a process in ms (Linux /proc, USER_HZ = 100), or null when it is gone. */
export function readCpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return null;
  }
}
