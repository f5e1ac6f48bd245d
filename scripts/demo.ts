// `pnpm demo` (or `bash scripts/demo.sh` on a fresh machine): the whole pipeline against the
// built-in simulators. Starts the Google Health, Fitbit and mindLAMP simulators and the four
// services as processes, enrolls and connects simulated participants the way a person would
// (following the consent redirects) through the Google Health API (`--provider fitbit`: the
// legacy Fitbit Web API), backfills a week, and prints what arrived in mindLAMP.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { currentWalLsn, findStorageStats, walBytesSince } from '@fitlamp/db';
import { startStack, type StackParticipant } from '@fitlamp/harness';
import { findUser, syncUser } from '@fitlamp/simulators';

const { values } = parseArgs({
  options: {
    participants: { type: 'string', default: '5' },
    days: { type: 'string', default: '7' },
    provider: { type: 'string', default: 'google-health' },
    serve: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log('usage: pnpm demo [--participants N (1-50, default 5)] [--days D (1-30, default 7)] [--provider google-health|fitbit (default google-health)] [--serve (keep the stack running to look at the dashboard)]');
  process.exit(0);
}
const count = Number(values.participants);
const days = Number(values.days);
if (!Number.isInteger(count) || count < 1 || count > 50) throw new Error('--participants must be a whole number from 1 to 50');
if (!Number.isInteger(days) || days < 1 || days > 30) throw new Error('--days must be a whole number from 1 to 30');
const provider = values.provider;
if (provider !== 'google-health' && provider !== 'fitbit') throw new Error('--provider must be google-health or fitbit');
const accountKind = provider === 'fitbit' ? 'Fitbit' : 'Google Health';

const presets = ['new-york', 'traveler', 'sydney', 'kolkata'];
/**
 * With --serve, some participants give the cockpit something to show: the second and fifth leave
 * the watch off most days, the third's battery is nearly empty, and the fourth removes fitlamp's
 * access once caught up (so it must reconnect).
 */
const NOT_COMPLIANT = { notWornRate: 0.45, thinRate: 0.35 };
const role = (i: number) => (!values.serve ? undefined : i === 1 || i === 4 ? 'not compliant' : i === 2 ? 'low battery' : i === 3 ? 'must reconnect' : undefined);
const participants: StackParticipant[] = Array.from({ length: count }, (_, i) => ({
  id: `U${String(i + 1).padStart(10, '0')}`,
  user: {
    id: `FB${String(i + 1).padStart(4, '0')}`,
    preset: presets[i % presets.length]!,
    ...(role(i) === 'not compliant' ? NOT_COMPLIANT : {}),
    ...(role(i) === 'low battery' ? { batteryPercent: 8 } : {}),
  },
  provider,
}));

const logDir = mkdtempSync(join(tmpdir(), 'fitlamp-demo-'));
const t0 = Date.now();
const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
console.log(`fitlamp demo: ${count} participants on ${accountKind}, ${days} days of backfill (service logs: ${logDir})`);

const stack = await startStack({
  participants,
  backfillDays: days,
  logDir,
  seed: 'fitlamp-demo',
  // The cockpit's alerts, evaluated often enough to watch them appear.
  ...(values.serve ? { serviceEnv: { gateway: { ALERT_EVALUATE_SECONDS: '10' } } } : {}),
});
let exitCode = 1;
try {
  console.log(`  started: simulators, gateway ${stack.gatewayUrl}, scheduler, fetcher, lamp-writer (${elapsed()})`);
  // Every simulated watch synced two minutes ago (the Fitbit servers have processed its sleep by
  // now), so the newest data is there to fetch.
  for (const p of participants) syncUser(stack.fitbit.world, findUser(stack.fitbit.world, p.user.id)!, stack.fitbit.clock.now() - 120_000);
  const walStart = await currentWalLsn(stack.db);
  for (const p of participants) {
    await stack.connect(p);
    const r = role(participants.indexOf(p));
    console.log(`  connected ${p.id} (simulated ${accountKind} account ${p.user.id}, ${p.user.preset}${r ? `; ${r}` : ''})`);
  }
  let lastLine = '';
  const done = await stack.waitUntilCaughtUp({
    timeoutMs: 10 * 60_000,
    onProgress: (p) => {
      const line = `  syncing: ${p.daysDone}/${p.daysExpected} stream-days fetched, ${p.delivered} events delivered`;
      if (line !== lastLine) console.log(line);
      lastLine = line;
    },
  });

  const counts = stack.lamp.countEvents();
  const sensors = new Map<string, number>();
  for (const participant of Object.values(counts.participants)) {
    for (const [sensor, n] of Object.entries(participant.sensors)) sensors.set(sensor, (sensors.get(sensor) ?? 0) + n);
  }
  const providerCounters = provider === 'fitbit' ? stack.fitbit.counters() : stack.google!.counters();
  const requests = Object.values(providerCounters.requests).reduce(
    (n, perEndpoint) => n + Object.values(perEndpoint).reduce((a, b) => a + b, 0),
    0,
  );
  const ledger = await stack.db
    .selectFrom('day_ledger')
    .select(['status', (eb) => eb.fn.countAll<string>().as('n')])
    .groupBy('status')
    .orderBy('status')
    .execute();
  const duplicates = stack.lamp.findDuplicates().extraCopies;
  const wal = await walBytesSince(stack.db, walStart);
  const storage = await findStorageStats(stack.db);
  const mib = (bytes: number) => `${(bytes / 1_048_576).toFixed(1)} MiB`;

  console.log('\nSummary');
  console.log(`  participants connected:   ${done.connected}`);
  console.log(`  events in mindLAMP:       ${counts.total}`);
  for (const [sensor, n] of [...sensors].sort()) console.log(`    ${sensor.padEnd(34)} ${n}`);
  console.log(`  provider requests:        ${requests} (${(requests / (count * days)).toFixed(1)} per participant-day)`);
  console.log(`  day ledger:               ${ledger.map((r) => `${r.n} ${r.status}`).join(', ')}`);
  console.log(`  duplicates in mindLAMP:   ${duplicates}`);
  console.log(`  time taken:               ${elapsed()}`);
  console.log(`  database size:            ${mib(storage.databaseBytes)} (outbox ${mib(storage.eventChunksBytes)} in ${storage.eventChunks} chunks: ${storage.eventsInChunks ? Math.round(storage.eventChunksBytes / storage.eventsInChunks) : 0} bytes per event)`);
  console.log(`  WAL written:              ${mib(wal)} (${counts.total ? Math.round(wal / counts.total) : 0} bytes per event; the whole Postgres server)`);
  exitCode = duplicates === 0 && counts.total === done.delivered ? 0 : 1;
  if (exitCode !== 0) console.log(`\nUnexpected: ${duplicates} duplicates, ${counts.total} events stored vs ${done.delivered} delivered.`);
  if (values.serve) {
    const leaving = participants.find((_, i) => role(i) === 'must reconnect');
    if (leaving) {
      // The participant removes fitlamp's access at the provider: the next sync's refresh is refused.
      (provider === 'fitbit' ? stack.fitbit : stack.google!).revokeUser(leaving.user.id);
      console.log(`\n  ${leaving.id} removed fitlamp's access at ${accountKind}; waiting for the next sync to notice…`);
      const until = Date.now() + 180_000;
      let status: string | undefined;
      while (Date.now() < until) {
        status = (await stack.db.selectFrom('provider_connections').select('status').where('participant_id', '=', leaving.id).executeTakeFirst())?.status;
        if (status !== 'connected') break;
        await new Promise((resolve) => setTimeout(resolve, 2000));
      }
      console.log(`  ${leaving.id} is ${status ?? 'unknown'}`);
    }
    console.log(`\nThe coordinator dashboard: ${stack.gatewayUrl}/admin`);
    console.log(`  sign in with user "admin" and password ${stack.adminToken}`);
    console.log('  (the simulators keep running; new data arrives as the simulated watches sync)');
    console.log('  Open alerts are listed at the top; they are re-evaluated every 10 s.');
    console.log('Press Ctrl-C to stop.');
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
  }
} catch (error) {
  console.error(`\ndemo failed: ${error instanceof Error ? error.message : String(error)}`);
  console.error(`service logs: ${logDir}`);
} finally {
  await stack.stop();
}
process.exitCode = exitCode;
