import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { daysBetween, addDays, syncWindow, type ZoneHistory } from '@fitlamp/provider';
import { createRng, findUser, viewDay, type FitbitFault, type FaultRule, type WorldUser } from '@fitlamp/simulators';
import type { ServiceProcess } from '@fitlamp/testing';
import { computeRecoveries, slowest, type DayRecovery, type RefetchedDay } from './recovery.ts';
import { startStack, type ServiceName, type Stack, type StackParticipant, type StackProgress } from './stack.ts';

const run = promisify(execFile);

/**
 * A chaos run: the whole stack on its own Postgres cluster and redis-server (AOF on), two
 * replicas of each worker, participants whose watches sync every minute, and faults fired at
 * random moments while the backfill and then the steady state run: SIGKILLed service processes
 * (restarted, as an orchestrator would), a Redis FLUSHALL, a Redis restart, pg_terminate_backend
 * of the services' connections, a Postgres restart, ambiguous mindLAMP writes (stored then
 * dropped, answered after the client's timeout, partly written), provider 5xx, 429 with and
 * without Retry-After, and 401 storms. Then every fault is confirmed from the simulators' own
 * counts, and mindLAMP is compared with the simulated world event by event.
 */

export interface ChaosPlan {
  participants: number;
  backfillDays: number;
  /** Steady state after the backfill is fetched, ms (faults keep coming). */
  steadyMs: number;
  kills: number;
  pgTerminations: number;
  /** Bursts of ambiguous mindLAMP writes; each burst arms `lampBurstSize` requests of one kind. */
  lampBursts: number;
  lampBurstSize: number;
  /** Provider fault bursts of each kind: 5xx, 429 with Retry-After, 401. */
  providerBursts: number;
  /** 401 storms: every access token the provider issued expires at once. */
  tokenStorms: number;
  /**
   * Fire a 429 without Retry-After (fitlamp then waits for the provider's hourly reset) 20-90 s
   * before the simulated top of the hour; `simStartAt` must put one within the run.
   */
  bare429: boolean;
  /** Where the simulated clock starts. */
  simStartAt: string;
  seed: string;
  logDir?: string;
  log?: (line: string) => void;
}

export const FULL_PLAN: Omit<ChaosPlan, 'simStartAt'> = {
  participants: 50,
  backfillDays: 7,
  steadyMs: 10 * 60_000,
  kills: 22,
  pgTerminations: 12,
  lampBursts: 28,
  lampBurstSize: 5,
  providerBursts: 3,
  tokenStorms: 2,
  bare429: true,
  seed: 'fitlamp-chaos',
};

export type FaultKind =
  | 'sigkill'
  | 'redis-flushall'
  | 'redis-restart'
  | 'pg-terminate-backend'
  | 'postgres-restart'
  | 'lamp-store-then-drop'
  | 'lamp-late-answer'
  | 'lamp-partial-write'
  | 'provider-5xx'
  | 'provider-429-retry-after'
  | 'provider-429-bare'
  | 'provider-401'
  | 'token-storm';

export interface FaultRecord {
  kind: FaultKind;
  /** ms since the chaos started. */
  at: number;
  detail: string;
  /** How many were armed (requests, backends, tokens) and how many fired, by the simulators' or the server's own count. */
  armed: number;
  fired: () => number;
  /** ms from the fault (its end, for restarts) to the next event stored in mindLAMP. */
  nextWriteAfterMs?: number;
  /** SIGKILL: ms until the replacement process reported started. */
  restartedAfterMs?: number;
}

export interface ChaosReport {
  plan: Omit<ChaosPlan, 'log'>;
  startedAt: string;
  wallMs: number;
  backfillMs: number;
  steadyMs: number;
  faults: Array<{ kind: FaultKind; injected: number; armed: number; fired: number }>;
  /** Service processes that exited without being killed by the run. */
  unexpectedExits: string[];
  events: {
    expected: number;
    lost: number;
    duplicated: number;
    misplaced: number;
    repeatsInMindLamp: number;
    /** Correction events in mindLAMP (revised steps and active zone minutes); folded into their minutes when checked. */
    corrections: number;
    checkedParticipantDays: number;
    storedInMindLamp: number;
    /** The first participant-days that differ, and the first repeats, to start a diagnosis from. */
    problems: string[];
  };
  refreshTokenReuse: number;
  refreshes: number;
  /** Longest gap between two mindLAMP writes for one participant during the steady state, ms. */
  longestStallMs: number;
  longestStallParticipant: string | null;
  /** Longest period with any stream-day `failed`, ms (recovery from provider errors). */
  longestFailedMs: number;
  /**
   * Sampled, not the bound of issue 16 item 4: the longest time any participant × stream × day was
   * seen `failed` in the day ledger, from the first sample (every SAMPLE_MS) that saw it failed to
   * the first that saw it not failed. Includes the sampling lag; "(still failed)" when it never left.
   */
  longestDayRecoveryMs: number;
  longestDayRecovery: string | null;
  /** Stream-days seen `failed` at some point. */
  failedDaysSeen: number;
  /**
   * Recovery as issue 16 item 4 defines it (recovery.ts): from the last faulty response the
   * Fitbit simulator served the participant before the day's re-fetch (outage end) to the
   * re-fetch (day_ledger.fetched_at once the day left `failed`). Days whose last faulty response
   * was a 429 are measured from the budget's reset (`budget`); failed days with no provider fault
   * logged for the participant are listed in `noFault`.
   */
  dayRecovery: {
    pollMs: number;
    tickMs: number;
    slackMs: number;
    outage: DayRecovery[];
    budget: DayRecovery[];
    noFault: string[];
  };
  syncIntervalMs: number;
  recovery: {
    sigkillRestartMaxMs: number;
    sigkillRestartMedianMs: number;
    nextWriteMaxMs: Partial<Record<FaultKind, number>>;
    /** From the last fault until everything was fetched and delivered. */
    finalCatchUpMs: number;
  };
}

