// What Postgres writes and keeps, measured without knowing the schema: the cluster's WAL position
// and the whole database's size (every table, index and TOAST relation), so the same code
// measures any storage design.
import { sql, type Kysely } from 'kysely';
import type { Database } from '@fitlamp/db';

export interface StorageSnapshot {
  /** pg_current_wal_lsn(): the cluster's WAL insert position. */
  walLsn: string;
  /** pg_database_size(current_database()), bytes. */
  databaseBytes: number;
}

export interface StorageResult {
  /** Where the database ran: its own cluster (nothing else writing WAL) or a shared one. */
  postgres: 'own cluster' | 'shared cluster';
  events: number;
  /** WAL bytes between the two snapshots (pg_wal_lsn_diff), the whole cluster's. */
  walBytes: number;
  walBytesPerEvent: number;
  /** Size of the database with the migrated schema and no participants (taken before the run). */
  emptyDatabaseBytes: number;
  databaseBytes: number;
  /** databaseBytes − emptyDatabaseBytes. */
  keptBytes: number;
  keptBytesPerEvent: number;
  /** The largest relations at the end (table with its indexes and TOAST), bytes. */
  largest: Array<{ name: string; bytes: number }>;
}

export async function storageSnapshot(db: Kysely<Database>): Promise<StorageSnapshot> {
  const { rows } = await sql<{ lsn: string; size: string }>`
    select pg_current_wal_lsn()::text as lsn, pg_database_size(current_database()) as size`.execute(db);
  return { walLsn: rows[0]!.lsn, databaseBytes: Number(rows[0]!.size) };
}

export async function walBytesBetween(db: Kysely<Database>, from: string, to: string): Promise<number> {
  const { rows } = await sql<{ bytes: string }>`select pg_wal_lsn_diff(${to}::pg_lsn, ${from}::pg_lsn) as bytes`.execute(db);
  return Number(rows[0]!.bytes);
}

/** Tables of the current database by total size (with indexes and TOAST), largest first. */
export async function largestTables(db: Kysely<Database>, limit = 8): Promise<Array<{ name: string; bytes: number }>> {
  const { rows } = await sql<{ name: string; bytes: string }>`
    select c.relname as name, pg_total_relation_size(c.oid) as bytes
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relkind in ('r', 'p', 'm') and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%'
    order by 2 desc limit ${limit}`.execute(db);
  return rows.map((r) => ({ name: r.name, bytes: Number(r.bytes) }));
}

/** From a snapshot taken on the empty schema before the run and one after it. */
export async function storageBetween(
  db: Kysely<Database>,
  before: StorageSnapshot,
  after: StorageSnapshot,
  events: number,
  postgres: StorageResult['postgres'],
): Promise<StorageResult> {
  const walBytes = await walBytesBetween(db, before.walLsn, after.walLsn);
  const keptBytes = after.databaseBytes - before.databaseBytes;
  return {
    postgres,
    events,
    walBytes,
    walBytesPerEvent: events ? walBytes / events : 0,
    emptyDatabaseBytes: before.databaseBytes,
    databaseBytes: after.databaseBytes,
    keptBytes,
    keptBytesPerEvent: events ? keptBytes / events : 0,
    largest: await largestTables(db),
  };
}

/** One table's share of the database: heap, its indexes and its TOAST, with live and dead tuples. */
export interface RelationStats {
  name: string;
  heapBytes: number;
  indexBytes: number;
  /** The TOAST relation with its index. */
  toastBytes: number;
  liveTuples: number;
  deadTuples: number;
  /** Of the TOAST relation: chunks of ~2 KB, dead until VACUUM reaches them. */
  toastDeadTuples: number;
  autovacuums: number;
  /** Seconds since the last (auto)vacuum of the table, when there was one. */
  vacuumedSecondsAgo: number | null;
}

/** Every user table's heap, index and TOAST size and its live and dead tuples (pg_stat_user_tables), largest first. */
export async function relationStats(db: Kysely<Database>): Promise<RelationStats[]> {
  const { rows } = await sql<{
    name: string; heap: string; idx: string; toast: string; live: string; dead: string; toast_dead: string | null; autovacuums: string; ago: number | null;
  }>`
    select c.relname as name, pg_relation_size(c.oid) as heap, pg_indexes_size(c.oid) as idx,
      coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0) as toast,
      s.n_live_tup as live, s.n_dead_tup as dead, ts.n_dead_tup as toast_dead,
      s.autovacuum_count + s.vacuum_count as autovacuums,
      extract(epoch from now() - greatest(s.last_autovacuum, s.last_vacuum))::float8 as ago
    from pg_class c
    join pg_stat_user_tables s on s.relid = c.oid
    left join pg_stat_all_tables ts on ts.relid = c.reltoastrelid
    order by pg_total_relation_size(c.oid) desc`.execute(db);
  return rows.map((r) => ({
    name: r.name,
    heapBytes: Number(r.heap),
    indexBytes: Number(r.idx),
    toastBytes: Number(r.toast),
    liveTuples: Number(r.live),
    deadTuples: Number(r.dead),
    toastDeadTuples: Number(r.toast_dead ?? 0),
    autovacuums: Number(r.autovacuums),
    vacuumedSecondsAgo: r.ago,
  }));
}
