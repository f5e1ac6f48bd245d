// Section 7 (issue 17): the coordinator's cockpit at study scale. A study's rows as the pipeline
// leaves them (participants with their connection, device sync time and battery, time zone and
// cursors; a day-ledger row per stream and local day; the day totals) are seeded through
// @fitlamp/testing's helpers, which write through @fitlamp/db; then the gateway's built JavaScript
// runs as production runs it (node dist/main.js, the production flags, NODE_ENV=production, the
// alert loop on), and:
// - overview: GET /admin for 1,000 participants × 28 days, timed: the gateway's own time (its
//   request log, `reply.elapsedTime`) and, at the bench's HTTP client, the first byte and the last;
// - export: GET /admin/export/compliance.csv for 10,000 participants × 90 days, the gateway's
//   resident memory sampled from /proc while it streams, the rows counted as they arrive.
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { join } from 'node:path';
import { sql, type Kysely } from 'kysely';
import { createDb, migrateToLatest, recordTimeZone, type Database, type DayStatus, type ProviderName } from '@fitlamp/db';
import { freePort, readProcResources } from '@fitlamp/harness';
import { addDays, localDayAt, localDayBounds, STREAMS } from '@fitlamp/provider';
import { createRng } from '@fitlamp/simulators';
import {
  buildIfStale,
  repoRoot,
  seedDayTotalRows,
  seedLedgerRows,
  seedParticipant,
  serviceTestEnv,
  startProcess,
  testRedisUrl,
  uniquePrefix,
  type SeedDay,
  type SeedDayTotals,
  type ServiceProcess,
} from '@fitlamp/testing';
import { createBenchDatabase } from './sim-pipeline.ts';
import { mapLimit } from './throughput.ts';

const DAY_STREAMS = STREAMS.filter((s) => s !== 'device');
const ZONES = ['America/New_York', 'Europe/London', 'Asia/Kolkata', 'Australia/Sydney'];
const STUDIES = ['S0000000001', 'S0000000002', 'S0000000003', 'S0000000004', 'S0000000005'];
const MB = 2 ** 20;

export interface CockpitOptions {
  overview?: { participants: number; days: number; requests: number };
  export?: { participants: number; days: number };
  /** A Postgres cluster of the run's own [true], else a database on the machine's. */
  ownPostgres: boolean;
  /** Write a CPU profile of each gateway run here (packages/harness/src/cpu-profile.mjs), read at its exit. */
  profileDir?: string;
  log: (line: string) => void;
}

/** Milliseconds: median, 95th percentile and the slowest of the timed requests. */
export interface Percentiles {
  p50: number;
  p95: number;
  max: number;
}

export interface OverviewBenchResult {
  participants: number;
  days: number;
  requests: number;
  /** The gateway's own time per request (its request log: `reply.elapsedTime`, until the response is sent). */
  serverMs: Percentiles;
  /** At the bench's HTTP client: until the status line and headers, and until the last byte. */
  firstByteMs: Percentiles;
  responseMs: Percentiles;
  /** The gateway process's CPU time (user + system, /proc) over the timed requests, per request. */
  cpuMsPerRequest: number;
  /** The page's size, and the participant rows and day cells counted in it (each request's). */
  bytes: number;
  rows: number;
  cells: number;
  /** Ledger and day-total rows in the database when measured. */
  ledgerRows: number;
  summaryRows: number;
  seedSeconds: number;
  gatewayPeakRssBytes: number | null;
  date: string;
  loadBefore: number[];
  loadAfter: number[];
}