const asZones = (user: WorldUser): ZoneHistory => user.zoneHistory.map((z) => ({ zone: z.zone, validFrom: z.from }));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const LAMP_TIMEOUT_MS = 2_000;
/** The line every service logs once it serves (what `startService` waits for). */
const STARTED = /"msg":"started"/;
/** Every participant's poll interval (and their watch's sync interval: one minute). */
const SYNC_INTERVAL_MS = 60_000;
/** How often the sampler reads mindLAMP's counts and the day ledger. */
const SAMPLE_MS = 2_000;
/** The scheduler's tick: a due participant is enqueued within one tick. */
const SCHEDULER_TICK_MS = 2_000;
/**
 * Allowance for the syncs' own duration in a recovery: the failing sync's requests after the
 * fault (finishSync dates the next poll from the sync's end), the job's pick-up, and the
 * re-fetching sync's requests before the day is stored (fetched_at). A sync is a handful of
 * requests to the in-process simulator plus Postgres writes: well under a second when idle,
 * a few seconds on the shared 2-core machine under the chaos run's load; 10 s covers that.
 */
const RECOVERY_SLACK_MS = 10_000;
const PRESETS = ['new-york', 'sydney', 'kolkata'];

export async function runChaos(plan: ChaosPlan): Promise<ChaosReport> {
  const log = plan.log ?? (() => {});
  // The fault schedule comes from the seed alone (the project's one RNG), so a run can be repeated.
  const rand = createRng('chaos', plan.seed);
  const pick = <T>(list: T[]): T => list[Math.floor(rand() * list.length)]!;
  const participants: StackParticipant[] = Array.from({ length: plan.participants }, (_, i) => ({
    id: `U${String(i + 1).padStart(10, '0')}`,
    user: { id: `CHS${String(i + 1).padStart(3, '0')}`, preset: PRESETS[i % PRESETS.length]!, autoSyncMinutes: 1 },
  }));
  const wallStart = Date.now();
  log(`starting the stack: own Postgres and Redis (AOF), ${plan.participants} participants, 2 fetchers, 2 writers`);
  const stack = await startStack({
    participants,
    backfillDays: plan.backfillDays,
    simStartAt: plan.simStartAt,
    ownRedis: true,
    redisAof: true,
    ownPostgres: true,
    fetcherReplicas: 2,
    writerReplicas: 2,
    syncIntervalSeconds: SYNC_INTERVAL_MS / 1000,
    schedulerTickSeconds: SCHEDULER_TICK_MS / 1000,
    sweepSeconds: 10,
    rateLimitPerHour: 5_000,
    accessTokenTtlSeconds: 300,
    seed: plan.seed,
    // Late answers come LAMP_TIMEOUT_MS + 1.5 s after a request, more when bursts overlap (every
    // armed latency rule adds its delay): the writer waits 30 s before re-sending what a read-back missed.
    env: { LAMP_TIMEOUT_MS: String(LAMP_TIMEOUT_MS), LAMP_WRITER_LEASE_MS: '10000', LAMP_SETTLE_MS: '30000', PROFILE_CHECK_SECONDS: '30' },
    ...(plan.logDir ? { logDir: plan.logDir } : {}),
  });
  try {
    return await chaos(stack, plan, participants, { log, rand, pick, wallStart });
  } finally {
    await stack.stop();
  }
}

