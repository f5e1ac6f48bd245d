// The printed table and docs/benchmarks.md, from the measured results.
import { STREAMS } from '@fitlamp/provider';
import type { ExportBenchResult, OverviewBenchResult } from './cockpit.ts';
import type { FreshnessResult } from './freshness.ts';
import type { RawLimits } from './limits.ts';
import type { ProfileSummary } from './profile.ts';
import type { ScaleResult, ScalePhase } from './scale.ts';
import type { SoakResult } from './soak.ts';
import type { SteadyResult } from './steady.ts';
import type { ThroughputResult } from './throughput.ts';

/** Sections kept from one earlier run, with that run's date and commit. */
export interface CarriedOver {
  sections: string[];
  date: string;
  commit: string;
}

/** The groups of {@link CarriedOver}, whichever shape the results hold. */
export function carriedOverGroups(c: CarriedOver | CarriedOver[] | undefined): CarriedOver[] {
  return c === undefined ? [] : Array.isArray(c) ? c : [c];
}

export interface BenchResults {
  machine: {
    date: string;
    commit: string;
    dirty: boolean;
    node: string;
    platform: string;
    cpus: number;
    cpuModel: string;
    cpuMhz: number;
    memoryGb: number;
    loadBefore: number[];
    loadAfter: number[];
    quick: boolean;
    command: string;
    seconds?: number;
    /**
     * Sections a partial `--write` run kept from earlier runs, with the date and commit of the run
     * that measured them (one group per run; a single group in results written before groups).
     */
    carriedOver?: CarriedOver | CarriedOver[];
  };
  throughput?: Omit<ThroughputResult, 'stack'>;
  limits?: RawLimits;
  profiles?: ProfileSummary[];
  scaling?: Array<Omit<ThroughputResult, 'stack'>>;
  efficiency?: SteadyResult;
  /** Section 2 with Google Health webhooks (issue 14 item 5). */
  efficiencyWebhooks?: SteadyResult;
  /** Freshness at 30 s polling (Fitbit). */
  freshness?: FreshnessResult;
  /** Freshness through Google Health webhooks. */
  freshnessWebhooks?: FreshnessResult;
  soak?: SoakResult;
  /** The study overview's render time (section 7), with the command and commit it ran at. */
  cockpit?: OverviewBenchResult & { command: string; commit: string };
  /** The gateway's memory while streaming the compliance export (section 7). */
  cockpitExport?: ExportBenchResult & { command: string; commit: string };
  scale?: ScaleResult;
  /** Figures of a design this one is measured against (kept across runs, set by --set-baseline). */
  baseline?: { storage?: StorageBaseline };
}

export interface StorageBaseline {
  /** Which design, e.g. "old design (records table)". */
  label: string;
  date: string;
  commit: string;
  participants: number;
  days: number;
  events: number;
  postgres: string;
  walBytesPerEvent: number;
  keptBytesPerEvent: number;
}

const MB = 2 ** 20;
const mib = (bytes: number) => `${(bytes / MB).toFixed(bytes < 10 * MB ? 2 : 1)} MiB`;
const f0 = (n: number) => Math.round(n).toLocaleString('en-US');
const f1 = (n: number) => n.toFixed(1);
const pct = (n: number) => `${(n * 100).toFixed(0)}%`;
/** A latency that may lie beyond the watch window (null). */
const seconds = (s: number | null, window: number) => (s === null ? `> ${window} s` : `${f1(s)} s`);
const minutes = (s: number) => `${(s / 60).toFixed(1)} min`;

/** The tightest raw limit in events/s and what it is. */
export function tightestLimit(r: BenchResults): { name: string; eventsPerSecond: number } | undefined {
  if (!r.limits) return undefined;
  const l = r.limits;
  const candidates = [
    { name: 'Postgres: insert + claim + deliver of the same rows', eventsPerSecond: l.postgresOutboxRowsPerSecond },
    { name: 'Postgres: insert of the same rows', eventsPerSecond: l.postgresInsertRowsPerSecond },
    { name: 'mindLAMP simulator accept rate', eventsPerSecond: l.lampAcceptEventsPerSecond },
  ];
  if (l.providerReplay) candidates.push({ name: "provider side: the backfill's requests replayed by a bare client", eventsPerSecond: l.providerReplay.eventsPerSecond });
  // BullMQ carries jobs, not events: at the pipeline's events per participant, two jobs each
  // (one sync, one delivery) move this many events per second.
  if (r.throughput && r.throughput.participants > 0) {
    const perParticipant = r.throughput.events / r.throughput.participants;
    candidates.push({ name: 'BullMQ round trip (2 jobs per participant)', eventsPerSecond: (l.bullmqJobsPerSecond * perParticipant) / 2 });
  }
  return candidates.sort((a, b) => a.eventsPerSecond - b.eventsPerSecond)[0];
}

interface Target {
  name: string;
  target: string;
  measured: string;
  met: boolean | undefined;
}

