import type { ZoneHistory } from './time-zones.ts';

export type ProviderName = 'fitbit' | 'google-health';

/**
 * The streams fitlamp syncs. Every provider maps its own data types onto these, so a
 * researcher cannot tell which API a record came from except by its `source`.
 */
export const STREAMS = [
  'steps',
  'heart_rate',
  'resting_heart_rate',
  'sleep',
  'spo2',
  'hrv',
  'breathing_rate',
  'skin_temperature',
  'active_zone_minutes',
  'exercise',
  'device',
] as const;
export type StreamName = (typeof STREAMS)[number];

export function isStreamName(value: string): value is StreamName {
  return (STREAMS as readonly string[]).includes(value);
}

/** One mindLAMP sensor event, as POSTed to `/participant/{id}/sensor_event`. */
export interface LampEvent {
  /** UTC epoch milliseconds. */
  timestamp: number;
  sensor: string;
  data: Record<string, unknown>;
  /** Milliseconds, for events that span time (sleep stages, workouts). */
  duration?: number;
}

/** A provider datum normalized into a mindLAMP event, with what fitlamp needs to track it. */
export interface NormalizedRecord {
  stream: StreamName;
  /** The participant's local calendar day the record belongs to (the ledger's day). */
  day: string;
  event: LampEvent;
  /**
   * What distinguishes this record from others with the same sensor and timestamp (e.g. a sleep
   * log id and stage). Empty when sensor and timestamp identify it.
   */
  distinct: string;
}

/** Tokens from a code exchange or refresh. */
export interface TokenGrant {
  accessToken: string;
  /** Absent when the provider kept the old one (Google omits it on refresh). */
  refreshToken?: string;
  /** UTC epoch ms. */
  accessTokenExpiresAt: number;
  /** UTC epoch ms; Google apps in Testing get 7-day refresh tokens. */
  refreshTokenExpiresAt?: number;
  /** The scopes the participant actually granted (they may untick some). */
  scopes: string[];
  /** The provider's id for the account, when the token response carries it (Fitbit `user_id`). */
  providerUserId?: string;
}

export interface AccountInfo {
  providerUserId: string;
  /** IANA zone currently set on the account. */
  timeZone?: string;
  /** Google Health: the legacy Fitbit user id of the same person (for migration). */
  legacyUserId?: string;
}

export interface DeviceState {
  id: string;
  type: string;
  /** When the device last synced, UTC epoch ms; null if never. */
  lastSyncAt: number | null;
  batteryLevel?: number;
  battery?: string;
}

/** What a provider's response said about the participant's rate budget. */
export interface RateInfo {
  limit?: number;
  remaining: number;
  /** UTC epoch ms at which the budget refills. */
  resetAt: number;
}

/** Everything a data call needs; the fetcher builds it from the store. */
export interface ProviderContext {
  accessToken: string;
  zones: ZoneHistory;
  /** Scopes granted: streams whose scope is missing are not requested. */
  scopes: readonly string[];
  /** False once the provider refused intraday detail: use daily resolution. */
  intraday: boolean;
  signal?: AbortSignal;
  /** Called after every response with the budget the provider reported. */
  onRate?: (rate: RateInfo) => void;
  /** Called once per HTTP request made, with a label such as the endpoint name (for accounting). */
  onRequest?: (endpoint: string) => void;
  /** The caller's clock, for reset instants computed from relative headers (default `Date.now`). */
  now?: () => number;
}

/** One unit of planned work: the provider decides how many days one request covers. */
export interface DayRequest {
  stream: StreamName;
  /** Local days covered, ascending. */
  days: string[];
  /** Requests it will spend (paging may spend more; the plan is an estimate). */
  cost: number;
  /** Whether this plan uses intraday detail. */
  intraday: boolean;
}

export interface DayResult {
  day: string;
  records: NormalizedRecord[];
}

/** What a provider needs to know about the OAuth redirect. */
export interface AuthorizationRequest {
  redirectUri: string;
  state: string;
  codeChallenge: string;
  scopes: readonly string[];
}

/**
 * A provider's notice that a participant's data changed (a webhook notification), in fitlamp's
 * terms. The data itself is still pulled.
 */
export interface ChangeNotification {
  /** The account it is about, as `AccountInfo.providerUserId` (Google's `healthUserId`). */
  providerUserId: string;
  /** The stream whose data changed; `undefined` for data fitlamp does not sync. */
  stream: StreamName | undefined;
  /**
   * The same for every redelivery of this notification and different for any other: a digest,
   * safe to use as (part of) a key.
   */
  dedupKey: string;
  /** The participant's local days the change touches, oldest first, given their zone history. */
  days(zones: ZoneHistory): string[];
}

