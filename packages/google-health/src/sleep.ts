import { ProviderError, SLEEP_LEVELS, type NormalizedRecord, type ZoneHistory } from '@fitlamp/provider';
import { sessionDay, GOOGLE_SOURCE, SENSORS } from './normalize.ts';
import { arrayAt, isObject, objectAt, stringAt, timestampMs } from './proto-json.ts';

const LEVELS = SLEEP_LEVELS;

function levelOf(stageType: string | undefined, stagesLog: boolean): string {
  switch (stageType) {
    case 'LIGHT':
      return 'light';
    case 'DEEP':
      return 'deep';
    case 'REM':
      return 'rem';
    case 'ASLEEP':
      return 'asleep';
    case 'RESTLESS':
      return 'restless';
    case 'AWAKE':
      return stagesLog ? 'wake' : 'awake';
    default:
      return 'unknown';
  }
}

export interface SleepPiece {
  start: number;
  end: number;
  level: string;
}

/**
 * A session's stages as a timeline without overlaps. The discovery document promises
 * "non-overlapping contiguous sleep stage segments"; if two overlap anyway, the later one starts
 * where the earlier ends, so no minute is counted twice. `outOfBedSegments` "can overlap with
 * sleep stages" and the legacy provider writes nothing like them: they are left out.
 */
export function sleepTimeline(sleep: unknown): SleepPiece[] {
  const type = stringAt(sleep, 'type');
  const raw = arrayAt(sleep, 'stages')
    .map((s) => (isObject(s) ? { start: timestampMs(s.startTime), end: timestampMs(s.endTime), type: stringAt(s, 'type') } : { start: undefined, end: undefined, type: undefined }))
    .filter((s): s is { start: number; end: number; type: string | undefined } => s.start !== undefined && s.end !== undefined && s.end > s.start)
    .sort((a, b) => a.start - b.start || a.end - b.end);
  const stagesLog = type === 'STAGES' || (type !== 'CLASSIC' && raw.some((s) => s.type === 'LIGHT' || s.type === 'DEEP' || s.type === 'REM'));
  const pieces: SleepPiece[] = [];
  let cursor = Number.NEGATIVE_INFINITY;
  for (const s of raw) {
    const start = Math.max(s.start, cursor);
    if (s.end <= start) continue;
    pieces.push({ start, end: s.end, level: levelOf(s.type, stagesLog) });
    cursor = s.end;
  }
  return pieces;
}

/**
 * Whether Google is still working on a session: `metadata.processed` is proto3 `false` (omitted)
 * until "sleep and sleep stages algorithms finished processing" (discovery `SleepMetadata`). A
 * session that already has stages but no `processed` flag is taken as final: Google is known to
 * omit documented metadata (`nap`, google-health-api §3.1).
 */
function stillProcessing(sleep: unknown): boolean {
  const processed = objectAt(sleep, 'metadata')?.processed;
  if (processed === true) return false;
  if (processed === false) return true;
  return arrayAt(sleep, 'stages').length === 0;
}

/**
 * Sleep sessions as one `lamp.sleep` event per stage piece, stamped at the piece's end like
 * HealthKit samples, on the local date the session ended (the legacy `dateOfSleep`). `distinct`
 * is the stage, not the session id: Google's ids differ from the legacy log ids, and pieces of one
 * participant's sleep never share an end instant and a stage. A session still being processed
 * for a requested day fails the request as `unavailable` (reason `pending`), like the legacy
 * provider's `meta.state: "pending"`: its stages would change after delivery.
 */
export function normalizeSleep(days: readonly string[], points: readonly unknown[], zones: ZoneHistory): NormalizedRecord[] {
  const wanted = new Set(days);
  const out: NormalizedRecord[] = [];
  const seen = new Set<string>();
  for (const p of points) {
    const sleep = objectAt(p, 'sleep');
    const day = sessionDay(objectAt(sleep, 'interval'), 'end', zones);
    if (!sleep || !day || !wanted.has(day)) continue;
    if (stillProcessing(sleep)) {
      throw new ProviderError('unavailable', `Google Health sleep: a session ending on ${day} is still being processed; retry later`, {
        endpoint: 'sleep',
        reason: 'pending',
      });
    }
    for (const piece of sleepTimeline(sleep)) {
      const key = `${piece.end}|${piece.level}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const level = LEVELS[piece.level] ?? LEVELS.unknown!;
      const duration = piece.end - piece.start;
      out.push({
        stream: 'sleep',
        day,
        event: {
          timestamp: piece.end,
          sensor: SENSORS.sleep,
          data: { value: level.value, representation: level.representation, stage: piece.level, duration, source: GOOGLE_SOURCE },
          duration,
        },
        distinct: piece.level,
      });
    }
  }
  return out;
}
