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
  /** Recent device syncs the provider reported, oldest first (recordDeviceSync keeps the last few). */
  device_sync_times: ColumnType<Date[], Date[] | undefined, Date[]>;
  /** Battery percent of the most recently synced device, when the provider reported one. */
  device_battery_level: number | null;
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
  /** The stream's total for the day (wear minutes, steps, sleep minutes), for streams that have one. */
  day_total: number | null;
  /** Events of the day whose value, at the last fetch, differs from the one mindLAMP first received. */
  revised_events: Generated<number>;
  /** Additive streams: events of the day that have a correction event (outbox.ts), in any status. */
  corrected_events: Generated<number>;
  /** Additive streams: the net difference the day's correction events carry (steps, active zone minutes). */
  correction_delta: Generated<number>;
  /** When retention deleted the day's delivered events (outbox.ts). */
  events_compacted_at: Timestamp | null;
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

/**
 * One event inside a chunk: key, timestamp, sensor, duration, data, hash; and for a correction
 * event (outbox.ts), `c`, the key of the event it corrects.
 */
export interface ChunkEvent {
  k: string;
  t: number;
  s: string;
  d: number | null;
  v: Record<string, unknown>;
  h: string;
  c?: string;
}

export interface EventChunksTable {
  id: Id;
  participant_id: string;
  stream: string;
  day: DateOnly;
  seq: number;
  status: RecordStatus;
  batch_id: Int8 | null;
  event_count: number;
  from_ts: Int8;
  content_hash: string;
  events: ColumnType<ChunkEvent[], string, string>;
  created_at: Created;
  updated_at: Created;
  delivered_at: Timestamp | null;
}

export interface DaySummariesTable {
  participant_id: string;
  day: DateOnly;
  wear_minutes: number | null;
  steps: number | null;
  sleep_minutes: number | null;
  updated_at: Created;
}

export interface ProviderWebhooksTable {
  provider: ProviderName;
  /** The last notification whose signature verified. */
  last_verified_at: Timestamp;
  notifications: Int8;
  updated_at: Created;
}

export interface WriterLeasesTable {
  participant_id: string;
  /** One run of a deliver job. */
  holder: string;
  acquired_at: Created;
  expires_at: Timestamp;
}

export interface CoordinatorsTable {
  name: string;
  token_hash: string;
  study_ids: string[];
  created_at: Created;
}

export type AlertRule = 'no_sync' | 'low_battery' | 'reconnect_needed' | 'low_wear' | 'deliveries_parked';

export interface AlertsTable {
  id: Id;
  participant_id: string;
  rule: AlertRule;
  idempotency_key: ColumnType<string, never, never>;
  opened_at: Timestamp;
  closed_at: Timestamp | null;
  acknowledged_at: Timestamp | null;
  acknowledged_by: string | null;
  notify_due_at: Timestamp | null;
  notify_attempts: Generated<number>;
  notify_last_error: string | null;
  notified_at: Timestamp | null;
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
  event_chunks: EventChunksTable;
  day_summaries: DaySummariesTable;
  provider_webhooks: ProviderWebhooksTable;
  writer_leases: WriterLeasesTable;
  coordinators: CoordinatorsTable;
  alerts: AlertsTable;
}

export type Participant = Selectable<ParticipantsTable>;
export type ProviderConnection = Selectable<ProviderConnectionsTable>;
export type NewProviderConnection = Insertable<ProviderConnectionsTable>;
export type ProviderConnectionUpdate = Updateable<ProviderConnectionsTable>;
export type OauthState = Selectable<OauthStatesTable>;
export type SyncCursor = Selectable<SyncCursorsTable>;
export type DayLedgerRow = Selectable<DayLedgerTable>;
export type DeliveryBatch = Selectable<DeliveryBatchesTable>;
export type EventChunkRow = Selectable<EventChunksTable>;
export type Coordinator = Selectable<CoordinatorsTable>;
export type Alert = Selectable<AlertsTable>;