export interface ExportBenchResult {
  participants: number;
  days: number;
  from: string;
  to: string;
  /** CSV data rows received (the header not counted), and distinct participants in them. */
  rows: number;
  expectedRows: number;
  participantsSeen: number;
  bytes: number;
  seconds: number;
  /** The gateway's RSS (VmRSS) just before the request, and the highest sample while it streamed. */
  rssBeforeBytes: number;
  peakRssBytes: number;
  /** How often RSS was sampled (every ~20 ms) during the export. */
  samples: number;
  /** The kernel's high-water mark (VmHWM) of the gateway process since it started (its first alert round included). */
  processPeakRssBytes: number | null;
  ledgerRows: number;
  summaryRows: number;
  seedSeconds: number;
  date: string;
  loadBefore: number[];
  loadAfter: number[];
}

export interface CockpitResult {
  overview?: OverviewBenchResult;
  export?: ExportBenchResult;
}

type Kind = 'compliant' | 'low_wear' | 'stopped_syncing' | 'reconnect' | 'low_battery';

interface CohortParticipant {
  id: string;
  index: number;
  zone: string;
  studyId: string;
  provider: ProviderName;
  kind: Kind;
  deviceSyncAt: number;
  battery: number;
}

/**
 * Who participant `index` is: most wear their watch most of the day; some wear it little, some
 * stopped syncing days ago, some must reconnect, some have a low battery (what the overview and the
 * alerts are for).
 */
export function cohortParticipant(index: number, now: number): CohortParticipant {
  const rand = createRng('cockpit', index);
  const r = rand();
  const kind: Kind = r < 0.08 ? 'low_wear' : r < 0.11 ? 'stopped_syncing' : r < 0.12 ? 'reconnect' : r < 0.13 ? 'low_battery' : 'compliant';
  const deviceSyncAt =
    kind === 'stopped_syncing' ? now - (2 + rand() * 10) * 86_400_000 : kind === 'reconnect' ? now - (3 + rand() * 7) * 86_400_000 : now - rand() * 4 * 3_600_000;
  return {
    id: `P${String(index).padStart(6, '0')}`,
    index,
    zone: ZONES[index % ZONES.length]!,
    studyId: STUDIES[index % STUDIES.length]!,
    provider: rand() < 0.7 ? 'fitbit' : 'google-health',
    kind,
    deviceSyncAt,
    battery: kind === 'low_battery' ? 3 + Math.floor(rand() * 11) : 20 + Math.floor(rand() * 81),
  };
}

/**
 * The ledger rows and day totals the fetcher and the lamp-writer would have left for a participant's
 * local days `offsets` (0 = their today, 1 = yesterday, …): days after the device's last sync not
 * synced, the day of that sync partial, earlier days settled or empty by stream, delivered.
 */