export function targets(r: BenchResults): Target[] {
  const out: Target[] = [];
  const t = r.throughput;
  if (t) {
    out.push({ name: 'Backfill, end to end', target: '≥ 20,000 events/s', measured: `${f0(t.eventsPerSecond)} events/s`, met: t.finished && t.eventsPerSecond >= 20_000 });
    const tight = tightestLimit(r);
    if (tight) {
      const share = t.eventsPerSecond / tight.eventsPerSecond;
      out.push({ name: 'Backfill vs tightest raw limit', target: '≥ 25%', measured: `${pct(share)} of ${f0(tight.eventsPerSecond)}/s (${tight.name})`, met: share >= 0.25 });
    }
    const worst = [...t.services].sort((a, b) => (b.peakRssBytes ?? 0) - (a.peakRssBytes ?? 0))[0];
    if (worst) {
      out.push({
        name: 'Peak RSS, every service',
        target: '< 250 MiB',
        measured: `max ${f0((worst.peakRssBytes ?? 0) / MB)} MiB (${worst.name}${t.built ? '' : ', from source through tsx'})`,
        met: (worst.peakRssBytes ?? 0) < 250 * MB,
      });
    }
  }
  const st = t?.storage;
  const base = r.baseline?.storage;
  if (st) {
    const ratio = base ? st.walBytesPerEvent / base.walBytesPerEvent : undefined;
    out.push({
      name: 'Postgres WAL per event, backfill',
      target: base ? `≤ 1/3 of the ${base.label}'s ${f0(base.walBytesPerEvent)} bytes` : '≤ 1/3 of the old design (no baseline recorded)',
      measured: `${f0(st.walBytesPerEvent)} bytes${ratio !== undefined ? ` (${ratio.toFixed(2)} × old)` : ''}`,
      met: ratio === undefined ? undefined : t!.finished && ratio <= 1 / 3,
    });
    out.push({
      name: 'Postgres bytes kept per event, after delivery',
      target: '',
      measured: `${f0(st.keptBytesPerEvent)} bytes${base ? ` (${(st.keptBytesPerEvent / base.keptBytesPerEvent).toFixed(2)} × old: ${f0(base.keptBytesPerEvent)})` : ''}`,
      met: undefined,
    });
  }
  const so = r.soak;
  if (so) {
    const g = so.growthDay15To30;
    out.push({
      name: 'Soak: database growth, simulated day 15 → 30',
      target: '≤ 10%',
      measured: g !== undefined ? pct(g) : `not reached (${so.simDays}-day run; second half: ${pct(so.growthSecondHalf)})`,
      met: g === undefined ? undefined : g <= 0.1,
    });
    out.push({
      name: 'Soak: Postgres bytes per participant',
      target: '≤ 1 MiB',
      measured: `${mib(so.bytesPerParticipant)} after ${so.simDays} simulated days`,
      met: so.simDays >= 30 ? so.bytesPerParticipant <= MB : undefined,
    });
  }
  // Sections 2 and 2b: each preset, and all, within 1.5 × the world-derived minimum.
  const e = r.efficiency;
  const w = r.efficiencyWebhooks;
  const efficiency = [
    { s: e?.byPreset && Object.values(e.byPreset)[0]?.byEndpoint ? e : undefined, label: 'provider requests', webhooks: false },
    { s: w?.byPreset ? w : undefined, label: 'requests + notifications, webhooks', webhooks: true },
  ];
  for (const { s, label, webhooks } of efficiency) {
    if (!s) continue;
    for (const [name, p] of Object.entries(s.byPreset)) {
      const notifications = webhooks ? `; notifications ${f0(p.notifications ?? 0)} vs ${f0(p.minimumNotifications ?? 0)}` : '';
      out.push({ name: `Steady-state ${label}, ${name}`, target: '≤ 1.5 × minimum', measured: `${p.ratio.toFixed(2)} × (${f0(p.requests)} vs ${f0(p.minimum)}${notifications})`, met: p.ratio <= 1.5 });
    }
    out.push({ name: `Steady-state ${label}, all`, target: '≤ 1.5 × minimum', measured: `${s.ratio.toFixed(2)} × (${f1(s.requestsPerParticipantDay)} vs ${f1(s.minimumPerParticipantDay)} per participant-day)`, met: s.ratio <= 1.5 });
  }
  for (const fr of [r.freshness, r.freshnessWebhooks]) {
    if (!fr?.mode) continue;
    out.push({
      name: fr.mode === 'polling' ? `Freshness p95, polling every ${fr.pollSeconds} s` : `Freshness p95, webhooks ${fr.notifyAfterSeconds} s after the sync`,
      target: '≤ 60 s',
      measured: `${seconds(fr.p95, fr.windowSeconds)} (${fr.samples} syncs, ${fr.missed} missed)`,
      met: fr.samples > 0 && fr.p95 !== null && fr.p95 <= 60,
    });
  }
  const sc = r.scale;
  const realTime = (sc?.final?.speed === 1 ? sc.final : undefined) ?? sc?.search.find((p) => p.speed === 1);
  if (sc && realTime) {
    out.push({
      name: `Scale: ${f0(sc.participants)} participants at 1 ×, syncs fell behind`,
      target: '0',
      measured: `${f0(realTime.fellBehind)} of ${f0(realTime.syncs)} in ${f0(realTime.simSeconds / 60)} simulated min${sc.final && sc.final !== realTime ? ` (long run, ${f0(sc.final.simSeconds / 60)} simulated min at ${sc.final.speed} ×: ${f0(sc.final.fellBehind)} of ${f0(sc.final.syncs)})` : ''}`,
      met: realTime.fellBehind === 0,
    });
  }
  out.push(...cockpitTargets(r));
  return out;
}

/** The replica counts and concurrency a throughput run used, as the docs state them. */
export function settings(t: Omit<ThroughputResult, 'stack'>): string {
  const env = { ...t.serviceEnv?.fetcher, ...t.serviceEnv?.['lamp-writer'] };
  const fc = env.FETCHER_CONCURRENCY ?? '8 (default)';
  const wc = env.LAMP_WRITER_CONCURRENCY ?? '4 (default)';
  return `${t.fetchers} fetcher${t.fetchers === 1 ? '' : 's'} at \`FETCHER_CONCURRENCY=${fc}\`, ${t.writers} lamp-writer${t.writers === 1 ? '' : 's'} at \`LAMP_WRITER_CONCURRENCY=${wc}\``;
}

export function renderTable(r: BenchResults): string {
  const rows: string[][] = [['measure', 'target', 'measured', '']];
  for (const t of targets(r)) rows.push([t.name, t.target, t.measured, t.met === undefined ? '' : t.met ? 'met' : 'MISSED']);
  if (r.throughput) {
    for (const s of r.throughput.services) {
      rows.push([`  ${s.name}-${s.replica} peak RSS / CPU`, '', `${f0((s.peakRssBytes ?? 0) / MB)} MiB, ${s.cpuCores.toFixed(2)} cores mean, ${s.peakCores.toFixed(2)} peak`, '']);
    }
  }
  if (r.throughput) rows.push(['  Postgres backends CPU', '', `${r.throughput.postgresCores.toFixed(2)} cores mean, ${r.throughput.postgresPeakCores.toFixed(2)} peak`, '']);
  const st = r.throughput?.storage;
  if (st) rows.push(['  Postgres WAL / kept', '', `${mib(st.walBytes)} / ${mib(st.keptBytes)} for ${f0(st.events)} events (${st.postgres})`, '']);
  if (r.limits) {
    rows.push(['  raw: Postgres insert', '', `${f0(r.limits.postgresInsertRowsPerSecond)} rows/s`, '']);
    rows.push(['  raw: Postgres insert+claim+deliver', '', `${f0(r.limits.postgresOutboxRowsPerSecond)} rows/s`, '']);
    rows.push(['  raw: mindLAMP simulator accept', '', `${f0(r.limits.lampAcceptEventsPerSecond)} events/s`, '']);
    rows.push(['  raw: BullMQ round trip', '', `${f0(r.limits.bullmqJobsPerSecond)} jobs/s, p50 ${f1(r.limits.bullmqRoundTripP50Ms)} ms`, '']);
  }
  for (const s of r.scaling ?? []) {
    rows.push([`  scaling ${s.fetchers}F × ${s.writers}W`, '', `${f0(s.eventsPerSecond)} events/s (steady ${f0(s.steadyEventsPerSecond)})`, '']);
  }
  for (const fr of [r.freshness, r.freshnessWebhooks]) {
    if (fr?.mode) rows.push([`  freshness (${fr.mode}) p50 / p99`, '', `${seconds(fr.p50, fr.windowSeconds)} / ${seconds(fr.p99, fr.windowSeconds)} (${fr.samples} syncs, ${fr.withoutNewData} without new data)`, '']);
  }
  for (const [name, p] of Object.entries(r.efficiency?.byPreset ?? {})) {
    if (p.freshness) rows.push([`  sync → poll, ${name}, default interval`, '', `p50 ${minutes(p.freshness.p50)}, p95 ${minutes(p.freshness.p95)}`, '']);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row, j) => row.map((c, i) => c.padEnd(widths[i]!)).join('  ') + (j === 0 ? `\n${widths.map((w) => '-'.repeat(w)).join('  ')}` : '')).join('\n');
}