async function chaos(
  stack: Stack,
  plan: ChaosPlan,
  participants: StackParticipant[],
  { log, rand, pick, wallStart }: { log: (line: string) => void; rand: () => number; pick: <T>(list: T[]) => T; wallStart: number },
): Promise<ChaosReport> {
  const { fitbit, lamp } = stack;
  const dbName = new URL(stack.databaseUrl).pathname.slice(1);
  const adminUrl = stack.postgres!.adminUrl;
  for (const p of participants) await stack.connect(p);
  log(`${participants.length} participants connected`);
  const t0 = Date.now();
  const since = () => Date.now() - t0;
  const records: FaultRecord[] = [];
  const lastLampWrite = () => lamp.store.events.at(-1)?.receivedAt ?? 0;
  /** Resolves with the ms from `from` to the next event stored in mindLAMP (checked in the background). */
  const watchNextWrite = (record: FaultRecord, from: number) => {
    const timer = setInterval(() => {
      if (lastLampWrite() > from) {
        record.nextWriteAfterMs = lastLampWrite() - from;
        clearInterval(timer);
      }
    }, 250);
    timers.push(timer);
  };
  const timers: NodeJS.Timeout[] = [];

  // The orchestrator: whatever exits after it started is started again, one restart loop per
  // exited process; exits the run did not cause are findings. A process that never started
  // belongs to the restart attempt that spawned it (that loop retries): supervising it too would
  // start a second replacement, and two gateways on one port fail each other (EADDRINUSE).
  const started = (p: ServiceProcess) => p.stdout.some((line) => STARTED.test(line));
  const killed = new Set<ServiceProcess>();
  const replaced = new Set<ServiceProcess>();
  const unexpectedExits: string[] = [];
  let supervising = true;
  const supervisor = (async () => {
    while (supervising) {
      for (const name of Object.keys(stack.processes) as ServiceName[]) {
        for (const proc of stack.processes[name]) {
          if (proc.proc.exitCode === null && proc.proc.signalCode === null) continue;
          if (replaced.has(proc) || !started(proc)) continue;
          replaced.add(proc);
          if (!killed.has(proc)) unexpectedExits.push(`${name} pid ${proc.proc.pid} exited ${proc.proc.exitCode ?? proc.proc.signalCode} at ${since()} ms: ${proc.stderr.slice(-12).join(' | ').slice(0, 1500)}`);
          // Like an orchestrator's restart loop: try again until it starts.
          void (async () => {
            for (;;) {
              try {
                await stack.startService(name);
                const record = records.find((r) => r.kind === 'sigkill' && r.detail.endsWith(`pid ${proc.proc.pid}`));
                if (record) record.restartedAfterMs = since() - record.at;
                return;
              } catch (error) {
                log(`restarting ${name} failed (${(error as Error).message.slice(0, 200)}); trying again`);
                await sleep(2_000);
              }
            }
          })();
        }
      }
      await sleep(500);
    }
  })();

  // Stall and failed-day sampling.
  const lastGrowth = new Map<string, number>();
  const lastCount = new Map<string, number>();
  let steadyFrom = Infinity;
  let longestStallMs = 0;
  let longestStallParticipant: string | null = null;
  let failedSince: number | null = null;
  let longestFailedMs = 0;
  // Per stream-day recovery: when each failed participant/stream/day was first seen failed.
  const failedFirstSeen = new Map<string, number>();
  const dayRecoveries: Array<{ key: string; ms: number }> = [];
  // The re-fetch of each day that left `failed`: its fetched_at then (the next fetch is a poll later).
  const refetched: RefetchedDay[] = [];
  const leftWithoutFetch: string[] = [];
  const fitbitUser = new Map(participants.map((p) => [p.id, p.user.id]));
  const failedRows = new Map<string, { participant_id: string; stream: string; day: string }>();
  const sampleFailedDays = async (now: number) => {
    const rows = await stack.db.selectFrom('day_ledger').select(['participant_id', 'stream', 'day']).where('status', '=', 'failed').execute();
    const failedNow = new Set<string>();
    for (const r of rows) {
      const key = `${r.participant_id} ${r.stream} ${r.day}`;
      failedNow.add(key);
      failedRows.set(key, { participant_id: r.participant_id, stream: r.stream, day: String(r.day) });
    }
    for (const key of failedNow) if (!failedFirstSeen.has(key)) failedFirstSeen.set(key, now);
    for (const [key, at] of failedFirstSeen) {
      if (failedNow.has(key)) continue;
      const row = failedRows.get(key)!;
      const back = await stack.db
        .selectFrom('day_ledger')
        .select(['fetched_at', 'status'])
        .where('participant_id', '=', row.participant_id)
        .where('stream', '=', row.stream)
        .where('day', '=', row.day)
        .executeTakeFirst();
      dayRecoveries.push({ key, ms: now - at });
      // A day that left `failed` without a fetch after its failure (fetched_at older than when it
      // was first seen failed) was not fetched again: listed, not measured.
      if (!back?.fetched_at || new Date(back.fetched_at).getTime() < at - SAMPLE_MS) leftWithoutFetch.push(`${key} (left failed as ${back?.status ?? 'gone'} without a re-fetch)`);
      else refetched.push({ key, userId: fitbitUser.get(row.participant_id) ?? '', fetchedAgainAt: new Date(back.fetched_at).getTime() });
      failedFirstSeen.delete(key);
    }
  };
  let sampling = true;
  let lastProgressLog = 0;
  const sampler = (async () => {
    while (sampling) {
      const now = Date.now();
      const counts = lamp.countEvents().participants;
      for (const p of participants) {
        const n = counts[p.id]?.total ?? 0;
        if (n !== lastCount.get(p.id)) {
          lastCount.set(p.id, n);
          lastGrowth.set(p.id, now);
        } else if (now > steadyFrom && lastGrowth.has(p.id)) {
          const stall = now - Math.max(lastGrowth.get(p.id)!, steadyFrom);
          if (stall > longestStallMs) {
            longestStallMs = stall;
            longestStallParticipant = p.id;
          }
        }
      }
      try {
        const progress = await stack.progress();
        const failed = progress.failedDays;
        if (now - lastProgressLog > 30_000) {
          lastProgressLog = now;
          log(`[${(since() / 1000).toFixed(1)} s] ${JSON.stringify(progress)}`);
        }
        await sampleFailedDays(now);
        if (failed > 0) failedSince ??= now;
        else if (failedSince !== null) {
          longestFailedMs = Math.max(longestFailedMs, now - failedSince);
          failedSince = null;
        }
      } catch {
        // Postgres restarting: sample again next time.
      }
      await sleep(SAMPLE_MS);
    }
  })();

  // The faults, shuffled, fired at random moments over the expected length of the run.
  type Action = () => Promise<FaultRecord | undefined>;
  const actions: Action[] = [];
  const add = (n: number, action: Action) => {
    for (let i = 0; i < n; i++) actions.push(action);
  };
  const one = (kind: FaultKind, detail: string, armed: number, fired: () => number, watchFrom = Date.now()): FaultRecord => {
    const record: FaultRecord = { kind, at: since(), detail, armed, fired };
    records.push(record);
    watchNextWrite(record, watchFrom);
    log(`[${(record.at / 1000).toFixed(1)} s] ${kind}: ${detail}`);
    return record;
  };
  add(plan.kills, async () => {
    const live = (Object.entries(stack.processes) as Array<[ServiceName, ServiceProcess[]]>).flatMap(([name, list]) =>
      list.filter((p) => p.proc.exitCode === null && p.proc.signalCode === null && !killed.has(p) && started(p)).map((p) => ({ name, p })),
    );
    if (live.length === 0) return undefined;
    const { name, p } = pick(live);
    killed.add(p);
    p.proc.kill('SIGKILL');
    await p.exited;
    return one('sigkill', `${name} pid ${p.proc.pid}`, 1, () => (p.proc.signalCode === 'SIGKILL' ? 1 : 0));
  });
  add(plan.pgTerminations, async () => {
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    try {
      const { rows } = await admin.query<{ pid: number; application_name: string }>(
        `select pid, application_name from pg_stat_activity where datname = $1 and application_name like 'fitlamp-%' and application_name <> 'fitlamp-stack'`,
        [dbName],
      );
      const victims = rows.filter(() => rand() < 0.5);
      if (victims.length === 0 && rows.length > 0) victims.push(pick(rows));
      let terminated = 0;
      for (const v of victims) {
        const r = await admin.query<{ ok: boolean }>('select pg_terminate_backend($1) as ok', [v.pid]);
        if (r.rows[0]?.ok) terminated++;
      }
      return one('pg-terminate-backend', `${terminated} of ${rows.length} service connections (${[...new Set(victims.map((v) => v.application_name))].join(', ')})`, victims.length, () => terminated);
    } finally {
      await admin.end();
    }
  });
  add(1, async () => {
    const { stdout } = await run('redis-cli', ['-u', stack.redisUrl, 'FLUSHALL']);
    const ok = stdout.trim() === 'OK';
    return one('redis-flushall', `FLUSHALL answered ${stdout.trim()}`, 1, () => (ok ? 1 : 0));
  });
  // Restarts are confirmed by the servers themselves: a new run id (Redis) or postmaster start
  // time (Postgres) after the restart, and for Redis the keys back from its AOF.
  const redisInfo = async () => {
    const { stdout } = await run('redis-cli', ['-u', stack.redisUrl, 'INFO', 'server']);
    const { stdout: keys } = await run('redis-cli', ['-u', stack.redisUrl, 'DBSIZE']);
    return { runId: /run_id:(\w+)/.exec(stdout)?.[1] ?? '', keys: Number(keys.trim()) };
  };
  add(1, async () => {
    const old = await redisInfo();
    const before = Date.now();
    await stack.restartRedis();
    const down = Date.now() - before;
    const now = await redisInfo();
    const fired = old.runId !== '' && now.runId !== '' && now.runId !== old.runId ? 1 : 0;
    return one('redis-restart', `redis-server stopped and started again on its AOF (${down} ms down; ${old.keys} keys before, ${now.keys} after)`, 1, () => fired);
  });
  const postmasterStart = async () => {
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    try {
      return (await admin.query<{ t: string }>('select pg_postmaster_start_time()::text as t')).rows[0]!.t;
    } finally {
      await admin.end();
    }
  };
  add(1, async () => {
    const old = await postmasterStart();
    const before = Date.now();
    await stack.postgres!.restart();
    const down = Date.now() - before;
    const now = await postmasterStart();
    const fired = now !== old ? 1 : 0;
    return one('postgres-restart', `pg_ctl restart -m fast (${down} ms down; postmaster started ${old}, then ${now})`, 1, () => fired);
  });
  // A partial write stores the first `stored` events and answers 500; only a larger batch is
  // partly written (a smaller one is stored whole and answered 200). Backfill batches are large;
  // steady-state ones hold a minute or two, so there the fault stores one event.
  const partialStored = () => {
    const r = rand();
    return steadyFrom === Infinity ? 1 + Math.floor(r * 200) : 1;
  };
  const lampKinds = [
    { kind: 'lamp-store-then-drop' as const, fault: () => ({ kind: 'store-then-drop' as const }) },
    { kind: 'lamp-late-answer' as const, fault: () => ({ kind: 'latency' as const, ms: LAMP_TIMEOUT_MS + 1_500 }) },
    { kind: 'lamp-partial-write' as const, fault: () => ({ kind: 'partial-write' as const, stored: partialStored() }) },
  ];
  // Partial-write rules take requests in the order they were armed (the first matching rule
  // applies), so the n-th rule's requests are the n-th `lampBurstSize` in the simulator's log
  // that carry the fault; fired = those that stored fewer events than they carried.
  let partialRules = 0;
  const partialWrites = (n: number) =>
    lamp
      .listRequests()
      .filter((r) => r.faults.includes('partial-write'))
      .slice(n * plan.lampBurstSize, (n + 1) * plan.lampBurstSize)
      .filter((r) => r.storedCount !== undefined && r.eventCount !== undefined && r.storedCount < r.eventCount).length;
  for (let i = 0; i < plan.lampBursts; i++) {
    const { kind, fault } = lampKinds[i % lampKinds.length]!;
    actions.push(async () => {
      const f = fault();
      const rule: FaultRule = lamp.addFault({ route: 'Participant.create_sensor_events', fault: f, times: plan.lampBurstSize });
      const n = kind === 'lamp-partial-write' ? partialRules++ : -1;
      return one(kind, `next ${plan.lampBurstSize} sensor-event POSTs: ${JSON.stringify(f)}`, plan.lampBurstSize, () =>
        n >= 0 ? partialWrites(n) : rule.applied,
      );
    });
  }
  const providerFault = (kind: FaultKind, spec: Parameters<typeof fitbit.addFault>[0]) => async () => {
    const fault: FitbitFault = fitbit.addFault(spec);
    const count = spec.count!;
    return one(kind, `next ${count} requests under ${spec.path}: ${spec.status}${spec.retryAfterSeconds !== undefined ? `, Retry-After ${spec.retryAfterSeconds}` : ''}`, count, () =>
      count - Math.max(0, fault.remaining ?? 0),
    );
  };
  // Paths every minute's sync asks for (today's steps and heart rate), so an armed fault fires.
  const dataPaths = ['/1/user/-/activities/steps', '/1/user/-/activities/heart', '/1/user/-/activities'];
  for (let i = 0; i < plan.providerBursts; i++) {
    actions.push(providerFault('provider-5xx', { path: pick(dataPaths), kind: 'error', status: pick([500, 502, 503]), count: 4 }));
    actions.push(providerFault('provider-429-retry-after', { path: pick(dataPaths), kind: 'error', status: 429, retryAfterSeconds: 15, count: 2 }));
    // One 401 at a time: fitlamp refreshes and retries, and a second 401 on the fresh token means
    // the grant is gone (reconnect needed), by design. Storms of 401s come from token-storm.
    actions.push(providerFault('provider-401', { path: pick(dataPaths), kind: 'error', status: 401, count: 1 }));
  }
  add(plan.tokenStorms, async () => {
    const now = fitbit.clock.now();
    const live = [...fitbit.state.accessTokens.values()].filter((a) => !a.revoked && a.expiresAt > now);
    for (const a of live) a.expiresAt = now;
    const issuedBefore = fitbit.counters().accessTokensIssued;
    return one('token-storm', `${live.length} live access tokens expired at once (401 on their next use)`, live.length, () =>
      Math.min(live.length, fitbit.counters().accessTokensIssued - issuedBefore),
    );
  });
  // Shuffle (Fisher-Yates, seeded).
  for (let i = actions.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [actions[i], actions[j]] = [actions[j]!, actions[i]!];
  }

  // A bare 429 (no Retry-After) makes fitlamp wait for the provider's hourly reset: fired 20-90 s
  // before the simulated top of the hour, so that the wait ends within the run.
  const topOfHour = Math.ceil((fitbit.clock.now() + 1) / 3_600_000) * 3_600_000;
  const bareDue = plan.bare429 && topOfHour - fitbit.clock.now() > 20_000;
  if (plan.bare429 && !bareDue) log('the simulated top of the hour is too close: no bare 429 in this run (start the clock earlier)');
  let bare: FaultRecord | undefined;
  const bareTimer = setInterval(() => {
    const left = topOfHour - fitbit.clock.now();
    if (!bareDue || bare || left > 90_000 || left < 20_000) return;
    const fault = fitbit.addFault({ path: '/1/user/-/activities', kind: 'error', status: 429, count: 2 });
    bare = one('provider-429-bare', `next 2 requests under /1/user/-/activities: 429 without Retry-After (reset at the top of the hour, ${Math.round(left / 1000)} s away)`, 2, () =>
      2 - Math.max(0, fault.remaining ?? 0),
    );
  }, 1_000);
  timers.push(bareTimer);

  const gap = (plan.steadyMs * 1.3) / actions.length;
  let backfillMs = 0;
  const backfilled = (async () => {
    for (;;) {
      try {
        const p = await stack.progress();
        if (p.daysDone >= p.daysExpected) break;
      } catch {
        // Postgres restarting.
      }
      await sleep(2_000);
    }
    backfillMs = since();
    steadyFrom = Date.now();
    log(`[${(backfillMs / 1000).toFixed(1)} s] backfill fetched; steady state for ${plan.steadyMs / 1000} s`);
  })();
  for (const action of actions) {
    await sleep(gap * (0.3 + 1.4 * rand()));
    try {
      await action();
    } catch (error) {
      log(`fault failed to inject: ${(error as Error).message}`);
    }
  }
  // The steady state lasts its full length after the backfill, and the bare 429 must have come.
  await backfilled;
  while (Date.now() - steadyFrom < plan.steadyMs || (bareDue && !bare && fitbit.clock.now() < topOfHour - 20_000)) await sleep(1_000);
  // Armed faults fire on the next requests that match; writes and syncs come every minute.
  for (const started = Date.now(); lamp.faults.rules.length > 0 || fitbit.state.faults.length > 0; ) {
    if (Date.now() - started > 300_000) {
      log(`armed faults left unfired after 5 min: ${JSON.stringify({ lamp: lamp.faults.rules, fitbit: fitbit.state.faults })}`);
      break;
    }
    await sleep(1_000);
  }
  const lastFaultAt = Date.now();
  log(`[${(since() / 1000).toFixed(1)} s] faults over; waiting until everything is fetched and delivered`);
  // Armed faults that found no request are left armed until the end (counted as armed, not fired).
  const steadyMs = lastFaultAt - steadyFrom;
  const caughtUp = await stack.waitUntilCaughtUp({ stallMs: 180_000, timeoutMs: 1_200_000 });
  const finalCatchUpMs = Date.now() - lastFaultAt;
  log(`caught up after ${(finalCatchUpMs / 1000).toFixed(1)} s: ${JSON.stringify(caughtUp)}`);
  sampling = false;
  supervising = false;
  await Promise.all([sampler, supervisor]);
  for (const t of timers) clearInterval(t);
  if (failedSince !== null) longestFailedMs = Math.max(longestFailedMs, Date.now() - failedSince);
  // Days still failed once everything caught up have not recovered: counted with their time so far.
  await sampleFailedDays(Date.now());
  for (const [key, at] of failedFirstSeen) dayRecoveries.push({ key: `${key} (still failed)`, ms: Date.now() - at });
  const slowestDay = dayRecoveries.reduce<{ key: string; ms: number } | null>((a, b) => (a && a.ms >= b.ms ? a : b), null);
  const dayRecovery = {
    pollMs: SYNC_INTERVAL_MS,
    tickMs: SCHEDULER_TICK_MS,
    slackMs: RECOVERY_SLACK_MS,
    ...computeRecoveries(fitbit.state.servedFaults, refetched, { pollMs: SYNC_INTERVAL_MS, tickMs: SCHEDULER_TICK_MS, slackMs: RECOVERY_SLACK_MS }),
  };
  dayRecovery.noFault.push(...leftWithoutFetch);

  const events = checkMindLamp(stack, participants, plan.backfillDays);
  const byKind = new Map<FaultKind, { kind: FaultKind; injected: number; armed: number; fired: number }>();
  for (const r of records) {
    const row = byKind.get(r.kind) ?? { kind: r.kind, injected: 0, armed: 0, fired: 0 };
    row.injected += 1;
    row.armed += r.armed;
    row.fired += r.fired();
    byKind.set(r.kind, row);
  }
  const restarts = records.flatMap((r) => (r.restartedAfterMs !== undefined ? [r.restartedAfterMs] : [])).sort((a, b) => a - b);
  const nextWriteMaxMs: Partial<Record<FaultKind, number>> = {};
  for (const r of records) {
    if (r.nextWriteAfterMs !== undefined) nextWriteMaxMs[r.kind] = Math.max(nextWriteMaxMs[r.kind] ?? 0, r.nextWriteAfterMs);
  }
  const { log: _log, ...planOut } = plan;
  void _log;
  return {
    plan: planOut,
    startedAt: new Date(wallStart).toISOString(),
    wallMs: Date.now() - wallStart,
    backfillMs,
    steadyMs,
    faults: [...byKind.values()].sort((a, b) => a.kind.localeCompare(b.kind)),
    unexpectedExits,
    events,
    refreshTokenReuse: fitbit.counters().refreshTokenReuse,
    refreshes: fitbit.counters().refreshTokensIssued,
    longestStallMs,
    longestStallParticipant,
    longestFailedMs,
    longestDayRecoveryMs: slowestDay?.ms ?? 0,
    longestDayRecovery: slowestDay?.key ?? null,
    failedDaysSeen: dayRecoveries.length,
    dayRecovery,
    syncIntervalMs: SYNC_INTERVAL_MS,
    recovery: {
      sigkillRestartMaxMs: restarts.at(-1) ?? 0,
      sigkillRestartMedianMs: restarts[Math.floor(restarts.length / 2)] ?? 0,
      nextWriteMaxMs,
      finalCatchUpMs,
    },
  };
}