export function cohortDays(p: CohortParticipant, offsets: readonly number[], now: number): { ledger: SeedDay[]; totals: SeedDayTotals[] } {
  const history = [{ zone: p.zone, validFrom: 0 }];
  const today = localDayAt(history, now);
  const syncDay = localDayAt(history, p.deviceSyncAt);
  const ledger: SeedDay[] = [];
  const totals: SeedDayTotals[] = [];
  for (const offset of offsets) {
    const day = addDays(today, -offset);
    // The same day always gets the same values, whichever phase seeds it.
    const rand = createRng('cockpit', p.index, offset);
    const provider = p.provider;
    if (day > syncDay) {
      const reason = `the device has not synced this day yet (last sync ${new Date(p.deviceSyncAt).toISOString()})`;
      for (const stream of DAY_STREAMS) ledger.push({ stream, day, status: 'not_synced', reason, fetchedAt: null, provider });
      continue;
    }
    const { start, end } = localDayBounds(day, history);
    const partial = day === syncDay;
    const observed = partial ? Math.max(0, Math.min(1, (p.deviceSyncAt - start) / (end - start))) : 1;
    const worn = p.kind === 'low_wear' ? rand() > 0.3 : rand() > 0.04;
    const wearMinutes = worn ? Math.round((p.kind === 'low_wear' ? 60 + rand() * 420 : 840 + rand() * 540) * observed) : 0;
    const slept = worn && rand() < 0.85 && (!partial || observed > 0.4);
    const sleepMinutes = slept ? Math.round(300 + rand() * 200) : 0;
    const steps = worn ? Math.round((2_000 + rand() * 10_000) * observed) : 0;
    const counts: Record<string, number> = {
      heart_rate: wearMinutes,
      steps: Math.round(wearMinutes * 0.4),
      sleep: slept ? 20 + Math.floor(rand() * 20) : 0,
      resting_heart_rate: worn && !partial ? 1 : 0,
      spo2: slept ? 1 : 0,
      hrv: slept ? 1 : 0,
      breathing_rate: slept ? 1 : 0,
      skin_temperature: slept ? 1 : 0,
      active_zone_minutes: worn ? Math.floor(rand() * 60) : 0,
      exercise: worn && rand() < 0.3 ? 1 : 0,
    };
    const dayTotals: Record<string, number> = { heart_rate: wearMinutes, steps, sleep: sleepMinutes };
    const fetchedAt = new Date(Math.min(now, Math.max(end, p.deviceSyncAt) + 600_000));
    for (const stream of DAY_STREAMS) {
      const n = counts[stream]!;
      // One stream-day in a thousand failed at its last fetch (a 503), as a real study sees.
      const failed = rand() < 0.001;
      const status: DayStatus = failed ? 'failed' : partial ? 'partial' : n > 0 ? 'settled' : 'empty';
      const reason = failed
        ? 'Fitbit 503 unavailable: will retry'
        : status === 'partial'
          ? `device last synced ${new Date(p.deviceSyncAt).toISOString()}: more may come`
          : status === 'empty'
            ? 'no data: the device was not worn, or recorded nothing this day'
            : null;
      ledger.push({ stream, day, status, reason, fetched: failed ? 0 : n, delivered: failed ? 0 : n, fetchedAt, provider, total: failed ? null : (dayTotals[stream] ?? null) });
    }
    totals.push({ day, wearMinutes, steps, sleepMinutes });
  }
  return { ledger, totals };
}

/**
 * Seeds participants `first`…`last` (1-based) with their local days `offsets`, 50 participants at a
 * time: each participant through `seedParticipant` (its connection, device and cursors go through
 * @fitlamp/db's functions), the batch's ledger rows and day totals in one statement each.
 * `withParticipant: false` adds days to participants seeded before.
 */
export async function seedCohort(
  db: Kysely<Database>,
  range: { first: number; last: number; offsets: readonly number[]; withParticipant: boolean },
  now: number,
  log: (line: string) => void,
): Promise<void> {
  const BATCH = 50;
  let lastLog = Date.now();
  for (let first = range.first; first <= range.last; first += BATCH) {
    const batch = Array.from({ length: Math.min(BATCH, range.last - first + 1) }, (_, i) => cohortParticipant(first + i, now));
    if (range.withParticipant) {
      await mapLimit(batch, 4, async (p) => {
        const status = p.kind === 'reconnect' ? 'reconnect_needed' : 'connected';
        await seedParticipant(db, p.id, {
          studyId: p.studyId,
          provider: p.provider,
          status,
          ...(status === 'reconnect_needed' ? { statusReason: 'the refresh token was refused (invalid_grant): the participant must reconnect' } : {}),
          streams: [...STREAMS],
          lastSyncAt: new Date(Math.min(now, p.deviceSyncAt + 120_000)),
          device: { syncedAt: new Date(p.deviceSyncAt), battery: p.battery },
        });
        await recordTimeZone(db, p.id, p.zone, p.provider, new Date(0));
      });
    }
    const days = batch.map((p) => ({ p, ...cohortDays(p, range.offsets, now) }));
    await seedLedgerRows(db, days.flatMap(({ p, ledger }) => ledger.map((d) => ({ ...d, participantId: p.id }))));
    await seedDayTotalRows(db, days.flatMap(({ p, totals }) => totals.map((d) => ({ ...d, participantId: p.id }))));
    if (Date.now() - lastLog > 15_000) {
      lastLog = Date.now();
      log(`      seeded ${first + batch.length - range.first}/${range.last - range.first + 1} participants`);
    }
  }
}

