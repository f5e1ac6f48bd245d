import type { TokenMap } from '../indexes.ts';
import type { Clock } from '../world/clock.ts';
import type { World } from '../world/world.ts';

/** Every scope of the legacy API (fitbit-web-api §1.7). */
export const ALL_SCOPES = [
  'activity',
  'cardio_fitness',
  'electrocardiogram',
  'heartrate',
  'irregular_rhythm_notifications',
  'location',
  'nutrition',
  'oxygen_saturation',
  'profile',
  'respiratory_rate',
  'settings',
  'sleep',
  'social',
  'temperature',
  'weight',
] as const;

/** A registered client as the simulator knows it. */
export interface ClientConfig {
  clientId: string;
  clientSecret: string;
  redirectUris: string[];
  appName: string;
}

/** A consent screen waiting for Allow/Deny. */
export interface ConsentTransaction {
  id: string;
  redirectUri: string;
  redirectUriGiven: boolean;
  scopes: string[];
  state: string | undefined;
  codeChallenge: string | undefined;
  codeChallengeMethod: 'S256' | 'plain' | undefined;
  expiresAt: number;
}

/** An issued authorization code (valid 10 minutes, single use: fitbit-web-api §1.2). */
export interface AuthCode {
  code: string;
  userId: string;
  scopes: string[];
  redirectUri: string;
  redirectUriGiven: boolean;
  codeChallenge: string | undefined;
  codeChallengeMethod: 'S256' | 'plain' | undefined;
  expiresAt: number;
  used: boolean;
}

/** An issued access token. */
export interface AccessToken {
  token: string;
  userId: string;
  scopes: string[];
  issuedAt: number;
  expiresAt: number;
  revoked: boolean;
  /** The rotated refresh token whose replay window this token's first use closes. */
  closesReplayOf: string | undefined;
}

/** An issued refresh token: single use, one active per user (fitbit-web-api §1.4). */
export interface RefreshToken {
  token: string;
  userId: string;
  scopes: string[];
  status: 'active' | 'rotated' | 'revoked';
  /** Set once rotated: what an identical replay within the window gets back. */
  rotation: { at: number; fingerprint: string; response: TokenResponse; closed: boolean } | undefined;
  /** The token this one replaced (its replay window closes when this one is used). */
  closesReplayOf: string | undefined;
}

/** The token endpoint's success body (fitbit-web-api §1.3). */
export interface TokenResponse {
  access_token: string;
  expires_in: number;
  refresh_token: string;
  scope: string;
  token_type: 'Bearer';
  user_id: string;
}

/** An injected fault (see the README's control API). */
export interface Fault {
  id: number;
  /** A path prefix (e.g. `/1/user/-/activities/heart`, `/oauth2/token`) or `*` for every route. */
  path: string;
  method: string | undefined;
  kind: 'error' | 'latency' | 'drop' | 'gone';
  status: number;
  latencyMs: number;
  /** An `error` fault's `Retry-After` header, seconds (e.g. a 429 that names its own wait); none when undefined. */
  retryAfterSeconds?: number;
  /** Remaining applications; undefined = until cleared. */
  remaining: number | undefined;
}

/** One faulty response the simulator served (kept for the run's recovery figures). */
export interface ServedFault {
  faultId: number;
  /** Wall-clock ms (Date.now()) when the fault was applied, and the simulated clock's instant. */
  at: number;
  simAt: number;
  /** The user of the request's bearer token, when it names a known token. */
  userId: string | undefined;
  path: string;
  kind: Fault['kind'];
  status: number;
  retryAfterSeconds?: number;
}

/** Counters the control API reports. */
export interface Counters {
  /** userId → endpoint name → requests (authenticated data requests, 429s included). */
  requests: Record<string, Record<string, number>>;
  accessTokensIssued: number;
  refreshTokensIssued: number;
  /** Identical refresh replays answered from the window. */
  refreshReplays: number;
  /** Refresh attempts with an already-used refresh token that were refused (`invalid_grant`). */
  refreshTokenReuse: number;
  rateLimited: number;
  faultsApplied: number;
}

/** Whether the consent screen is skipped, and what it answers instead. */
export interface AutoConsent {
  decision: 'allow' | 'deny';
  userId: string | undefined;
  scopes: string[] | undefined;
}

/** The simulator's mutable state (in memory; one process, one registered app). */
export interface FitbitState {
  client: ClientConfig;
  world: World;
  clock: Clock;
  publicUrl: string | undefined;
  intradayAccess: boolean;
  rateLimitPerHour: number;
  /** Lifetime of issued access tokens. */
  accessTokenTtlS: number;
  gone: boolean;
  autoConsent: AutoConsent | undefined;
  transactions: Map<string, ConsentTransaction>;
  codes: Map<string, AuthCode>;
  /** By token; `ofUser` answers a user's tokens without a scan. */
  accessTokens: TokenMap<AccessToken>;
  refreshTokens: TokenMap<RefreshToken>;
  /** userId → the user's single active refresh token. */
  activeRefresh: Map<string, string>;
  rate: Map<string, { hour: number; count: number }>;
  faults: Fault[];
  nextFaultId: number;
  /** Every fault applied, in order (who got it, when, what). */
  servedFaults: ServedFault[];
  counters: Counters;
  /** While a benchmark records: every data request, to be replayed without the client that made it. */
  recorded: RecordedRequest[] | undefined;
}

/** A data request as it arrived (its URL and bearer token). */
export interface RecordedRequest {
  url: string;
  authorization: string;
}

/** Fresh, zeroed counters. */
export function emptyCounters(): Counters {
  return {
    requests: {},
    accessTokensIssued: 0,
    refreshTokensIssued: 0,
    refreshReplays: 0,
    refreshTokenReuse: 0,
    rateLimited: 0,
    faultsApplied: 0,
  };
}

/** Whether a user currently has a live grant for the app. */
export function isConnected(state: FitbitState, userId: string): boolean {
  return state.activeRefresh.has(userId);
}