const mdTable = (head: string[], rows: Array<Array<string | number>>) =>
  [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');

export function renderReport(r: BenchResults, analysis: string): string {
  const m = r.machine;
  const parts: string[] = [];
  parts.push(`# Benchmarks

Generated by \`${m.command}\` (\`bench/run.ts\`); raw figures in [\`bench/results.json\`](../bench/results.json).
Benchmarks are not tests: they measure this machine at this moment. Re-run them before relying on
a figure: \`pnpm bench\` (every section; 13 minutes before the soak section was added, which adds its own
time, printed as it runs) rewrites this
page and \`bench/results.json\`, keeping \`baseline.storage\` (the old storage design's figures, which
the storage targets are ratios to); the prose at the end comes from \`bench/analysis.md\` and
\`pnpm bench --render\` re-renders the page after editing it.

## Machine

| | |
|---|---|
| date | ${m.date} |
| commit | ${m.commit}${m.dirty ? ' (with uncommitted changes in the working tree)' : ''} |
| CPU | ${m.cpus} × ${m.cpuModel}${m.cpuMhz ? ` @ ${m.cpuMhz} MHz` : ''} |
| memory | ${m.memoryGb.toFixed(1)} GiB |
| OS | ${m.platform} |
| Node | ${m.node} |
| load average (1/5/15 min) | before ${m.loadBefore.map((l) => l.toFixed(2)).join(' / ')}, after ${m.loadAfter.map((l) => l.toFixed(2)).join(' / ')} |${
    m.carriedOver
      ? `\n| sections from an earlier run | ${carriedOverGroups(m.carriedOver).map((g) => `${g.sections.join(', ')}: measured ${g.date.slice(0, 10)}, commit ${g.commit}`).join('; ')} |`
      : ''
  }
| run time | ${m.seconds ? `${f0(m.seconds)} s` : ''} |

This is a shared 2-core development machine: other sessions' test suites ran during the
benchmarks (the load averages above), and Postgres, Redis, the simulators and the services all
share the same two cores. What that does to each kind of figure: rates (events/s, rows/s, jobs/s)
are what this loaded machine gave, and a quiet one gives more; latencies (freshness, BullMQ round
trip) are longer than on a quiet machine; counts (events, provider requests and their ratio to the
minimum) do not depend on load; WAL bytes depend on it a little (a slower run spans more
checkpoints, and the first change to a page after a checkpoint writes the whole page); database
sizes and peak memory (RSS, in MiB) depend on it little, and not in a known direction.

## Targets
`);
  parts.push(mdTable(['measure', 'target', 'measured', ''], targets(r).map((t) => [t.name, t.target, t.measured, t.met === undefined ? '' : t.met ? 'met' : '**missed**'])));

  const t = r.throughput;
  if (t) {
    parts.push(`
## 1. Throughput (backfill)

${t.participants} participants × ${t.days} days (1-minute steps and heart rate, sleep stages, the
daily streams), all four services as processes (${settings(t)}),
the Fitbit simulator answering every data request after ${t.latencyMs} ms, the mindLAMP simulator
in the bench process. Measured from the first participant's consent to the last event stored in
mindLAMP.

| | |
|---|---|
| finished | ${t.finished ? 'yes' : '**no** (stopped at the deadline; figures are for what finished)'} |
| events in mindLAMP | ${f0(t.events)} (duplicates: ${t.duplicates}) |
| provider requests | ${f0(t.providerRequests)} (${f1(t.providerRequests / t.participants)} per participant) |
| time | ${f1(t.seconds)} s (enrolment of all participants ${f1(t.connectSeconds)} s, first event after ${f1(t.firstEventSeconds)} s) |
| **events/s end to end** | **${f0(t.eventsPerSecond)}** |
| events/s between 10% and 90% of the events | ${f0(t.steadyEventsPerSecond)} |
| CPU, mean over the run (cores) | fetcher ${t.services.filter((x) => x.name === 'fetcher').reduce((a, x) => a + x.cpuCores, 0).toFixed(2)}, lamp-writer ${t.services.filter((x) => x.name === 'lamp-writer').reduce((a, x) => a + x.cpuCores, 0).toFixed(2)}, this stack's Postgres backends ${t.postgresCores.toFixed(2)} (busiest second ${t.postgresPeakCores.toFixed(2)}), bench process with the simulators ${t.benchProcessCores.toFixed(2)} |
`);
  }
  if (r.limits) {
    const l = r.limits;
    const tight = tightestLimit(r);
    parts.push(`### Raw limits of this machine, same run

The same work without fitlamp around it, over ${f0(l.rows)} of the rows the pipeline stored:

${mdTable(['limit', 'measured', 'pipeline as a share'], [
  ['Postgres: INSERT of the same events as outbox chunks (one row per participant × stream × day), 4 at a time (same driver: pg via Kysely)', `${f0(l.postgresInsertRowsPerSecond)} events/s`, t ? pct(t.eventsPerSecond / l.postgresInsertRowsPerSecond) : ''],
  ['Postgres: the outbox life of those chunks (insert, claim 10 chunks at a time per participant, mark delivered)', `${f0(l.postgresOutboxRowsPerSecond)} events/s`, t ? pct(t.eventsPerSecond / l.postgresOutboxRowsPerSecond) : ''],
  ['mindLAMP simulator: POSTs of 1,000 events, 4 at a time', `${f0(l.lampAcceptEventsPerSecond)} events/s`, t ? pct(t.eventsPerSecond / l.lampAcceptEventsPerSecond) : ''],
  ['BullMQ: add → worker (concurrency 8) → completed, 2,000 jobs', `${f0(l.bullmqJobsPerSecond)} jobs/s (p50 ${f1(l.bullmqRoundTripP50Ms)} ms)`, ''],
  ...(l.providerReplay
    ? [[`Provider side: the backfill's ${f0(l.providerReplay.requests)} Fitbit requests replayed by a bare client (a process of its own, ${l.providerReplay.concurrency} at a time, reading and parsing each answer) against the same simulator, latency included, its day cache emptied first`, `${f0(l.providerReplay.eventsPerSecond)} events/s (${f1(l.providerReplay.seconds)} s${Object.keys(l.providerReplay.failed).length ? `; failed ${JSON.stringify(l.providerReplay.failed)}` : ''})`, t ? pct(t.eventsPerSecond / l.providerReplay.eventsPerSecond) : '']]
    : []),
])}

Tightest: **${tight?.name}** at ${f0(tight?.eventsPerSecond ?? 0)} events/s; the pipeline reaches
**${t && tight ? pct(t.eventsPerSecond / tight.eventsPerSecond) : '?'}** of it.
`);
  }
  if (r.profiles?.length) {
    parts.push(`### CPU profiles (self time, share of busy time)
`);
    for (const p of r.profiles) {
      parts.push(`**${p.file.split('/').slice(-2).join('/')}** — busy ${pct(p.busy)} of ${f0(p.seconds)} s.

${mdTable(['module', 'share'], p.modules.slice(0, 8).map((x) => [`\`${x.name}\``, pct(x.share)]))}

${mdTable(['function', 'share'], p.functions.slice(0, 10).map((x) => [`\`${x.name.replace(/\|/g, '\\|')}\``, pct(x.share)]))}
`);
    }
  }
  if (t) {
    parts.push(`## 4. Memory and CPU per service (for Kubernetes requests and limits)

Measured during the throughput run above (the heaviest load a service sees: a ${t.participants}-participant
backfill). Peak RSS is the kernel's high-water mark (\`VmHWM\`) of the service process, in MiB, which
${t.built ? 'ran its built JavaScript on node (`dist/main.js`), exactly as the Docker image does' : 'ran TypeScript source through tsx, not the built JavaScript the Docker images run'}. CPU is the mean over the run and the busiest
one-second sample; on this 2-core machine the services compete with Postgres and each other, so the
peaks are what they got, not what they would take.

