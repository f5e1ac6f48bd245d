import { createHash } from 'node:crypto';
import type { LampEvent, NormalizedRecord } from './provider.ts';

/**
 * The deterministic identity of a record: participant, sensor, timestamp and what distinguishes
 * it. The same datum fetched again, from either API, gets the same key.
 */
export function recordKey(participantId: string, record: NormalizedRecord): string {
  return `${participantId}|${record.event.sensor}|${record.event.timestamp}|${record.distinct}`;
}

/** JSON with object keys sorted, so equal data hashes equally whatever the key order. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/** Hash of what mindLAMP would store for an event: an unchanged re-fetch hashes the same. */
export function eventHash(event: LampEvent): string {
  return createHash('sha256')
    .update(canonicalJson({ d: event.data, u: event.duration ?? null }))
    .digest('base64url')
    .slice(0, 22);
}
