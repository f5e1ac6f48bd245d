import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';

/** Timestamps: written as Date or ISO string, read as Date. */
type Timestamp = ColumnType<Date, Date | string, Date | string>;
type Created = ColumnType<Date, Date | string | undefined, Date | string>;
/** `bigint` columns come back from pg as strings; fitlamp's values fit in a JS number. */
type Int8 = ColumnType<string, number | bigint | string, number | bigint | string>;
/** `date` columns: read as YYYY-MM-DD strings (see the pg type parser in db.ts). */
type DateOnly = ColumnType<string, string, string>;
/** bigserial ids: generated on insert, read as strings. */
type Id = ColumnType<string, never, never>;

export type ProviderName = 'fitbit' | 'google-health';
export type ConnectionStatus = 'connected' | 'reconnect_needed' | 'needs_reconsent' | 'revoked' | 'disconnected';
export type DayStatus = 'settled' | 'partial' | 'empty' | 'not_synced' | 'failed';
export type RecordStatus = 'pending' | 'sending' | 'delivered' | 'parked';
export type BatchStatus = 'sending' | 'delivered' | 'unknown' | 'parked' | 'abandoned';

export interface ParticipantsTable {
  id: string;
  study_id: string | null;
  created_at: Created;
  updated_at: Created;
}

export interface ProviderConnectionsTable {
  id: Id;
  participant_id: string;
  provider: ProviderName;
  status: ConnectionStatus;
  status_reason: string | null;
  provider_user_id: string | null;
  legacy_user_id: string | null;
  access_token_enc: string | null;
  refresh_token_enc: string | null;
  key_id: string | null;
  token_version: Generated<number>;
  access_token_expires_at: Timestamp | null;
  refresh_token_expires_at: Timestamp | null;
  scopes: ColumnType<string[], string[] | undefined, string[]>;
  intraday_access: boolean | null;
  device_last_sync_at: Timestamp | null;
  /** When the fetcher last read the account's profile (time zone), on its clock. */
  profile_checked_at: Timestamp | null;
  rate_limit_remaining: number | null;
  rate_limit_reset_at: Timestamp | null;
  connected_at: Timestamp | null;
  disconnected_at: Timestamp | null;
  last_sync_at: Timestamp | null;
  created_at: Created;
  updated_at: Created;
}

export interface OauthStatesTable {
  state_hash: string;
  participant_id: string;
  provider: ProviderName;
  code_verifier_enc: string;
  scopes_requested: string[];
  browser_nonce_hash: string | null;
  link_issued_at: Timestamp | null;
  expires_at: Timestamp;
  used_at: Timestamp | null;
  created_at: Created;
}

export interface ParticipantTimeZonesTable {
  participant_id: string;
  zone: string;
  valid_from: Timestamp;
  source: string;
  recorded_at: Created;
}

export interface SyncCursorsTable {
  participant_id: string;
  stream: string;
  next_due_at: Created;
  last_attempt_at: Timestamp | null;
  last_success_at: Timestamp | null;
  last_error: string | null;
  state: ColumnType<Record<string, unknown>, string | undefined, string>;
  updated_at: Created;
}

export interface DayLedgerTable {
  participant_id: string;
  stream: string;
  day: DateOnly;
  status: DayStatus;
  reason: string | null;
  provider: ProviderName | null;
  records_fetched: Generated<number>;
  records_delivered: Generated<number>;
  content_hash: string | null;
  fetch_count: Generated<number>;
  fetched_at: Timestamp | null;
  synced_through: Timestamp | null;
  settled_at: Timestamp | null;
  updated_at: Created;
}

export interface DeliveryBatchesTable {
  id: Id;
  participant_id: string;
  status: BatchStatus;
  event_count: number;
  bytes: number;
  from_ts: Int8;
  to_ts: Int8;
  attempts: Generated<number>;
  last_error: string | null;
  created_at: Created;
  updated_at: Created;
  completed_at: Timestamp | null;
}

export interface RecordsTable {
  id: Id;
  record_key: string;
  participant_id: string;
  stream: string;
  day: DateOnly;
  sensor: string;
  timestamp: Int8;
  duration: Int8 | null;
  data: ColumnType<Record<string, unknown>, string, string>;
  data_hash: string;
  delivered_hash: string | null;
  revision: Generated<number>;
  status: RecordStatus;
  batch_id: Int8 | null;
  created_at: Created;
  updated_at: Created;
  delivered_at: Timestamp | null;
}

export interface ProviderWebhooksTable {
  provider: ProviderName;
  /** The last notification whose signature verified. */
  last_verified_at: Timestamp;
  notifications: Int8;
  updated_at: Created;
}

/** The whole schema, as Kysely sees it. */
export interface Database {
  participants: ParticipantsTable;
  provider_connections: ProviderConnectionsTable;
  oauth_states: OauthStatesTable;
  participant_time_zones: ParticipantTimeZonesTable;
  sync_cursors: SyncCursorsTable;
  day_ledger: DayLedgerTable;
  delivery_batches: DeliveryBatchesTable;
  records: RecordsTable;
  provider_webhooks: ProviderWebhooksTable;
}

export type Participant = Selectable<ParticipantsTable>;
export type ProviderConnection = Selectable<ProviderConnectionsTable>;
export type NewProviderConnection = Insertable<ProviderConnectionsTable>;
export type ProviderConnectionUpdate = Updateable<ProviderConnectionsTable>;
export type OauthState = Selectable<OauthStatesTable>;
export type SyncCursor = Selectable<SyncCursorsTable>;
export type DayLedgerRow = Selectable<DayLedgerTable>;
export type DeliveryBatch = Selectable<DeliveryBatchesTable>;
export type RecordRow = Selectable<RecordsTable>;