/**
 * mindLAMP against the simulated world: every minute of steps and heart rate of every settled day
 * (more than 48 h past, so no longer revised) in each participant's window, counted per instant
 * and value (never collapsed; a correction event is added to the minute it corrects), plus the
 * simulator's own repeat finder over everything stored, which counts corrections apart.
 */
export function checkMindLamp(stack: Stack, participants: StackParticipant[], backfillDays: number): ChaosReport['events'] {
  const { fitbit, lamp } = stack;
  const now = fitbit.clock.now();
  let expected = 0;
  let lost = 0;
  let duplicated = 0;
  let misplaced = 0;
  let checkedParticipantDays = 0;
  const problems: string[] = [];
  for (const p of participants) {
    const user = findUser(fitbit.world, p.user.id)!;
    const { first, today } = syncWindow(asZones(user), now, backfillDays);
    // Each datum with the corrections of its minute added (a minute corrected to 0 steps has none left).
    const minutes = (sensor: string) =>
      lamp
        .listCorrectedDatums({ participantId: p.id, sensor })
        .filter((d) => d.duration === undefined && !(d.corrections > 0 && d.value === 0))
        .map((d) => `${d.timestamp}:${d.value}`);
    const stored = { steps: minutes('lamp.steps'), heart: minutes('lamp.heart_rate') };
    const days = daysBetween(first, addDays(today, -3));
    for (const day of days) {
      const truth = viewDay(fitbit.world, user, day, now).day;
      if (!truth) continue;
      checkedParticipantDays++;
      const want = {
        steps: truth.steps.flatMap((v, m) => (v > 0 ? [`${truth.start + m * 60_000}:${v}`] : [])),
        heart: truth.heartRate.flatMap((v, m) => (v !== null ? [`${truth.start + m * 60_000}:${v}`] : [])),
      };
      for (const key of ['steps', 'heart'] as const) {
        const inDay = new Map<string, number>();
        for (const s of stored[key]) {
          const t = Number(s.split(':')[0]);
          if (t >= truth.start && t < truth.end) inDay.set(s, (inDay.get(s) ?? 0) + 1);
        }
        expected += want[key].length;
        const before = { lost, duplicated, misplaced };
        for (const w of want[key]) {
          const n = inDay.get(w) ?? 0;
          if (n === 0) lost++;
          if (n > 1) duplicated += n - 1;
          inDay.delete(w);
        }
        // Stored at an instant (or with a value) the world does not have.
        for (const n of inDay.values()) misplaced += n;
        if (problems.length < 30 && (lost > before.lost || duplicated > before.duplicated || misplaced > before.misplaced)) {
          const zone = user.zoneHistory.at(-1)!.zone;
          problems.push(
            `${p.id} (${zone}) ${key} ${day}: ${lost - before.lost} lost, ${duplicated - before.duplicated} duplicated, ` +
              `${misplaced - before.misplaced} misplaced (first stray: ${[...inDay.keys()].slice(0, 3).map((k) => new Date(Number(k.split(':')[0])).toISOString() + '=' + k.split(':')[1]).join(', ')})`,
          );
        }
      }
    }
  }
  const repeats = lamp.findRepeats();
  for (const group of repeats.groups.slice(0, 10)) problems.push(`repeat: ${JSON.stringify(group).slice(0, 300)}`);
  return {
    expected,
    lost,
    duplicated,
    misplaced,
    repeatsInMindLamp: repeats.extraCopies,
    corrections: lamp.listEvents().filter((e) => (e.event.data as { correction?: unknown } | null)?.correction === true).length,
    checkedParticipantDays,
    storedInMindLamp: lamp.countEvents().total,
    problems,
  };
}

