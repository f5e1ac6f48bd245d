import type { DayTruth } from '../world/day.ts';
import { parseIntradayWindow, slicesFor, type DataContext, type Slice } from './context.ts';
import { floating, frameOffset } from './wire-time.ts';

/** One minute of an intraday window, rendered in the request's frame. */
export interface Row {
  /** `HH:mm:ss` in the frame. */
  time: string;
  day: DayTruth | null;
  index: number;
  /** Whether the device has synced this minute. */
  visible: boolean;
}

const MINUTE = 60_000;
const DAY = 86_400_000;
/** `HH:mm` and `HH:mm:00` of each minute of a day. */
const HM = Array.from({ length: 1440 }, (_, m) => `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`);
const HMS = HM.map((hm) => `${hm}:00`);

/**
 * The minutes of an intraday window as rows in time order. Times are floating, so a DST
 * fall-back day lists the repeated hour twice and a spring-forward day skips one (§4).
 * A row is in the window when `${request date}T${HH:mm}` lies between the window's keys.
 */
export function intradayRows(
  ctx: DataContext,
  first: string,
  second: string,
  startTime?: string,
  endTime?: string,
): { dates: string[]; rows: Row[]; slices: Map<string, Slice[]> } {
  const window = parseIntradayWindow(ctx, first, second, startTime, endTime);
  const rows: Row[] = [];
  const slices = new Map<string, Slice[]>();
  const fromDate = window.fromKey.slice(0, 10);
  const fromTime = window.fromKey.slice(11);
  const toDate = window.toKey.slice(0, 10);
  const toTime = window.toKey.slice(11);
  for (const date of window.dates) {
    const dateSlices = slicesFor(ctx, date);
    slices.set(date, dateSlices);
    // Compared as the key strings would be: the date first, then the clock time.
    if (date < fromDate || date > toDate) continue;
    const minFrom = date === fromDate ? fromTime : undefined;
    const maxTo = date === toDate ? toTime : undefined;
    for (const s of dateSlices) {
      for (let i = s.from; i < s.to; i += 1) {
        const t = s.view.start + i * MINUTE;
        const local = t + frameOffset(ctx.frame, t);
        let hm: string;
        let time: string;
        if (local % MINUTE === 0) {
          // Whole minutes (every zone's offset is): the clock time from a table, no string built.
          const m = Math.floor((((local % DAY) + DAY) % DAY) / MINUTE);
          hm = HM[m]!;
          time = HMS[m]!;
        } else {
          time = floating(ctx.frame, t).slice(11, 19);
          hm = time.slice(0, 5);
        }
        if ((minFrom !== undefined && hm < minFrom) || (maxTo !== undefined && hm > maxTo)) continue;
        rows.push({ time, day: s.view.day, index: i, visible: i < s.view.visibleMinutes });
      }
    }
  }
  return { dates: window.dates, rows, slices };
}

/**
 * Groups rows into buckets of `minutes` by clock time. Rows join a bucket only when they are
 * within `minutes` of its first row, so the two copies of a DST-repeated hour stay apart.
 */
export function buckets(rows: Row[], minutes: number): Array<{ time: string; rows: Row[] }> {
  const out: Array<{ time: string; rows: Row[] }> = [];
  for (const row of rows) {
    const m = Number(row.time.slice(0, 2)) * 60 + Number(row.time.slice(3, 5));
    const b = m - (m % minutes);
    const time = `${String(Math.floor(b / 60)).padStart(2, '0')}:${String(b % 60).padStart(2, '0')}:00`;
    const last = out[out.length - 1];
    const head = last?.rows[0];
    if (last && head && last.time === time && head.day === row.day && row.index - head.index < minutes) last.rows.push(row);
    else out.push({ time, rows: [row] });
  }
  return out;
}