${mdTable(['service', 'peak RSS', 'RSS at end', 'CPU mean', 'CPU busiest second', 'suggested request', 'suggested limit'], t.services.map((s) => {
  const peak = (s.peakRssBytes ?? 0) / MB;
  const memRequest = Math.ceil((peak * 1.1) / 32) * 32;
  const memLimit = Math.ceil((peak * 1.5) / 64) * 64;
  const cpuRequest = Math.max(0.05, Math.ceil(s.cpuCores * 20) / 20);
  return [
    `${s.name}-${s.replica}`,
    `${f0(peak)} MiB`,
    `${f0((s.rssBytes ?? 0) / MB)} MiB`,
    `${s.cpuCores.toFixed(2)} cores`,
    `${s.peakCores.toFixed(2)} cores`,
    `memory ${memRequest}Mi, cpu ${cpuRequest * 1000}m`,
    `memory ${memLimit}Mi${s.peakCores > 0.9 ? ', cpu: none (CPU-bound in backfill; throttling only slows it)' : `, cpu ${Math.ceil(s.peakCores * 1.5 * 10) * 100}m`}`,
  ];
}))}

Suggested memory request = peak × 1.1, limit = peak × 1.5 (rounded up); CPU request = the mean
during a backfill. Idle (steady-state) CPU is far lower: a poll every 15 minutes per participant.
`);
  }
  if (r.scaling?.length) {
    parts.push(`## 5. Scaling (replicas on this 2-core machine)

${r.scaling[0]!.participants} participants × ${r.scaling[0]!.days} days per run, each run on a fresh stack.

${mdTable(['fetchers', 'lamp-writers', 'events/s end to end', 'events/s 10–90%', 'time', 'CPU (cores, mean): fetchers / writers / bench process'], r.scaling.map((s) => [
  s.fetchers,
  s.writers,
  f0(s.eventsPerSecond),
  f0(s.steadyEventsPerSecond),
  `${f1(s.seconds)} s${s.finished ? '' : ' (not finished)'}`,
  `${s.services.filter((x) => x.name === 'fetcher').reduce((a, x) => a + x.cpuCores, 0).toFixed(2)} / ${s.services.filter((x) => x.name === 'lamp-writer').reduce((a, x) => a + x.cpuCores, 0).toFixed(2)} / ${s.benchProcessCores.toFixed(2)}`,
]))}
`);
  }
  parts.push(renderStorage(r));
  const e = r.efficiency;
  if (e?.byPreset && Object.values(e.byPreset)[0]?.byEndpoint) {
    const endpoints = Object.entries(e.byEndpoint).sort((a, b) => b[1] - a[1]).map(([k]) => k);
    parts.push(`## 2. API efficiency (steady state)

${e.participants} participants (the four presets: watches syncing every 15 min, hourly, every 4 h,
and when the phone app opens, every 2–4 h), ${e.simDays} simulated days after their backfill, the
scheduler polling each participant at \`SYNC_INTERVAL_SECONDS=${e.pollSeconds}\` (the default) with
adaptive polling on: \`POLL_MAX_INTERVAL_SECONDS=${e.pollMaxSeconds}\` (the default, ${f1(e.pollMaxSeconds / 3600)} h), the longest
wait between two polls once a device's sync rhythm is learned. ${f0(e.polls)} polls for ${f0(e.deviceSyncs)} device syncs. Method: the
simulator's clock is frozen and advanced two minutes at a time; at each step the scheduler's pass
(\`runTick\`) and the fetcher's processor (\`createSyncProcessor\` under a real BullMQ worker) run
in the bench process with \`now\` = the simulator's clock, and the step waits until the sync queue
is empty. The services' own processes cannot be used here: their clocks follow real time.
Requests are the simulator's counters, Fitbit Web API, polling only (no webhooks in this section).

The **minimum** does not depend on how fitlamp polls: it is computed afterwards from the simulator's
world alone. Per device sync, one request for each stream to which that sync brought new data (the
world just before the sync against the world just before the next one, so sleep and nightly values
processed after the sync count with it), the changed days merged into range requests as far as the
Fitbit Web API allows (intraday steps and heart rate one day a call; the daily series, sleep and
nightly ranges 30 days and more; the device list one call). A sync's new device state (its time
and battery) is the \`device\` stream: one devices.json per sync. Reading the account's time
zone is not in the minimum unless the zone changed. A poller that waits longer than the device's
sync rhythm can spend less than the minimum (one poll collects two syncs) at the cost of freshness.

| | |
|---|---|
| provider requests | ${f0(e.requests)} (${f1(e.requestsPerParticipantDay)} per participant-day) |
| minimum | ${f0(e.minimum)} (${f1(e.minimumPerParticipantDay)} per participant-day) |
| **ratio** | **${e.ratio.toFixed(2)} ×** |
| 429s | ${e.rateLimited} |

${mdTable(['preset', 'participants', 'device syncs / day', 'polls / day', 'requests', 'minimum', 'ratio'], Object.entries(e.byPreset).map(([k, p]) => [k, p.participants, f1(p.syncsPerDay), f1(p.pollsPerDay), f0(p.requests), f0(p.minimum), `**${p.ratio.toFixed(2)} ×**`]))}

Where the requests go, per preset and endpoint (requests per participant-day):

${mdTable(['endpoint', ...Object.keys(e.byPreset), 'all'], endpoints.map((k) => [k, ...Object.values(e.byPreset).map((p) => f1((p.byEndpoint[k] ?? 0) / p.participants / e.simDays)), f1((e.byEndpoint[k] ?? 0) / e.participantDays)]))}

The minimum by stream (requests): ${Object.entries(e.minimumByStream).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${f0(n)}`).join(', ')}.

**Freshness at the default poll interval** (issue 14 item 4c, no target): for each device sync that
brought new data, the simulated time from the sync to the first poll at or after it (which fetches
it; delivery adds seconds, section 3), per preset. Resolution: the two-minute step. Syncs that
brought no new data (no data stream changed) are not samples.

${mdTable(['preset', 'syncs with new data', 'without', 'p50', 'p95', 'max'], Object.entries(e.byPreset).map(([k, p]) => [k, p.freshness.samples, p.freshness.syncsWithoutNewData, minutes(p.freshness.p50), minutes(p.freshness.p95), minutes(p.freshness.max)]))}
`);
  }
  const w = r.efficiencyWebhooks;
  if (w?.byPreset) {
    const endpoints = Object.entries(w.byEndpoint).sort((a, b) => b[1] - a[1]).map(([k]) => k);
    parts.push(`### 2b. API efficiency with Google Health webhooks

