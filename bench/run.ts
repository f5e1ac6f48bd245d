// `pnpm bench`: fitlamp's benchmarks (issue 7). Not tests: they measure, print a table, and write
// docs/benchmarks.md (with the machine they ran on) and bench/results.json.
//
//   pnpm bench                      # the full run (~13 min on a 2-core machine before the soak section; plus the soak)
//   pnpm bench --quick              # a small run of every section (~1-2 min), writes nothing unless --write
//   pnpm bench --sections throughput,limits --participants 100 --days 3
//   pnpm bench --sections soak      # 100 participants × 30 simulated days: the database's size per day
//   pnpm bench --scale --lock /work/wt/heavy.lock --write
//                                   # 10,000 participants at steady state on a clock at a multiple of real
//                                   # time (not in a plain `pnpm bench`: its warm-up alone takes a long while)
//   pnpm bench --sections throughput --set-baseline "old design (records table)"
//   pnpm bench --sections cockpit   # GET /admin for 1,000 participants × 28 days, timed (run it under flock: a latency)
//   pnpm bench --sections cockpit-export   # the gateway's RSS while exporting 10,000 participants × 90 days
//                                   # keeps this run's WAL and bytes kept per event as baseline.storage
import { execSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { repoRoot } from '@fitlamp/testing';
import { runFreshness, type FreshnessMode, type FreshnessResult } from './freshness.ts';
import { measureProviderReplay, measureRawLimits, type RawLimits } from './limits.ts';
import { findProfiles, summarizeProfile, type ProfileSummary } from './profile.ts';
import { carriedOverGroups, renderReport, renderTable, type BenchResults, type CarriedOver } from './report.ts';
import { runCockpit } from './cockpit.ts';
import { runScale, type ScaleResult } from './scale.ts';
import { runSoak, type SoakResult } from './soak.ts';
import { runSteady, type SteadyMode, type SteadyResult } from './steady.ts';
import { runThroughput, type ThroughputResult } from './throughput.ts';

const SECTIONS = ['throughput', 'limits', 'efficiency', 'freshness', 'scaling', 'soak', 'cockpit', 'cockpit-export', 'scale'] as const;
/** Sections a plain `pnpm bench` runs; `scale` (10,000 participants, about 2 hours with its warm-up) runs when asked for (`--scale`). */
const DEFAULT_SECTIONS = SECTIONS.filter((s) => s !== 'scale');
type Section = (typeof SECTIONS)[number];

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    sections: { type: 'string' },
    participants: { type: 'string' },
    days: { type: 'string' },
    latency: { type: 'string' },
    fetchers: { type: 'string' },
    writers: { type: 'string' },
    'fetcher-concurrency': { type: 'string' },
    'writer-concurrency': { type: 'string' },
    'shared-postgres': { type: 'boolean', default: false },
    timeout: { type: 'string' },
    'set-baseline': { type: 'string' },
    'soak-participants': { type: 'string' },
    'soak-days': { type: 'string' },
    'soak-poll': { type: 'string' },
    'soak-step': { type: 'string' },
    'scaling-participants': { type: 'string' },
    'scaling-days': { type: 'string' },
    'steady-participants': { type: 'string' },
    'steady-days': { type: 'string' },
    'steady-poll': { type: 'string' },
    'steady-mode': { type: 'string' },
    'steady-notify-after': { type: 'string' },
    'fresh-participants': { type: 'string' },
    'fresh-rounds': { type: 'string' },
    'fresh-poll': { type: 'string' },
    'cockpit-participants': { type: 'string' },
    'cockpit-days': { type: 'string' },
    'cockpit-requests': { type: 'string' },
    'export-participants': { type: 'string' },
    'export-days': { type: 'string' },
    'fresh-mode': { type: 'string' },
    'fresh-notify-after': { type: 'string' },
    scale: { type: 'boolean', default: false },
    'scale-participants': { type: 'string' },
    'scale-speeds': { type: 'string' },
    'scale-final-speed': { type: 'string' },
    'scale-search-minutes': { type: 'string' },
    'scale-hours': { type: 'string' },
    lock: { type: 'string' },
    profile: { type: 'boolean' },
    // Node 20's parseArgs has no negated booleans (allowNegative is Node 22): spelled out.
    'no-profile': { type: 'boolean', default: false },
    tsx: { type: 'boolean', default: false },
    write: { type: 'boolean' },
    render: { type: 'boolean', default: false },
    'no-write': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
const DEFAULT_FETCHER_CONCURRENCY = 32;
const DEFAULT_WRITER_CONCURRENCY = 8;
if (values.help) {
  console.log(`usage: pnpm bench [--quick] [--sections ${SECTIONS.join(',')}]
  throughput/limits/memory/storage: --participants N (200; quick 20) --days D (7; quick 2) --latency MS (200)
               --fetchers N (1) --fetcher-concurrency N (FETCHER_CONCURRENCY, ${DEFAULT_FETCHER_CONCURRENCY}) --writers N (1)
               --writer-concurrency N (LAMP_WRITER_CONCURRENCY, ${DEFAULT_WRITER_CONCURRENCY})
               --profile (default) / --no-profile: CPU profiles of the fetcher, lamp-writer and bench process
               --tsx runs the services' TypeScript source through tsx instead of their built JavaScript (as production)
               --shared-postgres runs on the machine's Postgres instead of a cluster of its own (WAL then includes others' writes)
               --timeout SECONDS (900; quick 120): the backfill stops there, finished or not
               --set-baseline LABEL keeps this run's storage figures as the baseline later runs are compared with
  soak:        --soak-participants (100; quick 4) --soak-days (30; quick 2) --soak-poll SECONDS (21600) --soak-step SECONDS (21600: simulated time per scheduler pass)
  scaling:     --scaling-participants (30; quick 10) --scaling-days (3; quick 2)
  efficiency:  --steady-participants (12; quick 4) --steady-days (2; quick 1) --steady-poll SECONDS (900)
               --steady-mode polling,webhooks (both: Fitbit polled; Google Health notifying the gateway's webhook route)
               --steady-notify-after SECONDS (5: webhooks, the simulator's notification after a sync)
  freshness:   --fresh-participants (40; quick 8) --fresh-rounds (2; quick 1) --fresh-mode polling,webhooks (both)
               --fresh-poll SECONDS (30: polling) --fresh-notify-after SECONDS (5: webhooks, the simulator's notification after a sync)
  cockpit:     --cockpit-participants (1000; quick 100) --cockpit-days (28) --cockpit-requests (20; quick 5)
  cockpit-export: --export-participants (10000; quick 500) --export-days (90)
  scale:       --scale (= --sections scale) --scale-participants (10000; quick 200) --scale-speeds (60,30,15,8,4,2,1: tried in turn, 10 simulated min each)
               --scale-search-minutes (10; quick 5) --scale-hours (2; quick 0.25: the run at the largest speed-up that kept up)
               --scale-final-speed S: that run at S instead (to fit a time budget; its fell-behind count says how the machine copes at S)
               --lock FILE: takes flock(FILE) after the warm-up, before anything is measured (e.g. /work/wt/heavy.lock)
               half the participants Fitbit (polled), half Google Health (webhooks to the gateway, a 4th process, 5 simulated s after each sync)
  output:      writes docs/benchmarks.md and bench/results.json for a full run; --write forces, --no-write skips;
               --render re-renders docs/benchmarks.md from bench/results.json and bench/analysis.md`);
  process.exit(0);
}

if (values.render) {
  // Re-render docs/benchmarks.md from bench/results.json (e.g. after editing bench/analysis.md).
  const saved = JSON.parse(readFileSync(join(repoRoot, 'bench/results.json'), 'utf8')) as BenchResults;
  writeFileSync(join(repoRoot, 'docs/benchmarks.md'), renderReport(saved, readFileSync(join(repoRoot, 'bench/analysis.md'), 'utf8')));
  console.log(renderTable(saved));
  console.log('wrote docs/benchmarks.md from bench/results.json');
  process.exit(0);
}

/** flock(file), held by a child until the answered function is called. */
function takeLock(file: string): Promise<() => void> {
  return new Promise((resolve, reject) => {
    const holder = spawn('flock', [file, 'sh', '-c', 'echo locked; exec cat'], { stdio: ['pipe', 'pipe', 'inherit'] });
    holder.once('error', reject);
    holder.stdout.once('data', () => resolve(() => holder.stdin.end()));
  });
}

const quick = values.quick;
const num = (v: string | undefined, full: number, small: number) => {
  const n = v === undefined ? (quick ? small : full) : Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`not a positive number: ${v}`);
  return n;
};
const sections = new Set<Section>(
  values.scale ? ['scale'] : values.sections ? (values.sections.split(',').map((s) => s.trim()) as Section[]) : [...DEFAULT_SECTIONS],
);
for (const s of sections) if (!SECTIONS.includes(s)) throw new Error(`unknown section "${s}" (known: ${SECTIONS.join(', ')})`);
const N = num(values.participants, 200, 20);
const D = num(values.days, 7, 2);
const latencyMs = num(values.latency, 200, 200);
const fetchers = num(values.fetchers, 1, 1);
const writers = num(values.writers, 1, 1);
const fetcherConcurrency = num(values['fetcher-concurrency'], DEFAULT_FETCHER_CONCURRENCY, DEFAULT_FETCHER_CONCURRENCY);
const writerConcurrency = num(values['writer-concurrency'], DEFAULT_WRITER_CONCURRENCY, DEFAULT_WRITER_CONCURRENCY);
if (values.profile && values['no-profile']) throw new Error('--profile and --no-profile contradict each other');
const profiling = !values['no-profile'];
const ownPostgres = !values['shared-postgres'];
const write =
  values['no-write'] ? false : (values.write ?? (!quick && !values.sections && !values.scale && !values.participants && !values.days && values['set-baseline'] === undefined));
