import { appendFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { toSensorEvent, type OutboxRecord } from '@fitlamp/db';

/**
 * The optional raw archive (ARCHIVE_DIR): every event mindLAMP has, appended as one NDJSON line
 * (mindLAMP's SensorEvent plus the stream) to `<dir>/<participant>/<day>.ndjson` once its batch is
 * delivered. It is a sink, not the outbox: Postgres keeps events only for the retention window,
 * and the archive is written after delivery is recorded, so a crash between the two can leave a
 * batch out of it (mindLAMP has it either way).
 */
export async function appendToArchive(dir: string, participantId: string, records: readonly OutboxRecord[]): Promise<void> {
  const byDay = new Map<string, string[]>();
  for (const record of records) {
    const lines = byDay.get(record.day) ?? [];
    lines.push(JSON.stringify({ ...toSensorEvent(record), stream: record.stream }));
    byDay.set(record.day, lines);
  }
  // Participant ids are mindLAMP ids; encoded anyway so that no id can name a path outside `dir`.
  const folder = join(dir, encodeURIComponent(participantId));
  await mkdir(folder, { recursive: true });
  for (const [day, lines] of byDay) await appendFile(join(folder, `${day}.ndjson`), `${lines.join('\n')}\n`);
}