The same ${w.participants} participants, presets, days and steps, on Google Health: the Google
Health simulator (the same world and clock) serves them, and ${w.notifyAfterSeconds} s after each device sync it
notifies the gateway's webhook route (\`buildGateway\`, listening in the bench process: the
product's signature check, ledger invalidation and targeted sync job), subscribed AUTOMATIC for the
ten data types fitlamp reads. Each step delivers the notifications due before the scheduler's
pass. Polling stays on as the safety net at \`SYNC_INTERVAL_SECONDS=${w.pollSeconds}\`, four times longer while
webhooks deliver (\`WEBHOOK_POLL_MULTIPLIER\`), with the same adaptive back-off.

**What is counted.** fitlamp's cost = Google Health API requests (the simulator's counters: every
\`pairedDevices\`, \`dataPoints\`, identity and settings call, 429s included) **+ the notification
POSTs fitlamp received** (every delivery attempt, retries and duplicates included; one notification
a POST, as Google's guide shows). The **minimum** = the world-derived minimum of requests above, with
Google Health's range rules (a page holds 10,000 points: minute steps 6 days a request, heart-rate
samples one day; the daily types and the AZM daily rollup 90 days; sleep and exercise 25 sessions;
paired devices one call) **+ one notification per device sync and subscribed data type that the
sync brought new data**, derived from the simulator's world like the requests (what the API would
answer differently: a minute without steps is no \`steps\` point), not from what the simulator sent
or fitlamp fetched. A notification names one data type (\`"dataType": "steps"\`, google-health-api
§4.4, \`"operation": "UPSERT"\` for "add/modify"), and "when a data update occurs for a given data
type, notifications are sent to all subscribers with an \`AUTOMATIC\` policy for that data type"
(Discovery, \`SubscriberConfig\`): a sync that brought steps, heart rate and sleep is three
notifications, and fitlamp needs every type it subscribes to, since it reads each of them.

| | |
|---|---|
| API requests | ${f0(w.providerRequests ?? 0)} (minimum ${f0(w.minimumProviderRequests ?? 0)}) |
| notifications | ${f0(w.notifications ?? 0)} (minimum ${f0(w.minimumNotifications ?? 0)}) |
| requests + notifications | ${f0(w.requests)} (${f1(w.requestsPerParticipantDay)} per participant-day) |
| minimum | ${f0(w.minimum)} (${f1(w.minimumPerParticipantDay)} per participant-day) |
| **ratio** | **${w.ratio.toFixed(2)} ×** (polling, Fitbit: ${e?.ratio !== undefined ? `${e.ratio.toFixed(2)} ×` : 'not measured'}) |
| 429s | ${w.rateLimited} |

${mdTable(
  ['preset', 'device syncs / day', 'syncs / day (by a notification)', 'requests', 'notifications', 'minimum (of which notifications)', 'ratio', 'polling ratio'],
  Object.entries(w.byPreset).map(([k, p]) => [
    k,
    f1(p.syncsPerDay),
    `${f1(p.pollsPerDay)} (${f1(p.webhookSyncsPerDay ?? 0)})`,
    f0(p.requests - (p.notifications ?? 0)),
    f0(p.notifications ?? 0),
    `${f0(p.minimum)} (${f0(p.minimumNotifications ?? 0)})`,
    `**${p.ratio.toFixed(2)} ×**`,
    e?.byPreset[k] ? `${e.byPreset[k]!.ratio.toFixed(2)} ×` : '',
  ]),
)}

API requests per participant-day by endpoint:

${mdTable(['endpoint', ...Object.keys(w.byPreset), 'all'], endpoints.map((k) => [k, ...Object.values(w.byPreset).map((p) => f1((p.byEndpoint[k] ?? 0) / p.participants / w.simDays)), f1((w.byEndpoint[k] ?? 0) / w.participantDays)]))}

The minimum by stream (requests): ${Object.entries(w.minimumByStream).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${f0(n)}`).join(', ')}.
From each device sync with new data to fitlamp's first sync after it (simulated, two-minute steps):
${Object.entries(w.byPreset).map(([k, p]) => `${k} p50 ${minutes(p.freshness.p50)}, p95 ${minutes(p.freshness.p95)}`).join('; ')}.
`);
  }
  const fresh = [r.freshness, r.freshnessWebhooks].filter((x): x is FreshnessResult => x?.mode !== undefined);
  if (fresh.length) {
    parts.push(`## 3. Freshness

The four services as processes, scheduler tick ${fresh[0]!.schedulerTickSeconds} s, provider latency ${fresh[0]!.latencyMs} ms. Watches sync
only when the bench says so, each once per round at a random moment; the time runs from the sync to
the first event from the minutes that sync made visible being stored in mindLAMP. Each sync is
watched for ${fresh[0]!.windowSeconds} s. A sync after which the simulator's world holds no new step or heart-rate minute
(the watch not worn since the sync before) is not a sample and is counted apart; every other sync
is a sample, and one not delivered within the window counts as "> ${fresh[0]!.windowSeconds} s" in the percentiles.

${mdTable(['way in', 'syncs', 'no new data', 'samples', 'missed', 'p50', 'p95', 'p99', 'max', 'load average before → after'], fresh.map((fr) => [
  fr.mode === 'polling' ? `polling (Fitbit), \`SYNC_INTERVAL_SECONDS=${fr.pollSeconds}\`` : `Google Health webhooks, notified ${fr.notifyAfterSeconds} s after the sync; polling \`SYNC_INTERVAL_SECONDS=${fr.pollSeconds}\``,
  fr.syncs,
  `${fr.withoutNewData}${fr.withoutNewDataDelivered ? ` (${fr.withoutNewDataDelivered} delivered something anyway)` : ''}`,
  fr.samples,
  fr.missed,
  seconds(fr.p50, fr.windowSeconds),
  seconds(fr.p95, fr.windowSeconds),
  seconds(fr.p99, fr.windowSeconds),
  seconds(fr.max, fr.windowSeconds),
  `${fr.loadBefore.map((l) => l.toFixed(1)).join(' / ')} → ${fr.loadAfter.map((l) => l.toFixed(1)).join(' / ')}`,
]))}
`);
  }
  parts.push(renderCockpit(r));
  const scale = renderScale(r);
  if (scale) parts.push(scale);
  const sizing = renderSizing(r);
  if (sizing) parts.push(sizing);
  parts.push(`\n${analysis.trim()}\n`);
  return parts.join('\n');
}

/** Issue 17's targets: the overview renders in under 1 s; the export streams in under 250 MiB. */
export function cockpitTargets(r: BenchResults): Target[] {
  const out: Target[] = [];
  const c = r.cockpit;
  if (c) {
    const complete = c.rows === c.participants && c.cells === c.participants * c.days;
    out.push({
      name: `Study overview, ${f0(c.participants)} participants × ${c.days} days`,
      target: '< 1 s',
      measured: `p95 ${f0(c.responseMs.p95)} ms full response (server ${f0(c.serverMs.p95)} ms)${complete ? '' : `, only ${c.rows} rows / ${c.cells} cells`}`,
      met: complete && c.responseMs.p95 < 1_000,
    });
  }
  const e = r.cockpitExport;
  if (e) {
    const complete = e.rows === e.expectedRows && e.participantsSeen === e.participants;
    out.push({
      name: `Compliance export, ${f0(e.participants)} participants × ${e.days} days: gateway peak RSS`,
      target: '< 250 MiB',
      measured: `${f0(e.peakRssBytes / MB)} MiB${complete ? '' : ` (INCOMPLETE: ${f0(e.rows)} of ${f0(e.expectedRows)} rows)`}`,
      met: complete && e.peakRssBytes < 250 * MB,
    });
  }
  return out;
}

/** Section 7: the coordinator's cockpit at study scale. */
export function renderCockpit(r: BenchResults): string {
  const c = r.cockpit;
  const e = r.cockpitExport;
  if (!c && !e) return '';
  const load = (x: { loadBefore: number[]; loadAfter: number[] }) => `${x.loadBefore.map((l) => l.toFixed(2)).join(' / ')} → ${x.loadAfter.map((l) => l.toFixed(2)).join(' / ')}`;
  const ms = (p: { p50: number; p95: number; max: number }) => `${f0(p.p50)} / ${f0(p.p95)} / ${f0(p.max)} ms`;
  const out: string[] = [`## 7. Coordinator cockpit (study overview and exports)

