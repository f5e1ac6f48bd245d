import { SLEEP_LEVELS, localToUtc, sleepLevel, type NormalizedRecord, type ZoneHistory } from '@fitlamp/provider';
import { FITBIT_SOURCE, SENSORS } from './normalize.ts';

const LEVELS = SLEEP_LEVELS;

interface Piece {
  start: number;
  end: number;
  level: string;
}

interface LevelItem {
  dateTime: string;
  level: string;
  seconds: number;
}

function levelItems(v: unknown): LevelItem[] {
  if (!Array.isArray(v)) return [];
  return v.filter(
    (x): x is LevelItem =>
      typeof x === 'object' && x !== null && typeof x.dateTime === 'string' && typeof x.level === 'string' && typeof x.seconds === 'number' && x.seconds > 0,
  );
}

/** Floating local start times → UTC intervals, in series order so a fall-back hour resolves forward. */
function toIntervals(items: readonly LevelItem[], zones: ZoneHistory, notBefore?: number): Piece[] {
  let previous = notBefore === undefined ? undefined : notBefore - 1;
  return items.map((item) => {
    const start = localToUtc(item.dateTime, zones, previous === undefined ? {} : { notBefore: previous + 1 });
    previous = start;
    return { start, end: start + item.seconds * 1000, level: item.level };
  });
}

/**
 * A log's timeline without overlaps. `shortData` holds wake periods of ≤ 3 min that lie on top of
 * `data` sleep segments (fitbit-web-api §3.3), and Fitbit's own minutes count them as wake. So
 * each sleep segment a short wake overlaps is split around it: the piece before, the wake, the
 * piece after. A short wake inside a wake segment is already counted and adds nothing. The pieces
 * then tile the log exactly once, and their in_sleep total is the log's `minutesAsleep`.
 */
export function sleepTimeline(levels: unknown, zones: ZoneHistory): Piece[] {
  const l = (typeof levels === 'object' && levels !== null ? levels : {}) as { data?: unknown; shortData?: unknown };
  const segments = toIntervals(levelItems(l.data), zones);
  const shortWakes = toIntervals(levelItems(l.shortData), zones, segments[0]?.start).sort((a, b) => a.start - b.start);
  const pieces: Piece[] = [];
  for (const segment of segments) {
    if (LEVELS[segment.level]?.representation === 'in_awake') {
      pieces.push(segment);
      continue;
    }
    let cursor = segment.start;
    for (const wake of shortWakes) {
      const start = Math.max(wake.start, cursor);
      const end = Math.min(wake.end, segment.end);
      if (end <= start) continue;
      if (start > cursor) pieces.push({ start: cursor, end: start, level: segment.level });
      pieces.push({ start, end, level: wake.level });
      cursor = end;
    }
    if (cursor < segment.end) pieces.push({ start: cursor, end: segment.end, level: segment.level });
  }
  return pieces;
}

/**
 * Sleep v1.2 logs (fitbit-web-api §3.3) as one `lamp.sleep` event per timeline piece, stamped
 * at the piece's end like HealthKit samples, on the log's `dateOfSleep` (the wake date). Logs
 * whose `dateOfSleep` is not in `days` are dropped (a range can return the day before its start).
 */
export function normalizeSleep(days: readonly string[], logs: readonly unknown[], zones: ZoneHistory): NormalizedRecord[] {
  const wanted = new Set(days);
  const out: NormalizedRecord[] = [];
  for (const raw of logs) {
    if (typeof raw !== 'object' || raw === null) continue;
    const log = raw as { dateOfSleep?: unknown; logId?: unknown; levels?: unknown; isMainSleep?: unknown };
    if (typeof log.dateOfSleep !== 'string' || !wanted.has(log.dateOfSleep)) continue;
    if (typeof log.logId !== 'number' && typeof log.logId !== 'string') continue;
    for (const piece of sleepTimeline(log.levels, zones)) {
      const level = sleepLevel(piece.level);
      const duration = piece.end - piece.start;
      out.push({
        stream: 'sleep',
        day: log.dateOfSleep,
        event: {
          timestamp: piece.end,
          sensor: SENSORS.sleep,
          data: {
            value: level.value,
            representation: level.representation,
            stage: piece.level,
            duration,
            log_id: log.logId,
            ...(typeof log.isMainSleep === 'boolean' ? { main_sleep: log.isMainSleep } : {}),
            source: FITBIT_SOURCE,
          },
          duration,
        },
        // Not the log id: it changes when Fitbit splits or stitches a log, and differs in the
        // Google Health API; a stage ending at an instant identifies the segment either way.
        distinct: piece.level,
      });
    }
  }
  return out;
}