async function countRows(db: Kysely<Database>): Promise<{ ledger: number; summaries: number }> {
  const { rows } = await sql<{ ledger: string; summaries: string }>`
    select (select count(*) from day_ledger) as ledger, (select count(*) from day_summaries) as summaries`.execute(db);
  return { ledger: Number(rows[0]!.ledger), summaries: Number(rows[0]!.summaries) };
}

const percentiles = (values: number[]): Percentiles => {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
  return { p50: at(0.5), p95: at(0.95), max: sorted.at(-1)! };
};

interface Gateway {
  url: string;
  token: string;
  process: ServiceProcess;
  stop(): Promise<void>;
}

/**
 * The gateway's built bundle as production runs it, on the bench's database; resolves once it
 * listens and its first alert round (which starts with it) has ended, so neither measurement
 * overlaps it.
 */
async function startGateway(databaseUrl: string, profileDir?: string): Promise<Gateway> {
  buildIfStale(['gateway']);
  const port = await freePort();
  const token = randomBytes(24).toString('base64url');
  const env = serviceTestEnv({
    NODE_ENV: 'production',
    LOG_LEVEL: 'info',
    DATABASE_URL: databaseUrl,
    REDIS_URL: testRedisUrl,
    QUEUE_PREFIX: uniquePrefix('bench-cockpit'),
    PUBLIC_BASE_URL: 'https://fitlamp.bench.invalid',
    PORT: String(port),
    OPS_PORT: String(await freePort()),
    ADMIN_TOKEN: token,
    ...(profileDir
      ? { NODE_OPTIONS: `--import ${join(repoRoot, 'packages/harness/src/cpu-profile.mjs')}`, FITLAMP_CPU_PROFILE_DIR: profileDir }
      : {}),
  });
  const process = startProcess('services/gateway/dist/main.js', env);
  await process.waitForLine(/"msg":"gateway listening"/, 60_000);
  // "alerts evaluated" is logged when a round opened alerts, which the seeded study always makes
  // it do; without it the round failed or is still running.
  await process.waitForLine(/"msg":"(alerts evaluated|alert round failed)"/, 300_000);
  return { url: `http://127.0.0.1:${port}`, token, process, stop: async () => void (await process.stop('SIGTERM')) };
}

/** The gateway's request-log line for a request id: its own time for the request, ms. */
async function serverMsOf(gateway: Gateway, requestId: string): Promise<number> {
  const line = await gateway.process.waitForLine(new RegExp(`"reqId":"${requestId}".*"msg":"request"`), 10_000);
  return Number(/"ms":(\d+)/.exec(line)![1]);
}