A study as the pipeline leaves it, seeded through \`@fitlamp/testing\`'s helpers (which write through
\`@fitlamp/db\`): per participant a connection (Fitbit or Google Health) with its device's last sync
and battery, a time zone (New York, London, Kolkata, Sydney), stream cursors, and per local day a
ledger row for each of the ${DAY_STREAM_COUNT} data streams and the day's totals (wear minutes, steps, sleep
minutes). About 87% wear their watch 14–23 h a day, 8% wear it little, 3% stopped syncing 2–12
days ago, 1% must reconnect, 1% have a low battery; the day of a device's last sync is partial,
later days not synced, one stream-day in a thousand failed (\`bench/cockpit.ts\`). The gateway is its
built bundle on node with the production flags and \`NODE_ENV=production\`, its alert loop on; the
measurements start after its first alert round.
`];
  if (c) {
    out.push(`### GET /admin: ${f0(c.participants)} participants × ${c.days} days

\`${c.command}\` at commit ${c.commit}, ${c.date.slice(0, 16).replace('T', ' ')} UTC; load average (1/5/15 min) ${load(c)}.
${f0(c.ledgerRows)} ledger rows and ${f0(c.summaryRows)} day totals in the database. ${c.requests} requests one after another,
after two untimed ones; each page ${mib(c.bytes)} with ${f0(c.rows)} participant rows and ${f0(c.cells)} day cells.

| | p50 / p95 / max |
|---|---|
| gateway's own time (its request log, until the page is sent) | ${ms(c.serverMs)} |
| at the client: status and headers | ${ms(c.firstByteMs)} |
| **at the client: the whole page** | **${ms(c.responseMs)}** |

The gateway's CPU time over the timed requests (\`/proc/<pid>/stat\`): ${f0(c.cpuMsPerRequest)} ms per request.
`);
  }
  if (e) {
    out.push(`### GET /admin/export/compliance.csv: ${f0(e.participants)} participants × ${e.days} days

\`${e.command}\` at commit ${e.commit}, ${e.date.slice(0, 16).replace('T', ' ')} UTC; load average ${load(e)} (memory, not time: run without the lock).
${f0(e.ledgerRows)} ledger rows and ${f0(e.summaryRows)} day totals in the database; \`from=${e.from}&to=${e.to}\`.

| | |
|---|---|
| rows received | ${f0(e.rows)} of ${f0(e.expectedRows)} (${f0(e.participantsSeen)} participants), ${mib(e.bytes)} |
| time | ${f1(e.seconds)} s (${f0(e.rows / e.seconds)} rows/s) |
| gateway RSS before the request | ${mib(e.rssBeforeBytes)} |
| **gateway RSS, highest of ${f0(e.samples)} samples while streaming** (\`/proc/<pid>/status\` VmRSS every 20 ms) | **${mib(e.peakRssBytes)}** |
| gateway VmHWM since it started (its start and first alert round included) | ${e.processPeakRssBytes === null ? '?' : mib(e.processPeakRssBytes)} |
`);
  }
  return out.join('\n');
}

/** The streams with a ledger row per day (all but the \`device\` snapshot). */
const DAY_STREAM_COUNT = STREAMS.filter((s) => s !== 'device').length;

/** Section 6: what Postgres writes and keeps, against the baseline design's figures. */
export function renderStorage(r: BenchResults): string {
  const st = r.throughput?.storage;
  const base = r.baseline?.storage;
  const so = r.soak;
  if (!st && !base && !so) return '';
  const out: string[] = [`## 6. Storage (Postgres)

Measured without knowing the schema (\`bench/storage.ts\`), so the same code measures any storage
design: **WAL per event** is \`pg_wal_lsn_diff\` of \`pg_current_wal_lsn()\` from just before the
first participant connects to the moment the last event is in mindLAMP, ÷ events delivered;
**bytes kept per event** is \`pg_database_size\` at that moment minus its size with the empty
migrated schema, ÷ events delivered. The bench starts a Postgres cluster of its own for this
(\`startPostgresServer\` in packages/harness: initdb in a temporary directory, initdb's default
settings, stopped and deleted at the end), so no other database's writes are in the WAL figure
(\`--shared-postgres\` uses the machine's cluster instead). The raw limits of section 1 run on the
same cluster.
`];
  const rows: Array<Array<string | number>> = [];
  if (base) {
    rows.push([
      `${base.label}, measured on this machine on ${base.date.slice(0, 10)} (commit ${base.commit})`,
      `${base.participants} × ${base.days}`,
      f0(base.events),
      `${f0(base.walBytesPerEvent)} bytes`,
      `${f0(base.keptBytesPerEvent)} bytes`,
    ]);
  }
  if (st && r.throughput) {
    rows.push([
      `this run (${r.machine.date.slice(0, 10)}, commit ${r.machine.commit})${r.throughput.finished ? '' : ' — **not finished**'}`,
      `${r.throughput.participants} × ${r.throughput.days}`,
      f0(st.events),
      `${f0(st.walBytesPerEvent)} bytes${base ? ` (${(st.walBytesPerEvent / base.walBytesPerEvent).toFixed(2)} × old)` : ''}`,
      `${f0(st.keptBytesPerEvent)} bytes${base ? ` (${(st.keptBytesPerEvent / base.keptBytesPerEvent).toFixed(2)} × old)` : ''}`,
    ]);
  }
  if (rows.length) out.push(mdTable(['design', 'participants × days', 'events', 'WAL per event (backfill)', 'bytes kept per event'], rows));
  if (st) {
    out.push(`
This run: ${mib(st.walBytes)} of WAL, database ${mib(st.databaseBytes)} (empty schema ${mib(st.emptyDatabaseBytes)}, so ${mib(st.keptBytes)} kept), on ${st.postgres === 'own cluster' ? 'a cluster of its own' : "the machine's shared cluster"}. Largest tables (with their indexes and TOAST): ${st.largest.slice(0, 5).map((x) => `\`${x.name}\` ${mib(x.bytes)}`).join(', ')}.`);
  }
  if (so) {
    const pick = so.days.filter((d) => d.day === 0 || d.day % 5 === 0 || d.day === so.simDays);
    out.push(`
### Soak: ${so.participants} participants, ${so.simDays} simulated days

The fetcher's and the lamp-writer's processors and the scheduler's pass in the bench process on a
simulated clock (as in section 2), over real Postgres (${so.postgres === 'own cluster' ? 'a cluster of its own' : "the machine's"}) and Redis, delivering to an
in-process mindLAMP simulator: a ${so.backfillDays}-day backfill (day 0), then steady state, the clock
advanced ${f0(so.stepSeconds / 60)} minutes at a time, each participant polled every ${f0(so.pollSeconds / 3600)} h
(\`REFETCH_DAYS=${so.refetchDays}\`; the polling interval changes how often rows are written, not what a day holds).
Size = database size minus the empty schema's (${mib(so.emptyDatabaseBytes)}), at the end of each simulated day.
${so.syncs} syncs${Object.keys(so.syncErrors).length ? `, failed attempts: ${JSON.stringify(so.syncErrors)}` : ', none failed'}; ${f0(so.realSeconds)} s.

${mdTable(['simulated day', 'size over the empty schema', 'per participant', 'events delivered so far', 'WAL so far'], pick.map((d) => [d.day, mib(d.keptBytes), mib(d.keptBytes / so.participants), f0(d.events), mib(d.walBytes)]))}

Growth from day 15 to day 30: ${so.growthDay15To30 !== undefined ? `**${pct(so.growthDay15To30)}**` : `not reached (second half of this run: ${pct(so.growthSecondHalf)})`}. Largest tables at the end: ${so.largest.slice(0, 5).map((x) => `\`${x.name}\` ${mib(x.bytes)}`).join(', ')}.`);
  }
  const from = so?.days.find((d) => d.day === 15) ?? so?.days[Math.floor(so.days.length / 2)];
  const to = so?.days.at(-1);
  if (so && from?.tables && to?.tables) {
    const total = (t: { heapBytes: number; indexBytes: number; toastBytes: number }) => t.heapBytes + t.indexBytes + t.toastBytes;
    const rows = to.tables.map((t) => {
      const before = from.tables!.find((x) => x.name === t.name);
      return [
        `\`${t.name}\``,
        before ? mib(total(before)) : '–',
        mib(total(t)),
        before ? mib(total(t) - total(before)) : '–',
        `${mib(t.heapBytes)} / ${mib(t.indexBytes)} / ${mib(t.toastBytes)}`,
        `${before ? f0(before.liveTuples) : '–'} → ${f0(t.liveTuples)}`,
        `${f0(t.deadTuples)} (TOAST ${f0(t.toastDeadTuples)})`,
      ];
    });
    out.push(`
By table (over 64 KiB), day ${from.day} → day ${to.day}: size with indexes and TOAST; at day ${to.day}, heap / indexes / TOAST, and the
live and dead tuples \`pg_stat_user_tables\` counts (dead: not yet reclaimed by autovacuum).

${mdTable(['table', `day ${from.day}`, `day ${to.day}`, 'change', `heap / indexes / TOAST at day ${to.day}`, 'live tuples', `dead at day ${to.day}`], rows)}`);
  }
  return `${out.join('\n')}\n`;
}