const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

const AMBIGUOUS_WRITES: FaultKind[] = ['lamp-store-then-drop', 'lamp-late-answer', 'lamp-partial-write'];

/**
 * What a chaos run must show, one sentence per failure (empty: the run met the promise). The
 * full run (`pnpm chaos`) and the short variant in the test suite judge by this same list:
 * every fault kind of the plan injected and confirmed fired by the simulators' or servers' own
 * counts (at least `plan.kills` SIGKILLs and `plan.pgTerminations` terminated connections,
 * at least `minAmbiguousWrites` ambiguous mindLAMP writes), and then nothing lost, duplicated,
 * misplaced or repeated in mindLAMP, no refresh token used twice, no service exit the run did
 * not cause, and no stream-day left failed.
 */
export function assessChaos(report: ChaosReport, minAmbiguousWrites: number): string[] {
  const plan = report.plan;
  const failures: string[] = [];
  const fault = (kind: FaultKind) => report.faults.find((f) => f.kind === kind) ?? { kind, injected: 0, armed: 0, fired: 0 };
  const wanted: Array<[FaultKind, number]> = [
    ['sigkill', plan.kills],
    ['pg-terminate-backend', plan.pgTerminations],
    ['redis-flushall', 1],
    ['redis-restart', 1],
    ['postgres-restart', 1],
    ...AMBIGUOUS_WRITES.map((k): [FaultKind, number] => [k, plan.lampBursts >= 3 ? 1 : 0]),
    ['provider-5xx', plan.providerBursts > 0 ? 1 : 0],
    ['provider-429-retry-after', plan.providerBursts > 0 ? 1 : 0],
    ['provider-401', plan.providerBursts > 0 ? 1 : 0],
    ['provider-429-bare', plan.bare429 ? 1 : 0],
    ['token-storm', plan.tokenStorms > 0 ? 1 : 0],
  ];
  for (const [kind, atLeast] of wanted) {
    if (atLeast === 0) continue;
    const f = fault(kind);
    if (f.fired < atLeast) failures.push(`${kind}: fired ${f.fired} (injected ${f.injected}, armed ${f.armed}), wanted at least ${atLeast}`);
  }
  const ambiguous = AMBIGUOUS_WRITES.reduce((n, k) => n + fault(k).fired, 0);
  if (ambiguous < minAmbiguousWrites) failures.push(`ambiguous mindLAMP writes: ${ambiguous} fired, wanted at least ${minAmbiguousWrites}`);
  const e = report.events;
  if (e.checkedParticipantDays < plan.participants || e.expected === 0) failures.push(`too little checked: ${e.checkedParticipantDays} participant-days, ${e.expected} events`);
  for (const [what, n] of [
    ['events lost', e.lost],
    ['events duplicated', e.duplicated],
    ['events at a wrong instant or value', e.misplaced],
    ['repeats in mindLAMP', e.repeatsInMindLamp],
    ['refresh-token reuses', report.refreshTokenReuse],
    ['service exits the run did not cause', report.unexpectedExits.length],
  ] as const) {
    if (n !== 0) failures.push(`${what}: ${n}`);
  }
  if (plan.tokenStorms > 0 && report.refreshes <= plan.participants) failures.push(`only ${report.refreshes} refreshes for ${plan.participants} participants through a token storm`);
  if (report.longestDayRecovery?.endsWith('(still failed)')) failures.push(`a stream-day never recovered: ${report.longestDayRecovery}`);
  const r = report.dayRecovery;
  for (const d of [...r.outage, ...r.budget]) {
    if (d.ms > d.boundMs) failures.push(`stream-day ${d.key} fetched again ${s(d.ms)} after ${r.budget.includes(d) ? "its budget's reset" : 'the outage ended'} (bound ${s(d.boundMs)})`);
  }
  if (plan.providerBursts > 0 && report.failedDaysSeen > 0 && r.outage.length + r.budget.length === 0) failures.push('no failed stream-day could be matched to a provider fault: recovery not measured');
  return failures;
}

