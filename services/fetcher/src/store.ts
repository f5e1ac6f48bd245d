import type { Kysely } from 'kysely';
import { storeFetchedDays, type Database, type FetchedDaysOutcome, type FetchedRecord, type ProviderName } from '@fitlamp/db';
import { eventHash, localDayBounds, recordKey, type DayResult, type StreamName, type ZoneHistory } from '@fitlamp/provider';

/**
 * Turns a provider's answer into outbox rows (deterministic keys, hashes, the day's bounds in the
 * participant's zones) and stores them with their ledger rows in one transaction
 * (`storeFetchedDays`). Unchanged re-fetches change nothing; changed records take the new value,
 * and stay delivered if mindLAMP already has them; records that vanished from the provider before
 * delivery are dropped.
 */
export async function storeDayResults(
  db: Kysely<Database>,
  input: {
    participantId: string;
    provider: ProviderName;
    stream: StreamName;
    results: readonly DayResult[];
    lastDeviceSync: number;
    zones: ZoneHistory;
    /** Keep a day's pending records that this answer did not repeat (accumulating streams). */
    keepVanished?: boolean;
  },
): Promise<FetchedDaysOutcome> {
  const days = input.results.map((result) => {
    const rows: FetchedRecord[] = result.records.map((r) => ({
      key: recordKey(input.participantId, r),
      stream: r.stream,
      day: r.day,
      sensor: r.event.sensor,
      timestamp: r.event.timestamp,
      duration: r.event.duration ?? null,
      data: r.event.data,
      hash: eventHash(r.event),
    }));
    // A provider may return the same datum twice in one answer (paging overlaps): keep one.
    const records = [...new Map(rows.map((r) => [r.key, r])).values()];
    return {
      day: result.day,
      dayEnd: localDayBounds(result.day, input.zones).end,
      records,
      contentHash: contentHashOf(records),
    };
  });
  return storeFetchedDays(db, {
    participantId: input.participantId,
    provider: input.provider,
    stream: input.stream,
    days,
    lastDeviceSync: input.lastDeviceSync,
    ...(input.keepVanished ? { keepVanished: true } : {}),
  });
}

/** What a day held when fetched: changes whenever any of its records does. */
function contentHashOf(records: readonly FetchedRecord[]): string {
  return eventHash({ timestamp: 0, sensor: '', data: { p: records.map((r) => `${r.key}:${r.hash}`).sort() } });
}