/** The outcome of reading a webhook body: its notifications, or what is wrong with it. */
export type NotificationsParse = { ok: true; notifications: ChangeNotification[] } | { ok: false; error: string };

/**
 * A wearable data provider. `fitbit` (legacy Web API) and `google-health` implement it; the
 * fetcher and gateway use only this interface, so a new provider adds files, not branches.
 * Providers know HTTP, OAuth and normalization: never the database or the queues.
 */
export interface Provider {
  readonly name: ProviderName;
  /** Reverse-DNS `source` put on every mindLAMP event. */
  readonly source: string;
  /** What a person sees: "Fitbit", "Google Health". */
  readonly displayName: string;
  readonly streams: readonly StreamName[];

  /** Scopes to request for these streams. */
  scopesFor(streams: readonly StreamName[]): string[];
  /** Streams whose scopes were not granted. */
  streamsMissingScope(granted: readonly string[], streams: readonly StreamName[]): StreamName[];
  authorizationUrl(request: AuthorizationRequest): string;
  exchangeCode(input: { code: string; codeVerifier: string; redirectUri: string }): Promise<TokenGrant>;
  refreshToken(refreshToken: string): Promise<TokenGrant>;
  /** Revokes a token at the provider; a token already invalid counts as revoked. */
  revokeToken(token: string): Promise<void>;

  fetchAccount(ctx: ProviderContext): Promise<AccountInfo>;
  /**
   * The account's current IANA zone alone (undefined when the account does not say), for
   * providers where `fetchAccount` costs more than that: the fetcher's periodic zone check needs
   * no identity. Absent: the fetcher reads `fetchAccount`.
   */
  fetchTimeZone?(ctx: ProviderContext): Promise<string | undefined>;
  fetchDevices(ctx: ProviderContext): Promise<DeviceState[]>;
  /** Device state as mindLAMP events (the `device` stream). */
  normalizeDevices(devices: DeviceState[], zones: ZoneHistory): NormalizedRecord[];

  /** Splits the days a stream needs into requests, cheapest first within the provider's limits. */
  planRequests(stream: StreamName, days: readonly string[], options: { intraday: boolean }): DayRequest[];
  /** Runs one planned request and normalizes the answer; every requested day gets a result. */
  fetch(request: DayRequest, ctx: ProviderContext): Promise<DayResult[]>;

  /**
   * Reads the parsed JSON body of a webhook delivery (the caller has already verified that the
   * provider sent it) into change notifications. Only providers that push notifications to
   * fitlamp's webhook have it; their wire format stays theirs.
   */
  parseNotifications?(body: unknown): NotificationsParse;
}

export type ProviderErrorCode =
  /** 401: access token expired or invalid; refresh once and retry. */
  | 'token_expired'
  /** Refresh token rejected (used, revoked, expired). */
  | 'invalid_grant'
  /** 410 Gone: the API is switched off for this account (legacy Fitbit after 2026-11-02). */
  | 'gone'
  /** 403: the app has no intraday access. */
  | 'intraday_forbidden'
  /** 403: the participant did not grant a scope this call needs. */
  | 'scope_missing'
  /** 429 or budget spent: wait until `resetAt`. */
  | 'rate_limited'
  /** 5xx, timeout or network failure: retry later. */
  | 'unavailable'
  /** The provider answered with something fitlamp does not understand. */
  | 'bad_response'
  /** Any other 4xx. */
  | 'rejected';

/** The one error class of provider packages. Messages never contain tokens or codes. */
export class ProviderError extends Error {
  constructor(
    readonly code: ProviderErrorCode,
    message: string,
    readonly details: { status?: number; resetAt?: number; endpoint?: string; reason?: string } = {},
  ) {
    super(message);
    this.name = 'ProviderError';
  }
}

/**
 * Parses a comma-separated stream list (`SYNC_STREAMS`); empty or unset means every stream.
 * Throws a RangeError naming an unknown stream.
 */
export function parseStreams(setting: string | undefined): StreamName[] {
  if (!setting || setting.trim() === '') return [...STREAMS];
  const names = setting.split(',').map((s) => s.trim()).filter(Boolean);
  for (const name of names) {
    if (!isStreamName(name)) throw new RangeError(`unknown stream "${name}"; known: ${STREAMS.join(', ')}`);
  }
  // `device` is always synced: its last-sync time decides which days are settled.
  return [...new Set<StreamName>([...(names as StreamName[]), 'device'])];
}
