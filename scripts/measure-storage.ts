// `tsx scripts/measure-storage.ts [--participants 5] [--days 7]`: what the outbox costs in Postgres,
// for docs/pipeline.md's "Storage and retention". Stores a backfill of realistic events (per
// participant-day ~1,000 heart-rate minutes, ~450 step minutes, ~30 sleep stages and a few daily
// values, shaped as docs/mapping.md says) through the fetcher's store path, delivers them through
// the lamp-writer's claim/settle path, and reports bytes kept and WAL written per event. WAL is
// the whole server's (pg_current_wal_lsn): on a shared Postgres other databases' writes count too,
// so run it on a quiet server (the lowest of several runs is the closest).
import { parseArgs } from 'node:util';
import {
  claimBatch,
  compactDeliveredEvents,
  createDb,
  currentWalLsn,
  findStorageStats,
  markBatchDelivered,
  migrateToLatest,
  storeFetchedDays,
  walBytesSince,
  type FetchedRecord,
} from '@fitlamp/db';
import { eventHash, type LampEvent } from '@fitlamp/provider';
import { createTestDatabase } from '@fitlamp/testing';

const { values } = parseArgs({ options: { participants: { type: 'string', default: '5' }, days: { type: 'string', default: '7' } } });
const participants = Number(values.participants);
const days = Number(values.days);
const SOURCE = 'com.google.health';
const START = Date.parse('2026-11-01T05:00:00Z');

function dayEvents(participantId: string, dayIndex: number): Map<string, Array<{ event: LampEvent; distinct: string }>> {
  const start = START + dayIndex * 86_400_000;
  const minute = (m: number) => start + m * 60_000;
  const streams = new Map<string, Array<{ event: LampEvent; distinct: string }>>();
  const add = (stream: string, event: LampEvent, distinct = '') => streams.set(stream, [...(streams.get(stream) ?? []), { event, distinct }]);
  for (let m = 0; m < 1_440; m++) {
    if (m % 10 < 7) add('heart_rate', { timestamp: minute(m), sensor: 'lamp.heart_rate', data: { value: 55 + ((m * 7 + dayIndex) % 60), unit: 'bpm', source: SOURCE } });
    if (m >= 420 && m < 1_320 && m % 2 === 0) add('steps', { timestamp: minute(m), sensor: 'lamp.steps', data: { value: 1 + ((m * 13) % 120), unit: 'count', type: 'step_count', source: SOURCE } });
  }
  const stages = ['light', 'deep', 'rem', 'wake'];
  for (let i = 0; i < 30; i++) {
    const stage = stages[i % 4]!;
    const duration = (5 + (i % 20)) * 60_000;
    add('sleep', {
      timestamp: start - 6 * 3_600_000 + i * 900_000,
      sensor: 'lamp.sleep',
      duration,
      data: { value: i % 4 === 3 ? 2 : 3 + (i % 3), representation: stage === 'wake' ? 'in_awake' : 'in_sleep', stage, duration, log_id: `${dayIndex}${participantId.slice(-3)}`, main_sleep: true, source: SOURCE },
    }, `${stage}${i}`);
  }
  add('resting_heart_rate', { timestamp: start, sensor: 'lamp.resting_heartrate', data: { value: 58, unit: 'bpm', source: SOURCE } });
  add('spo2', { timestamp: start, sensor: 'lamp.oxygen_saturation', data: { value: 96.4, unit: '%', min: 93, max: 99, source: SOURCE } });
  add('hrv', { timestamp: start, sensor: 'lamp.heartratevariability_rmssd', data: { value: 41.2, unit: 'ms', deep_rmssd: 44.1, source: SOURCE } });
  return streams;
}

const t = await createTestDatabase({ migrated: false });
const db = createDb(t.url, { max: 4, applicationName: 'fitlamp-measure-storage' });
try {
  await migrateToLatest(db);
  const ids = Array.from({ length: participants }, (_, i) => `U${String(i + 1).padStart(10, '0')}`);
  await db.insertInto('participants').values(ids.map((id) => ({ id }))).execute();
  const empty = await findStorageStats(db);

  let events = 0;
  let walStored = 0;
  for (const participantId of ids) {
    const walStart = await currentWalLsn(db);
    for (let d = 0; d < days; d++) {
      const day = new Date(START + d * 86_400_000).toISOString().slice(0, 10);
      for (const [stream, list] of dayEvents(participantId, d)) {
        const records: FetchedRecord[] = list.map(({ event, distinct }) => ({
          key: `${participantId}|${event.sensor}|${event.timestamp}|${distinct}`,
          stream,
          day,
          sensor: event.sensor,
          timestamp: event.timestamp,
          duration: event.duration ?? null,
          data: event.data,
          hash: eventHash(event),
        }));
        events += records.length;
        await storeFetchedDays(db, {
          participantId,
          provider: 'google-health',
          stream,
          days: [{ day, dayEnd: START + (d + 1) * 86_400_000, records, contentHash: `${day}:${stream}:${records.length}` }],
          lastDeviceSync: START + days * 86_400_000,
        });
      }
    }
    walStored += await walBytesSince(db, walStart);
  }
  let walDelivered = 0;
  for (const participantId of ids) {
    const walStart = await currentWalLsn(db);
    for (;;) {
      const claimed = await claimBatch(db, participantId, 1_000, 1_000_000);
      if (!claimed) break;
      await markBatchDelivered(db, claimed.batch);
    }
    walDelivered += await walBytesSince(db, walStart);
  }
  const kept = await findStorageStats(db);
  // Retention with a window that ends before the backfill: everything compacts to summaries.
  for (const participantId of ids) await compactDeliveredEvents(db, participantId, '2099-01-01');
  const compacted = await findStorageStats(db);

  const perEvent = (n: number) => (n / events).toFixed(1);
  console.log(`${participants} participants × ${days} days: ${events} events (${Math.round(events / participants / days)} per participant-day)`);
  console.log(`  WAL, store (fetcher path):          ${walStored} bytes, ${perEvent(walStored)} per event`);
  console.log(`  WAL, claim + settle (writer path):  ${walDelivered} bytes, ${perEvent(walDelivered)} per event`);
  console.log(`  WAL, total:                         ${perEvent(walStored + walDelivered)} per event`);
  console.log(`  event_chunks after delivery:        ${kept.eventChunksBytes} bytes in ${kept.eventChunks} rows, ${perEvent(kept.eventChunksBytes)} per event`);
  console.log(`  database growth after delivery:     ${kept.databaseBytes - empty.databaseBytes} bytes, ${perEvent(kept.databaseBytes - empty.databaseBytes)} per event`);
  console.log(`  after compacting every day:         event_chunks ${compacted.eventChunksBytes} bytes (${compacted.eventChunks} rows), day_summaries ${compacted.daySummariesBytes} bytes`);
} finally {
  await db.destroy();
  await t.drop();
}
