import type { Clock } from '../world/clock.ts';
import { hash32 } from '../world/random.ts';
import type { TokenMap } from '../indexes.ts';
import type { WorldUser } from '../world/users.ts';
import type { World } from '../world/world.ts';
import type { WebhookState } from './webhooks.ts';

/** The registered OAuth client (one per simulator). */
export interface GoogleClient {
  clientId: string;
  clientSecret: string;
  redirectUris: string[];
  appName: string;
}

/** A consent screen waiting for Allow/Deny. */
export interface ConsentTransaction {
  id: string;
  redirectUri: string;
  scopes: string[];
  state: string | undefined;
  codeChallenge: string | undefined;
  codeChallengeMethod: 'S256' | 'plain' | undefined;
  offline: boolean;
  promptConsent: boolean;
  expiresAt: number;
}

/** An authorization code: single use, 10 minutes (google-health-api §8.2). */
export interface AuthCode {
  code: string;
  userId: string;
  scopes: string[];
  redirectUri: string;
  codeChallenge: string | undefined;
  codeChallengeMethod: 'S256' | 'plain' | undefined;
  /** Whether the exchange returns a refresh token (offline access, and first consent or prompt=consent). */
  withRefresh: boolean;
  expiresAt: number;
  used: boolean;
}

export interface AccessToken {
  token: string;
  userId: string;
  scopes: string[];
  expiresAt: number;
  revoked: boolean;
}

export interface RefreshToken {
  token: string;
  userId: string;
  scopes: string[];
  issuedAt: number;
  /** Testing-mode refresh tokens die after 7 days (google-health-api §1.3). */
  expiresAt: number | undefined;
  revoked: boolean;
  uses: number;
}

/** An injected fault on the API/OAuth routes. */
export interface Fault {
  id: number;
  /** Path prefix (`/v4/users/me/dataTypes/steps`, `/token`) or `*`. */
  path: string;
  method: string | undefined;
  kind: 'error' | 'latency' | 'drop';
  status: number;
  latencyMs: number;
  /** Remaining applications; undefined = until cleared. */
  remaining: number | undefined;
  /** How many requests it has hit so far. */
  applied: number;
}

/** Counters the control API reports. */
export interface Counters {
  /** world user id → endpoint (`dataPoints.list:steps`, `getIdentity`, …) → requests (429s included). */
  requests: Record<string, Record<string, number>>;
  accessTokensIssued: number;
  refreshTokensIssued: number;
  /** Successful refresh-token grants, per world user id. */
  refreshTokenUses: Record<string, number>;
  refreshFailures: number;
  rateLimited: number;
  faultsApplied: number;
}

export function emptyCounters(): Counters {
  return { requests: {}, accessTokensIssued: 0, refreshTokensIssued: 0, refreshTokenUses: {}, refreshFailures: 0, rateLimited: 0, faultsApplied: 0 };
}

/** What the consent screen answers by itself when set (for tests without a browser). */
export interface AutoConsent {
  decision: 'allow' | 'deny';
  userId: string | undefined;
  scopes: string[] | undefined;
}

/** The simulator's mutable state. */
export interface GoogleState {
  client: GoogleClient;
  world: World;
  clock: Clock;
  testingMode: boolean;
  rateLimitPerMinute: number;
  retryAfterHeader: boolean;
  civilTimes: boolean;
  /** Reproduce the page-boundary tie bug (google-health-api §3.3). */
  tieBug: boolean;
  /** World user ids that also carry a phone recording steps. */
  phoneUsers: Set<string>;
  autoConsent: AutoConsent | undefined;
  transactions: Map<string, ConsentTransaction>;
  codes: Map<string, AuthCode>;
  /** By token; `ofUser` answers a user's tokens without a scan. */
  accessTokens: TokenMap<AccessToken>;
  refreshTokens: TokenMap<RefreshToken>;
  /** Users who have a live grant for the app: a consent without prompt=consent then issues no refresh token. */
  granted: Set<string>;
  /** healthUserId → request instants in the rolling minute. */
  rate: Map<string, number[]>;
  faults: Fault[];
  nextFaultId: number;
  counters: Counters;
  webhooks: WebhookState;
}

/** The Google Health user id of a world user: numeric, stable per seed (google-health-api §2). */
export function healthUserIdOf(seed: string, user: WorldUser): string {
  const digits = `${hash32(seed, 'health-user-id', user.id)}${hash32(seed, 'health-user-id-2', user.id)}${hash32(seed, 'health-user-id-3', user.id)}`;
  return `${1 + (hash32(seed, 'health-user-lead', user.id) % 9)}${digits.slice(0, 18)}`;
}

/** healthUserId → user, per world, extended as users are added (they are only ever appended). */
const byHealthId = new WeakMap<World, { seed: string; count: number; users: Map<string, WorldUser> }>();

/** The world user behind a healthUserId. */
export function userByHealthId(state: GoogleState, healthUserId: string): WorldUser | undefined {
  const world = state.world;
  let index = byHealthId.get(world);
  if (!index || index.seed !== world.seed || index.count > world.users.length) {
    index = { seed: world.seed, count: 0, users: new Map() };
    byHealthId.set(world, index);
  }
  for (; index.count < world.users.length; index.count += 1) {
    const user = world.users[index.count]!;
    const id = healthUserIdOf(world.seed, user);
    if (!index.users.has(id)) index.users.set(id, user);
  }
  return index.users.get(healthUserId);
}

/** Whether the user has a live grant (any unrevoked, unexpired token). */
export function isConnected(state: GoogleState, userId: string): boolean {
  const now = state.clock.now();
  for (const r of state.refreshTokens.ofUser(userId)) if (!r.revoked && (r.expiresAt === undefined || now < r.expiresAt)) return true;
  for (const a of state.accessTokens.ofUser(userId)) if (!a.revoked && now < a.expiresAt) return true;
  return false;
}

/** Scopes of the user's live grant (union over live tokens). */
export function grantedScopes(state: GoogleState, userId: string): Set<string> {
  const now = state.clock.now();
  const out = new Set<string>();
  for (const r of state.refreshTokens.ofUser(userId)) if (!r.revoked && (r.expiresAt === undefined || now < r.expiresAt)) r.scopes.forEach((s) => out.add(s));
  for (const a of state.accessTokens.ofUser(userId)) if (!a.revoked && now < a.expiresAt) a.scopes.forEach((s) => out.add(s));
  return out;
}