function renderDayRecovery(r: ChaosReport['dayRecovery']): string[] {
  const bound = r.pollMs + r.tickMs + r.slackMs;
  const longest = slowest(r.outage);
  const longestBudget = slowest(r.budget);
  const within = r.outage.filter((d) => d.ms <= r.pollMs).length;
  const withinBound = r.outage.filter((d) => d.ms <= d.boundMs).length;
  return [
    '## Recovery of failed stream-days (issue 16 item 4)',
    '',
    'Outage end: the last faulty response the Fitbit simulator served to the participant before the day was',
    "fetched again (its log of applied faults). Fetched again: the day's `fetched_at` in the day ledger once it",
    `left \`failed\`. Bound: one poll interval (${s(r.pollMs)}) + the scheduler's tick (${s(r.tickMs)}) + ${s(r.slackMs)} for the`,
    "syncs' own duration (the failing sync's requests after the fault, the job's pick-up, the re-fetching sync's",
    `requests before the day is stored) = ${s(bound)}. Days whose last faulty response was a 429 are measured from`,
    "the budget's reset (Retry-After, or the provider's next hour) and bounded by the fetcher's reset jitter",
    '(at most min(30 s, wait/10 + 1 s)) + tick + the same allowance.',
    '',
    '| figure | value |',
    '| --- | ---: |',
    `| failed stream-days measured from the outage's end | ${r.outage.length} |`,
    `| longest recovery: outage end to fetched again | ${longest ? `${s(longest.ms)} (${longest.key})` : '-'} |`,
    `| of them fetched again within one poll (${s(r.pollMs)}) | ${within} |`,
    `| of them fetched again within the bound (${s(bound)}) | ${withinBound} |`,
    `| failed stream-days of a participant whose budget was spent (429), measured from the reset | ${r.budget.length} |`,
    `| longest: budget reset to fetched again | ${longestBudget ? `${s(longestBudget.ms)} (${longestBudget.key}; bound ${s(longestBudget.boundMs)})` : '-'} |`,
    `| failed stream-days not measured (no provider fault logged for the participant, or no re-fetch) | ${r.noFault.length}${r.noFault.length ? ` (${r.noFault.slice(0, 5).join(', ')})` : ''} |`,
    '',
  ];
}