async function measureOverview(gateway: Gateway, o: NonNullable<CockpitOptions['overview']>) {
  const one = async () => {
    const t0 = performance.now();
    const res = await fetch(`${gateway.url}/admin`, { headers: { authorization: `Bearer ${gateway.token}`, accept: 'text/html' } });
    const firstByte = performance.now() - t0;
    const body = await res.text();
    const total = performance.now() - t0;
    if (res.status !== 200) throw new Error(`GET /admin answered ${res.status}: ${body.slice(0, 300)}`);
    const requestId = res.headers.get('x-request-id')!;
    return { firstByte, total, body, server: await serverMsOf(gateway, requestId) };
  };
  // Two untimed requests first: the first request after a start compiles the code it runs.
  await one();
  await one();
  const samples = [];
  const pid = gateway.process.proc.pid!;
  const cpuBefore = readProcResources(pid).cpuMs ?? 0;
  for (let i = 0; i < o.requests; i++) samples.push(await one());
  const cpuMsPerRequest = ((readProcResources(pid).cpuMs ?? 0) - cpuBefore) / o.requests;
  const body = samples[0]!.body;
  const rows = (body.match(/<tr data-participant="/g) ?? []).length;
  const cells = (body.match(/<td class="c[ "]/g) ?? []).length;
  return {
    serverMs: percentiles(samples.map((s) => s.server)),
    firstByteMs: percentiles(samples.map((s) => s.firstByte)),
    responseMs: percentiles(samples.map((s) => s.total)),
    cpuMsPerRequest,
    bytes: Buffer.byteLength(body),
    rows,
    cells,
  };
}

async function measureExport(gateway: Gateway, from: string, to: string) {
  const pid = gateway.process.proc.pid!;
  const rssBefore = readProcResources(pid).rssBytes ?? 0;
  let peak = rssBefore;
  let samples = 0;
  const sampler = setInterval(() => {
    const rss = readProcResources(pid).rssBytes;
    if (rss !== null) {
      peak = Math.max(peak, rss);
      samples++;
    }
  }, 20);
  const t0 = performance.now();
  try {
    const res = await fetch(`${gateway.url}/admin/export/compliance.csv?from=${from}&to=${to}`, { headers: { authorization: `Bearer ${gateway.token}` } });
    if (res.status !== 200 || !res.body) throw new Error(`the export answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
    const decoder = new TextDecoder();
    // Counted as it arrives, never held: lines, and participants by the first column's changes.
    let lines = 0;
    let bytes = 0;
    let header: string | undefined;
    let partialLine = '';
    let lastParticipant = '';
    let participants = 0;
    for await (const chunk of res.body) {
      const text = partialLine + decoder.decode(chunk, { stream: true });
      bytes += chunk.byteLength;
      const parts = text.split('\n');
      partialLine = parts.pop()!;
      for (const line of parts) {
        if (header === undefined) {
          header = line;
          continue;
        }
        lines++;
        const participant = line.slice(0, line.indexOf(','));
        if (participant !== lastParticipant) {
          participants++;
          lastParticipant = participant;
        }
      }
    }
    if (partialLine !== '') throw new Error(`the export ended inside a line: ${partialLine.slice(0, 100)}`);
    if (!header?.startsWith('participant_id,study_id,day,wear_minutes')) throw new Error(`unexpected CSV header: ${header}`);
    return { rows: lines, participants, bytes, seconds: (performance.now() - t0) / 1000, rssBefore, peak, samples };
  } finally {
    clearInterval(sampler);
  }
}

export async function runCockpit(o: CockpitOptions): Promise<CockpitResult> {
  const undo: Array<() => Promise<unknown>> = [];
  const result: CockpitResult = {};
  try {
    const database = await createBenchDatabase(o.ownPostgres);
    undo.push(() => database.drop());
    const url = database.url;
    const db = createDb(url, { max: 8, applicationName: 'fitlamp-bench-cockpit' });
    undo.push(() => db.destroy());
    await migrateToLatest(db);
    // One instant for the whole seed, so every participant's days line up with their device sync.
    const now = Date.now();
    let seeded = 0;
    const offsets = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

    if (o.overview) {
      const v = o.overview;
      o.log(`    seeding ${v.participants} participants × ${v.days} days through @fitlamp/testing`);
      const t0 = Date.now();
      await seedCohort(db, { first: 1, last: v.participants, offsets: offsets(0, v.days), withParticipant: true }, now, o.log);
      await sql`vacuum analyze`.execute(db);
      const seedSeconds = (Date.now() - t0) / 1000;
      seeded = v.participants;
      const counts = await countRows(db);
      o.log(`    seeded in ${seedSeconds.toFixed(0)} s: ${counts.ledger} ledger rows, ${counts.summaries} day totals; starting the gateway`);
      const gateway = await startGateway(url, o.profileDir && join(o.profileDir, 'gateway-overview'));
      try {
        const loadBefore = os.loadavg();
        const m = await measureOverview(gateway, v);
        result.overview = {
          participants: v.participants,
          days: v.days,
          requests: v.requests,
          ...m,
          ledgerRows: counts.ledger,
          summaryRows: counts.summaries,
          seedSeconds,
          gatewayPeakRssBytes: readProcResources(gateway.process.proc.pid!).peakRssBytes,
          date: new Date().toISOString(),
          loadBefore,
          loadAfter: os.loadavg(),
        };
        o.log(
          `    GET /admin (${m.rows} participants, ${m.cells} day cells, ${(m.bytes / MB).toFixed(1)} MiB): server p50 ${m.serverMs.p50} ms, p95 ${m.serverMs.p95} ms; ` +
            `full response p50 ${m.responseMs.p50.toFixed(0)} ms, p95 ${m.responseMs.p95.toFixed(0)} ms over ${v.requests} requests; gateway CPU ${m.cpuMsPerRequest.toFixed(0)} ms per request`,
        );
      } finally {
        await gateway.stop();
      }
    }

    if (o.export) {
      const e = o.export;
      o.log(`    seeding ${e.participants} participants × ${e.days} days${seeded ? ` (the first ${seeded} have ${o.overview!.days} of the days already)` : ''}`);
      const t0 = Date.now();
      if (seeded) {
        await seedCohort(db, { first: 1, last: Math.min(seeded, e.participants), offsets: offsets(o.overview!.days, e.days), withParticipant: false }, now, o.log);
      }
      if (e.participants > seeded) {
        await seedCohort(db, { first: seeded + 1, last: e.participants, offsets: offsets(0, e.days), withParticipant: true }, now, o.log);
      }
      await sql`vacuum analyze`.execute(db);
      const seedSeconds = (Date.now() - t0) / 1000;
      const counts = await countRows(db);
      o.log(`    seeded in ${seedSeconds.toFixed(0)} s: ${counts.ledger} ledger rows, ${counts.summaries} day totals; starting the gateway`);
      // The newest local day of any zone, and the 90 before it: every participant's days are in range.
      const to = ZONES.map((zone) => localDayAt([{ zone, validFrom: 0 }], now)).reduce((a, b) => (b > a ? b : a));
      const from = addDays(to, -(e.days - 1));
      const gateway = await startGateway(url, o.profileDir && join(o.profileDir, 'gateway-export'));
      try {
        const loadBefore = os.loadavg();
        const m = await measureExport(gateway, from, to);
        const expectedRows = e.participants * e.days;
        result.export = {
          participants: e.participants,
          days: e.days,
          from,
          to,
          rows: m.rows,
          expectedRows,
          participantsSeen: m.participants,
          bytes: m.bytes,
          seconds: m.seconds,
          rssBeforeBytes: m.rssBefore,
          peakRssBytes: m.peak,
          samples: m.samples,
          processPeakRssBytes: readProcResources(gateway.process.proc.pid!).peakRssBytes,
          ledgerRows: counts.ledger,
          summaryRows: counts.summaries,
          seedSeconds,
          date: new Date().toISOString(),
          loadBefore,
          loadAfter: os.loadavg(),
        };
        o.log(
          `    compliance.csv ${from}…${to}: ${m.rows}/${expectedRows} rows, ${m.participants} participants, ${(m.bytes / MB).toFixed(1)} MiB in ${m.seconds.toFixed(1)} s; ` +
            `gateway RSS ${(m.rssBefore / MB).toFixed(0)} MiB before, peak ${(m.peak / MB).toFixed(0)} MiB while streaming (${m.samples} samples)`,
        );
        if (m.rows !== expectedRows) o.log(`    INCOMPLETE: ${expectedRows - m.rows} rows missing`);
      } finally {
        await gateway.stop();
      }
    }
    return result;
  } finally {
    for (const fn of undo.reverse()) await fn().catch(() => {});
  }
}