/** Section 7: many participants at steady state (bench/scale.ts). */
export function renderScale(r: BenchResults): string {
  const sc = r.scale;
  if (!sc) return '';
  const row = (label: string, p: ScalePhase) => [
    label,
    `${p.speed} ×`,
    `${f0(p.simSeconds / 60)} min in ${f0(p.realSeconds)} s`,
    f0(p.syncs),
    `**${f0(p.fellBehind)}**`,
    `${f1(p.lateP50Seconds)} / ${f1(p.lateP95Seconds)} / ${f1(p.lateMaxSeconds)} s`,
    `${f0(p.tickP50Ms)} / ${f0(p.tickP95Ms)} ms`,
    `${f0(p.peakQueueDepth.sync)} / ${f0(p.peakQueueDepth.deliver)}`,
  ];
  const phases = [...sc.search.map((p) => row('search', p)), ...(sc.final ? [row('**long run**', sc.final)] : [])];
  const f = steadyPhase(sc);
  const cpuRows = f
    ? Object.keys(f.cpuSecondsPerParticipantDay).map((k) => [k, f.cpuSecondsPerParticipantDay[k]!.toFixed(3), f.cores[k]!.toFixed(2)])
    : [];
  return `## 8. Scale: ${f0(sc.participants)} participants at steady state

\`pnpm bench --scale\` (\`bench/scale.ts\`): the scheduler's pass, the fetcher's processor, the
lamp-writer's deliver workers and the gateway (its Google Health webhook route), each a process of its own (\`bench/scale-service.ts\`: the services'
code, a clock that follows the simulators'), over a Postgres cluster and a Redis of the run's own,
against the Fitbit and Google Health simulators (one world) and the mindLAMP simulator in the
bench process. Mix: ${Object.entries(sc.mix).map(([k, n]) => `${k} ${f0(n)}`).join(', ')}.
Fitbit participants are polled; Google Health participants get webhooks as in production: a subscriber (\`AUTOMATIC\`,
the gateway's secret) created before enrolment, the simulator notifying the gateway ${sc.notifyAfterSeconds ?? 5} simulated s after each device
sync (on the simulated clock), and polling \`WEBHOOK_POLL_MULTIPLIER\` (4) times less often while notifications arrive.
The polls the warm-up planned came before any notification, at the polling interval: for the first
\`SYNC_INTERVAL_SECONDS\` of simulated time, Google Health participants are still polled as without webhooks.
The services' defaults: \`SYNC_INTERVAL_SECONDS=${sc.pollSeconds}\`, \`POLL_MAX_INTERVAL_SECONDS=${sc.pollMaxSeconds}\`,
\`FETCHER_CONCURRENCY=${sc.fetcherConcurrency}\`, \`LAMP_WRITER_CONCURRENCY=${sc.writerConcurrency}\`, \`SCHEDULER_TICK_SECONDS=15\`, one replica each.
Enrolment ${f0(sc.enrolSeconds)} s${sc.enrolConcurrency ? ` (${sc.enrolConcurrency} connections at a time per provider)` : ''}, warm-up (everyone's first sync, not measured) ${f0(sc.warmupSeconds)} s.
A sync **fell behind** when it started more than 60 simulated s after the moment the scheduler
planned it for (its job's enqueue time plus the spread delay the scheduler gave it).
Load average before ${sc.load.before.map((l) => l.toFixed(2)).join(' ')}, after ${sc.load.after.map((l) => l.toFixed(2)).join(' ')}.

${mdTable(['phase', 'speed-up', 'simulated time', 'syncs', 'fell behind', 'late p50 / p95 / max (simulated)', 'tick p50 / p95', 'peak queue sync / deliver'], phases)}

Largest speed-up at which no sync fell behind: **${sc.chosenSpeed ? `${sc.chosenSpeed} ×` : 'none of those tried'}**.
${f ? `
${phaseName(sc, f)}: ${f1(f.requestsPerParticipantDay)} provider requests per participant-day (${Object.entries(f.requestsByProvider).map(([k, n]) => `${k} ${f0(n)}`).join(', ')}); ${f.retries} retried jobs; failed attempts ${Object.keys(f.failed).length ? JSON.stringify(f.failed) : 'none'}.

${f.requestsPerParticipantDayByProvider ? `Per participant-day of each provider's participants: Fitbit (polling) **${f1(f.requestsPerParticipantDayByProvider.fitbit ?? 0)}** requests;
Google Health (webhooks, polling as the safety net) **${f1(f.requestsPerParticipantDayByProvider['google-health'] ?? 0)}** requests and
**${f1(f.notificationsPerGoogleParticipantDay)}** notifications received by the gateway (${Object.entries(f.notifications).map(([k, n]) => `${k} ${f0(n)}`).join(', ') || 'none'}).
A Google Health sync asks one data type per request (${f0(Object.keys(f.requestsByEndpoint?.['google-health'] ?? {}).filter((k) => k.startsWith('dataPoints')).length)} endpoints here), where Fitbit combines some.
` : ''}
${mdTable(['process', 'CPU-seconds per participant-day', 'cores used at this speed-up'], cpuRows)}
` : ''}
At the end: database ${mib(sc.databaseBytes)} (empty schema ${mib(sc.emptyDatabaseBytes)}): ${mib(sc.bytesPerParticipant)} per participant
after the warm-up and the runs above (today's data only, so far below the 7-day steady state of section 6);
Redis peak memory (\`used_memory_peak\`, warm-up included) ${mib(sc.redisPeakBytes)}, ${mib(sc.redisUsedBytes)} in use at the end.
`;
}

/**
 * The phase whose per-participant-day figures stand for steady state: the long run if it kept up
 * (at most 2 % of its syncs fell behind), else the search phase at the largest speed-up that kept up.
 * A phase that fell behind coalesced polls into fewer, larger syncs and would understate both.
 */