// The previous results' baseline (the figures of the design this one replaced) is carried over.
const readPrevious = () => {
  try {
    return JSON.parse(readFileSync(join(repoRoot, 'bench/results.json'), 'utf8')) as BenchResults;
  } catch {
    return undefined;
  }
};
const previous = readPrevious();
/**
 * Where each kept section was measured: by the previous run itself, or by the earlier run the
 * previous one had carried it over from. One group per run.
 */
function carriedOverFrom(previous: BenchResults, kept: readonly string[]): CarriedOver[] {
  const earlier = carriedOverGroups(previous.machine.carriedOver);
  const groups = new Map<string, CarriedOver>();
  for (const section of kept) {
    const from = earlier.find((g) => g.sections.includes(section)) ?? previous.machine;
    const key = `${from.date}|${from.commit}`;
    const group = groups.get(key) ?? { sections: [], date: from.date, commit: from.commit };
    group.sections.push(section);
    groups.set(key, group);
  }
  return [...groups.values()];
}

const logRoot = mkdtempSync(join(os.tmpdir(), 'fitlamp-bench-'));
const log = (line: string) => console.log(line);
const started = Date.now();

const git = (cmd: string) => {
  try {
    return execSync(`git ${cmd}`, { cwd: repoRoot, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
};
const results: BenchResults = {
  machine: {
    date: new Date().toISOString(),
    commit: git('rev-parse --short HEAD'),
    dirty: git('status --porcelain --untracked-files=no -- packages services bench') !== '',
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    cpuMhz: os.cpus()[0]?.speed ?? 0,
    memoryGb: os.totalmem() / 2 ** 30,
    loadBefore: os.loadavg(),
    loadAfter: [],
    quick,
    command: `pnpm bench ${process.argv.slice(2).join(' ')}`.trim(),
  },
  ...(previous?.baseline ? { baseline: previous.baseline } : {}),
};

console.log(`fitlamp benchmarks: ${[...sections].join(', ')}${quick ? ' (quick)' : ''}; logs and profiles in ${logRoot}`);
console.log(`  machine: ${results.machine.cpus} × ${results.machine.cpuModel}, ${results.machine.memoryGb.toFixed(1)} GiB, Node ${process.version}, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);

if (sections.has('throughput') || sections.has('limits')) {
  const profileDir = profiling ? join(logRoot, 'profiles') : undefined;
  const serviceEnv = {
    fetcher: { FETCHER_CONCURRENCY: String(fetcherConcurrency) },
    'lamp-writer': { LAMP_WRITER_CONCURRENCY: String(writerConcurrency) },
  };
  log(
    `\n[throughput] backfill of ${N} participants × ${D} days, ${fetchers} fetcher(s) at FETCHER_CONCURRENCY=${fetcherConcurrency}, ` +
      `${writers} lamp-writer(s) at LAMP_WRITER_CONCURRENCY=${writerConcurrency}, provider latency ${latencyMs} ms, ` +
      `services ${values.tsx ? 'from source through tsx' : 'built (node dist/main.js)'}, Postgres ${ownPostgres ? 'a cluster of its own' : "the machine's"}`,
  );
  const t: ThroughputResult = await runThroughput({
    participants: N,
    days: D,
    fetchers,
    writers,
    serviceEnv,
    ownPostgres,
    latencyMs,
    logDir: join(logRoot, 'throughput'),
    timeoutMs: num(values.timeout, 900, 120) * 1000,
    keepStack: sections.has('limits'),
    ...(profileDir ? { profileDir } : {}),
    built: !values.tsx,
    log,
  });
  const { stack, providerRequestLog, ...throughput } = t;
  results.throughput = throughput;
  log(`    ${throughput.events} events in ${throughput.seconds.toFixed(1)} s: ${throughput.eventsPerSecond.toFixed(0)} events/s (${throughput.finished ? 'finished' : 'NOT finished'})`);
  const st = throughput.storage;
  if (st) {
    log(
      `    storage (${st.postgres}): WAL ${(st.walBytes / 2 ** 20).toFixed(1)} MiB = ${st.walBytesPerEvent.toFixed(0)} bytes/event; ` +
        `kept ${(st.keptBytes / 2 ** 20).toFixed(1)} MiB = ${st.keptBytesPerEvent.toFixed(0)} bytes/event (database ${(st.databaseBytes / 2 ** 20).toFixed(1)} MiB, empty schema ${(st.emptyDatabaseBytes / 2 ** 20).toFixed(1)} MiB)`,
    );
    log(`    largest tables: ${st.largest.map((x) => `${x.name} ${(x.bytes / 2 ** 20).toFixed(1)} MiB`).join(', ')}`);
    if (values['set-baseline'] !== undefined && !throughput.finished) log('    NOT kept as the baseline: the backfill did not finish (raise --timeout)');
    else if (values['set-baseline'] !== undefined) {
      results.baseline = {
        storage: {
          label: values['set-baseline'],
          date: results.machine.date,
          commit: results.machine.commit,
          participants: throughput.participants,
          days: throughput.days,
          events: st.events,
          postgres: st.postgres,
          walBytesPerEvent: st.walBytesPerEvent,
          keptBytesPerEvent: st.keptBytesPerEvent,
        },
      };
      log(`    kept as the baseline: "${values['set-baseline']}"`);
    }
  }
  if (stack) {
    log('\n[limits] raw limits of this machine for the same work, same run');
    try {
      results.limits = await measureRawLimits(stack.db, stack.adminDatabaseUrl, quick ? 100_000 : 400_000, log);
      if (providerRequestLog?.length) {
        results.limits.providerReplay = await measureProviderReplay(
          {
            baseUrl: stack.fitbitUrl,
            requests: providerRequestLog,
            concurrency: fetchers * fetcherConcurrency,
            events: throughput.events,
            emptyCache: () => {
              stack.fitbit.world.cache.clear();
              stack.fitbit.world.stepTotals.clear();
            },
          },
          log,
        );
      }
    } finally {
      await stack.stop();
    }
  }
  if (profileDir) {
    const summaries: ProfileSummary[] = findProfiles(profileDir).map((f) => summarizeProfile(f, repoRoot));
    results.profiles = summaries;
    for (const p of summaries) {
      log(`    profile ${p.file}: busy ${(p.busy * 100).toFixed(0)}% of ${p.seconds.toFixed(0)} s; top: ${p.modules.slice(0, 4).map((m) => `${m.name} ${(m.share * 100).toFixed(0)}%`).join(', ')}`);
    }
  }
}

if (sections.has('scaling')) {
  const sn = num(values['scaling-participants'], 30, 10);
  const sd = num(values['scaling-days'], 3, 2);
  log(`\n[scaling] ${sn} participants × ${sd} days with 1/2/4 fetchers × 1/2 lamp-writers`);
  results.scaling = [];
  for (const writers of [1, 2]) {
    for (const fetchers of [1, 2, 4]) {
      const r = await runThroughput({
        participants: sn,
        days: sd,
        fetchers,
        writers,
        latencyMs,
        logDir: join(logRoot, `scaling-${fetchers}f-${writers}w`),
        timeoutMs: 300_000,
        built: !values.tsx,
        log: () => {},
      });
      const { stack: _unused, ...rest } = r;
      results.scaling.push(rest);
      log(`    ${fetchers} fetcher(s), ${writers} writer(s): ${r.eventsPerSecond.toFixed(0)} events/s (steady ${r.steadyEventsPerSecond.toFixed(0)}), ${r.seconds.toFixed(1)} s${r.finished ? '' : ' NOT finished'}`);
    }
  }
}

if (sections.has('efficiency')) {
  const sp = num(values['steady-participants'], 12, 4);
  const sd = num(values['steady-days'], 2, 1);
  const poll = num(values['steady-poll'], 900, 900);
  const notifyAfterMs = num(values['steady-notify-after'], 5, 5) * 1000;
  const modes = (values['steady-mode'] ?? 'polling,webhooks').split(',').map((m) => m.trim());
  for (const m of modes) if (m !== 'polling' && m !== 'webhooks') throw new Error(`unknown --steady-mode "${m}" (known: polling, webhooks)`);
  for (const mode of modes as SteadyMode[]) {
    log(
      `\n[efficiency, ${mode}] ${sp} participants, ${sd} simulated days, ` +
        (mode === 'polling' ? `Fitbit polled every ${poll} s` : `Google Health webhooks ${notifyAfterMs / 1000} s after each sync, polling every ${poll} s`),
    );
    const r: SteadyResult = await runSteady({
      mode,
      notifyAfterMs,
      participants: sp,
      simDays: sd,
      pollSeconds: poll,
      stepSeconds: 120,
      backfillDays: 7,
      refetchDays: 3,
      startAt: '2026-11-20T12:00:00Z',
      log,
    });
    if (mode === 'polling') results.efficiency = r;
    else results.efficiencyWebhooks = r;
    log(`    by endpoint: ${Object.entries(r.byEndpoint).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ')}`);
    log(`    minimum by stream: ${Object.entries(r.minimumByStream).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ')}`);
    for (const [k, p] of Object.entries(r.byPreset)) {
      log(
        `    ${k}: ${p.syncsPerDay.toFixed(1)} device syncs and ${p.pollsPerDay.toFixed(1)} polls${p.webhookSyncsPerDay !== undefined ? ` (${p.webhookSyncsPerDay.toFixed(1)} asked by a notification)` : ''} per participant-day, ${p.requests} requests / minimum ${p.minimum} = ${p.ratio.toFixed(2)}×` +
          (p.notifications !== undefined ? ` (notifications ${p.notifications} / ${p.minimumNotifications})` : '') +
          `; sync → poll p50 ${(p.freshness.p50 / 60).toFixed(1)} min, p95 ${(p.freshness.p95 / 60).toFixed(1)} min over ${p.freshness.samples} syncs (${p.freshness.syncsWithoutNewData} without new data); ` +
          Object.entries(p.byEndpoint).sort((a, b) => b[1] - a[1]).map(([e, n]) => `${e} ${n}`).join(', '),
      );
    }
    log(`    429s ${r.rateLimited}; errors ${JSON.stringify(r.syncErrors)}; outcomes ${JSON.stringify(r.outcomes)}`);
    log(
      `    ${r.requestsPerParticipantDay.toFixed(1)} ${mode === 'webhooks' ? 'requests + notifications' : 'requests'} per participant-day vs a minimum of ${r.minimumPerParticipantDay.toFixed(1)}: ${r.ratio.toFixed(2)}×` +
        (r.notifications !== undefined ? ` (API requests ${r.providerRequests} / ${r.minimumProviderRequests}, notifications ${r.notifications} / ${r.minimumNotifications})` : '') +
        ` (POLL_MAX_INTERVAL_SECONDS=${r.pollMaxSeconds}; ${r.realSeconds.toFixed(0)} s)`,
    );
  }
}

if (sections.has('soak')) {
  const sp = num(values['soak-participants'], 100, 4);
  const sd = num(values['soak-days'], 30, 2);
  const poll = num(values['soak-poll'], 21_600, 21_600);
  const stepSeconds = num(values['soak-step'], 21_600, 21_600);
  log(`\n[soak] ${sp} participants, ${sd} simulated days at steady state, polling every ${poll} s, fetcher and lamp-writer processors in process`);
  const r: SoakResult = await runSoak({ participants: sp, simDays: sd, pollSeconds: poll, backfillDays: 7, refetchDays: 3, startAt: '2026-10-01T12:00:00Z', ownPostgres, stepSeconds, log });
  results.soak = r;
  log(
    `    ${((r.days.at(-1)?.keptBytes ?? 0) / 2 ** 20).toFixed(1)} MiB over the empty schema after ${sd} simulated days, ` +
      `${(r.bytesPerParticipant / 2 ** 20).toFixed(2)} MiB per participant; growth day 15 → 30 ${r.growthDay15To30 === undefined ? 'not reached' : `${(r.growthDay15To30 * 100).toFixed(1)}%`} (${r.realSeconds.toFixed(0)} s)`,
  );
}

if (sections.has('freshness')) {
  const fp = num(values['fresh-participants'], 40, 8);
  const rounds = num(values['fresh-rounds'], 2, 1);
  const poll = num(values['fresh-poll'], 30, 30);
  const notifyAfterMs = num(values['fresh-notify-after'], 5, 5) * 1000;
  const modes = (values['fresh-mode'] ?? 'polling,webhooks').split(',').map((m) => m.trim());
  for (const m of modes) if (m !== 'polling' && m !== 'webhooks') throw new Error(`unknown --fresh-mode "${m}" (known: polling, webhooks)`);
  const show = (s: number | null, window: number) => (s === null ? `> ${window} s` : `${s.toFixed(1)} s`);
  for (const mode of modes as FreshnessMode[]) {
    // With webhooks, polling stays at the production default (900 s, ×4 while webhooks deliver): the notification is what brings the data.
    const pollSeconds = mode === 'polling' ? poll : 900;
    log(
      `\n[freshness, ${mode}] ${fp} participants, ${rounds} round(s) of device syncs, ` +
        (mode === 'polling' ? `Fitbit polled every ${pollSeconds} s` : `Google Health webhooks ${notifyAfterMs / 1000} s after each sync, polling every ${pollSeconds} s`),
    );
    const r: FreshnessResult = await runFreshness({ mode, participants: fp, rounds, pollSeconds, notifyAfterMs, latencyMs, logDir: join(logRoot, `freshness-${mode}`), built: !values.tsx, log });
    if (mode === 'polling') results.freshness = r;
    else results.freshnessWebhooks = r;
    log(
      `    p50 ${show(r.p50, r.windowSeconds)}, p95 ${show(r.p95, r.windowSeconds)}, p99 ${show(r.p99, r.windowSeconds)} over ${r.samples} syncs with new data ` +
        `(${r.missed} not delivered within ${r.windowSeconds} s); ${r.withoutNewData} of ${r.syncs} syncs brought no new data (${r.withoutNewDataDelivered} of them delivered something); load ${r.loadBefore.map((l) => l.toFixed(1)).join('/')} → ${r.loadAfter.map((l) => l.toFixed(1)).join('/')}`,
    );
  }
}

if (sections.has('cockpit') || sections.has('cockpit-export')) {
  const overview = sections.has('cockpit')
    ? { participants: num(values['cockpit-participants'], 1_000, 100), days: num(values['cockpit-days'], 28, 28), requests: num(values['cockpit-requests'], 20, 5) }
    : undefined;
  const exporting = sections.has('cockpit-export') ? { participants: num(values['export-participants'], 10_000, 500), days: num(values['export-days'], 90, 90) } : undefined;
  log(
    `\n[cockpit] the gateway (built, NODE_ENV=production) over a seeded study:` +
      `${overview ? ` GET /admin for ${overview.participants} participants × ${overview.days} days, ${overview.requests} timed requests;` : ''}` +
      `${exporting ? ` compliance.csv for ${exporting.participants} participants × ${exporting.days} days, RSS sampled;` : ''}` +
      ` Postgres ${ownPostgres ? 'a cluster of its own' : "the machine's"}`,
  );
  const profileDir = profiling ? join(logRoot, 'cockpit-profiles') : undefined;
  const r = await runCockpit({ ...(overview ? { overview } : {}), ...(exporting ? { export: exporting } : {}), ownPostgres, ...(profileDir ? { profileDir } : {}), log });
  for (const p of profileDir ? findProfiles(profileDir).map((f) => summarizeProfile(f, repoRoot)) : []) {
    log(`    profile ${p.file}: busy ${(p.busy * 100).toFixed(0)}% of ${p.seconds.toFixed(0)} s; top: ${p.functions.slice(0, 8).map((m) => `${m.name} ${(m.share * 100).toFixed(0)}%`).join(', ')}`);
  }
  const command = `pnpm bench ${process.argv.slice(2).join(' ')}`.trim();
  if (r.overview) results.cockpit = { ...r.overview, command, commit: results.machine.commit };
  if (r.export) results.cockpitExport = { ...r.export, command, commit: results.machine.commit };
}

if (sections.has('scale')) {
  const sp = num(values['scale-participants'], 10_000, 200);
  const speeds = (values['scale-speeds'] ?? '60,30,15,8,4,2,1').split(',').map((v) => num(v, 1, 1));
  const hours = values['scale-hours'] === undefined ? (quick ? 0.25 : 2) : Number(values['scale-hours']);
  log(`\n[scale] ${sp} participants at steady state; speed-ups tried ${speeds.join(', ')}; then ${hours} simulated h at the largest that kept up`);
  let release: (() => void) | undefined;
  const r: ScaleResult = await runScale({
    participants: sp,
    speeds,
    searchMinutes: num(values['scale-search-minutes'], 10, 5),
    hours,
    ...(values['scale-final-speed'] !== undefined ? { finalSpeed: num(values['scale-final-speed'], 1, 1) } : {}),
    pollSeconds: 900,
    pollMaxSeconds: 21_600,
    fetcherConcurrency: num(values['fetcher-concurrency'], 8, 8),
    writerConcurrency: num(values['writer-concurrency'], 4, 4),
    startAt: '2026-11-20T13:05:00Z',
    normalPriority: values.lock !== undefined,
    log,
    ...(values.lock
      ? {
          beforeMeasuring: async () => {
            log(`    waiting for ${values.lock} (load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')})`);
            release = await takeLock(values.lock!);
            log(`    holding ${values.lock} (load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')})`);
          },
        }
      : {}),
  });
  release?.();
  results.scale = r;
}

results.machine.loadAfter = os.loadavg();
results.machine.seconds = (Date.now() - started) / 1000;
console.log(`\n${renderTable(results)}`);
const SECTION_KEYS = ['throughput', 'limits', 'profiles', 'scaling', 'efficiency', 'efficiencyWebhooks', 'freshness', 'freshnessWebhooks', 'soak', 'cockpit', 'cockpitExport', 'scale'] as const;
const analysis = () => readFileSync(join(repoRoot, 'bench/analysis.md'), 'utf8');
if (write) {
  // A partial run (--sections) replaces the sections it ran and keeps the others of the last run,
  // saying which and from when. Read again now: another partial run (a soak takes an hour) may
  // have written its sections since this one started.
  const previous = readPrevious();
  if (previous?.baseline && values['set-baseline'] === undefined) results.baseline = previous.baseline;
  const kept = (values.sections || values.scale) && previous && !quick ? SECTION_KEYS.filter((k) => results[k] === undefined && previous[k] !== undefined) : [];
  const saved: BenchResults =
    kept.length > 0 && previous
      ? {
          ...results,
          ...Object.fromEntries(kept.map((k) => [k, previous[k]])),
          machine: { ...results.machine, carriedOver: carriedOverFrom(previous, kept) },
        }
      : results;
  writeFileSync(join(repoRoot, 'docs/benchmarks.md'), renderReport(saved, analysis()));
  writeFileSync(join(repoRoot, 'bench/results.json'), `${JSON.stringify(saved, null, 2)}\n`);
  console.log('wrote docs/benchmarks.md and bench/results.json');
} else if (values['set-baseline'] !== undefined && results.baseline && previous && !values['no-write']) {
  // A baseline run changes only the baseline: the other figures stay those of the last full run.
  const kept: BenchResults = { ...previous, baseline: results.baseline };
  writeFileSync(join(repoRoot, 'docs/benchmarks.md'), renderReport(kept, analysis()));
  writeFileSync(join(repoRoot, 'bench/results.json'), `${JSON.stringify(kept, null, 2)}\n`);
  console.log('wrote the baseline into bench/results.json and re-rendered docs/benchmarks.md');
}
console.log(`done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
process.exit(0);