/** The report as Markdown (docs/reliability.md). */
export function renderReliability(report: ChaosReport, note: string, failures: readonly string[]): string {
  const lines = [
    '# Reliability: the chaos run',
    '',
    'Generated by `pnpm chaos` (packages/harness/src/chaos.ts; a short variant runs in the test suite as',
    '`test/chaos.e2e.test.ts`). The whole stack runs as real processes on real time against its own',
    'Postgres cluster and redis-server (AOF on), two replicas of each worker, the simulators in the',
    'run\'s process; every participant\'s watch syncs every minute. Faults are fired at random moments',
    'of the backfill and the steady state; killed or crashed processes are started again, as an',
    'orchestrator would.',
    '',
    note,
    '',
    failures.length === 0
      ? '**Verdict: met.** Every fault kind fired; nothing lost, duplicated, misplaced or repeated; no refresh token reused.'
      : `**Verdict: not met.** ${failures.join('; ')}.`,
    '',
    `Run of ${report.startedAt}: ${report.plan.participants} participants, ${report.plan.backfillDays}-day backfill ` +
      `(fetched after ${s(report.backfillMs)}), then ${s(report.steadyMs)} of steady state; ${s(report.wallMs)} wall in all.`,
    '',
    '## Faults injected',
    '',
    'Armed: requests, connections or tokens the fault was set up for. Fired: confirmed by the simulators\' own',
    'counts (mindLAMP fault rules applied; for partial writes, POSTs the simulator\'s log shows stored only in part;',
    'Fitbit fault rules used up; access tokens re-issued after a storm), by `pg_terminate_backend` answering',
    'true, by the process dying of SIGKILL, or by a new Redis `run_id` / Postgres postmaster start time after',
    'a restart.',
    '',
    '| kind | injected | armed | fired |',
    '| --- | ---: | ---: | ---: |',
    ...report.faults.map((f) => `| ${f.kind} | ${f.injected} | ${f.armed} | ${f.fired} |`),
    '',
    '## Outcome',
    '',
    '| figure | value |',
    '| --- | ---: |',
    `| events expected (steps and heart-rate minutes of settled days) | ${report.events.expected} |`,
    `| participant-days checked | ${report.events.checkedParticipantDays} |`,
    `| events lost | ${report.events.lost} |`,
    `| events duplicated | ${report.events.duplicated} |`,
    `| events at a wrong instant or value | ${report.events.misplaced} |`,
    `| repeats anywhere in mindLAMP (findRepeats) | ${report.events.repeatsInMindLamp} |`,
    `| correction events in mindLAMP (revisions of delivered steps and active zone minutes, counted apart) | ${report.events.corrections} |`,
    `| events stored in mindLAMP | ${report.events.storedInMindLamp} |`,
    `| refresh-token reuses | ${report.refreshTokenReuse} (of ${report.refreshes} refreshes) |`,
    `| service exits not caused by the run | ${report.unexpectedExits.length} |`,
    `| longest stall of one participant's data (steady state) | ${s(report.longestStallMs)}${report.longestStallParticipant ? ` (${report.longestStallParticipant})` : ''} |`,
    `| longest time with any stream-day failed | ${s(report.longestFailedMs)} |`,
    `| stream-days seen failed | ${report.failedDaysSeen} |`,
    `| sampled, not the bound: longest from first seen failed to seen not failed (every ${s(SAMPLE_MS)}) | ${s(report.longestDayRecoveryMs)}${report.longestDayRecovery ? ` (${report.longestDayRecovery})` : ''} |`,
    '',
    ...renderDayRecovery(report.dayRecovery),
    '## Recovery',
    '',
    'A stall is the longest time a participant\'s mindLAMP event count did not grow during the steady state, while',
    'their watch synced every minute. Next write: from the fault (for restarts, from the server being back) to',
    'the next event stored in mindLAMP by anyone.',
    '',
    '| figure | value |',
    '| --- | ---: |',
    `| SIGKILL to replacement started, median | ${s(report.recovery.sigkillRestartMedianMs)} |`,
    `| SIGKILL to replacement started, max | ${s(report.recovery.sigkillRestartMaxMs)} |`,
    ...Object.entries(report.recovery.nextWriteMaxMs).map(([k, v]) => `| ${k}: next mindLAMP write, max | ${s(v!)} |`),
    `| last fault to everything fetched and delivered | ${s(report.recovery.finalCatchUpMs)} |`,
    '',
  ];
  if (report.events.problems.length) lines.push('## Differences (first ones)', '', ...report.events.problems.map((e) => `- ${e}`), '');
  if (report.unexpectedExits.length) lines.push('## Unexpected exits', '', ...report.unexpectedExits.map((e) => `- ${e}`), '');
  return lines.join('\n');
}
