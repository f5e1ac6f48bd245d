import type { DayTruth } from '../world/day.ts';
import { parseIntradayWindow, slicesFor, type DataContext, type Slice } from './context.ts';
import { floating } from './wire-time.ts';

/** One minute of an intraday window, rendered in the request's frame. */
export interface Row {
  /** `YYYY-MM-DDTHH:mm` in the frame (the request date, not necessarily the local date). */
  key: string;
  /** `HH:mm:ss` in the frame. */
  time: string;
  day: DayTruth | null;
  index: number;
  /** Whether the device has synced this minute. */
  visible: boolean;
}

/**
 * The minutes of an intraday window as rows in time order. Times are floating, so a DST
 * fall-back day lists the repeated hour twice and a spring-forward day skips one (§4).
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
  for (const date of window.dates) {
    const dateSlices = slicesFor(ctx, date);
    slices.set(date, dateSlices);
    for (const s of dateSlices) {
      for (let i = s.from; i < s.to; i += 1) {
        const time = floating(ctx.frame, s.view.start + i * 60_000).slice(11, 19);
        const key = `${date}T${time.slice(0, 5)}`;
        if (key < window.fromKey || key > window.toKey) continue;
        rows.push({ key, time, day: s.view.day, index: i, visible: i < s.view.visibleMinutes });
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