function steadyPhase(sc: NonNullable<BenchResults['scale']>): ScalePhase | undefined {
  const keptUp = sc.final && sc.final.fellBehind <= 0.02 * sc.final.syncs ? sc.final : undefined;
  return keptUp ?? sc.search.find((p) => p.speed === sc.chosenSpeed) ?? sc.final ?? sc.search.at(-1);
}

function phaseName(sc: NonNullable<BenchResults['scale']>, p: ScalePhase): string {
  if (p === sc.final) return 'Long run';
  if (p.speed !== sc.chosenSpeed) return 'Last search phase';
  return `Search phase at ${p.speed} × (the largest speed-up that kept up${sc.final ? '; the long run fell behind' : ''})`;
}

/** Google Health's per-project quota (google-health-api §5): requests a day and a minute. */
export const GOOGLE_QUOTA = { perDay: 86_400_000, perMinute: 120_000 };
/** Steady-state CPU a worker replica is sized for: half a core, the rest for bursts (a mass enrolment's backfill). */
const REPLICA_CORES = 0.5;
/**
 * Share of a fetcher's sync slots kept for steady work, as with cores: the rest for bursts. The
 * 10,000-participant scale run kept up at 1 × with one fetcher and fell far behind at 2 ×.
 */
const SLOT_SHARE = 0.5;
/** A real provider's round trip (the simulators answer at once): 250 ms. */
const PROVIDER_LATENCY_S = 0.25;

/** Section 8: sizing projected from the scale run's per-participant-day figures and the soak's storage. */
export function renderSizing(r: BenchResults): string {
  const sc = r.scale;
  if (!sc) return '';
  const f = steadyPhase(sc);
  if (!f) return '';
  const cpu = f.cpuSecondsPerParticipantDay;
  const peak = (name: string) => Math.max(0, ...(r.throughput?.services.filter((x) => x.name === name).map((x) => x.peakRssBytes ?? 0) ?? [0]));
  const perParticipantBytes = r.soak?.bytesPerParticipant;
  const redisPerParticipant = sc.redisPeakBytes / sc.participants;
  const rows = [1_000, 10_000, 100_000].map((n) => {
    const cores = (k: string) => ((cpu[k] ?? 0) * n) / 86_400;
    const replicas = (k: string) => Math.max(1, Math.ceil(cores(k) / REPLICA_CORES));
    // A fetcher replica is also bound by waiting: FETCHER_CONCURRENCY slots, each busy for the
    // provider's round trips (PROVIDER_LATENCY_S a request, as the Kubernetes guide assumes).
    const slotSeconds = (f.requestsPerParticipantDay * n * PROVIDER_LATENCY_S) / 86_400;
    const fetchers = Math.max(replicas('fetcher'), Math.ceil(slotSeconds / (sc.fetcherConcurrency * SLOT_SHARE)));
    const writers = replicas('writer');
    const memory = fetchers * peak('fetcher') + writers * peak('lamp-writer') + peak('scheduler') + peak('gateway');
    return [
      f0(n),
      `${cores('fetcher').toFixed(2)} / ${cores('writer').toFixed(2)} / ${cores('scheduler').toFixed(2)}${cpu.gateway !== undefined ? ` / ${cores('gateway').toFixed(2)}` : ''}`,
      cores('postgres').toFixed(2),
      `${fetchers} / ${writers} / 1`,
      mib(memory),
      mib(redisPerParticipant * n),
      perParticipantBytes ? mib(perParticipantBytes * n) : 'not measured',
    ];
  });
  const googleParticipants = Object.entries(sc.mix).filter(([k]) => k.startsWith('google-health')).reduce((a, [, n]) => a + n, 0);
  const googleDays = (googleParticipants * f.simSeconds) / 86_400;
  // With webhooks: what the Google Health participants cost. Without: the Fitbit participants'
  // polling figure, the only polling-only figure the run measures.
  const withWebhooks = f.requestsPerParticipantDayByProvider?.['google-health'] ?? (googleDays > 0 ? (f.requestsByProvider['google-health'] ?? 0) / googleDays : 0);
  const polling = f.requestsPerParticipantDayByProvider?.fitbit;
  const ceiling = (perDay: number) => f0(perDay > 0 ? GOOGLE_QUOTA.perDay / perDay : 0);
  return `## 9. Sizing (projected from section 8)

Steady state, from the ${phaseName(sc, f).toLowerCase()} of section 8 (${f0(sc.participants)} participants, ${f.speed} × real time):
CPU-seconds per participant-day fetcher ${(cpu.fetcher ?? 0).toFixed(3)}, lamp-writer ${(cpu.writer ?? 0).toFixed(3)},
scheduler ${(cpu.scheduler ?? 0).toFixed(3)}${cpu.gateway !== undefined ? `, gateway (webhooks) ${cpu.gateway.toFixed(3)}` : ''}, Postgres ${(cpu.postgres ?? 0).toFixed(3)}; cores = that × participants ÷ 86,400.
Worker replicas are sized for ${REPLICA_CORES} core of steady work each (the rest of a core is for bursts:
a mass enrolment's backfill, a provider outage's catch-up); at least one. A fetcher replica is also
bound by waiting on the provider: ${sc.fetcherConcurrency} syncs at a time, each request ${PROVIDER_LATENCY_S * 1000} ms (the simulators answer at once;
a real API does not), so fetchers ≥ requests per participant-day (${f1(f.requestsPerParticipantDay)}) × participants × ${PROVIDER_LATENCY_S} s ÷ (${sc.fetcherConcurrency} × ${SLOT_SHARE} × 86,400 s), half the slots kept for bursts as with cores. Memory = replicas × each
service's peak RSS in section 4 (fetcher ${mib(peak('fetcher'))}, lamp-writer ${mib(peak('lamp-writer'))}, scheduler ${mib(peak('scheduler'))}, gateway ${mib(peak('gateway'))}).
Redis: this run's \`used_memory_peak\` per participant × participants. Postgres storage: the soak's
steady state (section 6${perParticipantBytes ? `, ${mib(perParticipantBytes)} per participant at day 30` : ''}) × participants, before WAL and backups.

${mdTable(['participants', `cores: fetcher / writer / scheduler${cpu.gateway !== undefined ? ' / gateway' : ''}`, 'cores: Postgres', 'replicas: fetcher / writer / scheduler', 'memory of the services', 'Redis', 'Postgres storage'], rows)}

**Google Health quota** (per Google Cloud project: ${f0(GOOGLE_QUOTA.perDay)} requests a day, ${f0(GOOGLE_QUOTA.perMinute)} a minute):
${f.requestsPerParticipantDayByProvider ? `- with webhooks: a Google Health participant cost ${f1(withWebhooks)} requests per participant-day in section 8, so one project
  serves about **${ceiling(withWebhooks)} participants** by the daily quota;
- without webhooks: section 8 polls only its Fitbit participants, at ${f1(polling ?? 0)} requests per participant-day; taken as the
  Google polling figure, one project would serve about **${ceiling(polling ?? 0)} participants**. Google Health asks one data type per
  request where Fitbit combines some, so Google polling costs more than this: the figure is an upper bound on participants.

` : `a Google Health participant cost ${f1(withWebhooks)} requests per participant-day in section 8 (polling, no webhooks), so one project
serves about **${ceiling(withWebhooks)} participants** by the daily quota.
`}The per-minute quota (${f0(GOOGLE_QUOTA.perMinute * 1440)} a day if spread evenly) binds only on bursts.
`;
}
