import { parseLocal } from './time-zones.ts';

const DAY_MS = 86_400_000;

/**
 * Splits local days into the runs one request can cover: the days sorted and deduplicated, each
 * run spanning at most `maxDays` calendar days from its first to its last (gaps between sparse
 * days cost nothing extra) and listing only the days asked for. `Infinity` gives one run.
 * Every provider's `planRequests` chunks with this; how many days an endpoint takes is its own.
 */
export function chunkDays(days: readonly string[], maxDays: number): string[][] {
  const sorted = [...new Set(days)].sort();
  const out: string[][] = [];
  let chunk: string[] = [];
  for (const day of sorted) {
    const first = chunk[0];
    if (first !== undefined && (parseLocal(day) - parseLocal(first)) / DAY_MS + 1 > maxDays) {
      out.push(chunk);
      chunk = [];
    }
    chunk.push(day);
  }
  if (chunk.length > 0) out.push(chunk);
  return out;
}
