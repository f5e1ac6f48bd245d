import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.ts';

/** What Postgres holds for fitlamp, for `pnpm demo`, benchmarks and docs/pipeline.md's arithmetic. */
export interface StorageStats {
  /** The whole database, on disk (pg_database_size). */
  databaseBytes: number;
  /** The outbox: table, TOAST and indexes (pg_total_relation_size of event_chunks). */
  eventChunksBytes: number;
  eventChunks: number;
  /** Events still held in chunks (pending, sending, parked, or delivered within retention). */
  eventsInChunks: number;
  daySummariesBytes: number;
}

export async function findStorageStats(db: Kysely<Database>): Promise<StorageStats> {
  const { rows } = await sql<{ db: string; chunks: string; n: string; events: string; summaries: string }>`
    select pg_database_size(current_database()) as db,
      pg_total_relation_size('event_chunks') as chunks,
      (select count(*) from event_chunks) as n,
      (select coalesce(sum(event_count), 0) from event_chunks) as events,
      pg_total_relation_size('day_summaries') as summaries`.execute(db);
  const r = rows[0]!;
  return {
    databaseBytes: Number(r.db),
    eventChunksBytes: Number(r.chunks),
    eventChunks: Number(r.n),
    eventsInChunks: Number(r.events),
    daySummariesBytes: Number(r.summaries),
  };
}

/** The server's current WAL position; pass it to {@link walBytesSince}. */
export async function currentWalLsn(db: Kysely<Database>): Promise<string> {
  const { rows } = await sql<{ lsn: string }>`select pg_current_wal_lsn()::text as lsn`.execute(db);
  return rows[0]!.lsn;
}

/** WAL bytes the whole server wrote since `lsn` (every database on it, not only this one). */
export async function walBytesSince(db: Kysely<Database>, lsn: string): Promise<number> {
  const { rows } = await sql<{ n: string }>`select pg_wal_lsn_diff(pg_current_wal_lsn(), ${lsn}::pg_lsn) as n`.execute(db);
  return Number(rows[0]!.n);
}
