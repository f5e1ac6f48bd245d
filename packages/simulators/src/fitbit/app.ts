import formbody from '@fastify/formbody';
import Fastify, { type FastifyInstance } from 'fastify';
import { TokenMap } from '../indexes.ts';
import { createClock, type Clock } from '../world/clock.ts';
import type { UserSpec } from '../world/users.ts';
import { createWorld, type World } from '../world/world.ts';
import { registerControlRoutes } from './control-routes.ts';
import { registerDataRoutes } from './data-routes.ts';
import { ACCESS_TOKEN_TTL_S, registerOAuthRoutes, revokeUser } from './oauth.ts';
import { GONE_BODY } from './errors.ts';
import { addFault, applyFault, type FaultSpec } from './faults.ts';
import { emptyCounters, type Counters, type Fault, type FitbitState, type RecordedRequest } from './state.ts';

/** Options of {@link createFitbitSimulator}. */
export interface FitbitSimulatorOptions {
  clientId: string;
  clientSecret: string;
  /** Registered redirect URIs; `redirect_uri` must match one exactly. */
  redirectUris: string[];
  /** Shown on the consent page. */
  appName: string;
  /** Whether the app has intraday access (else intraday calls answer 403). Default true. */
  intradayAccess?: boolean;
  /** Seed of the generated world (same seed, same data). Default `fitlamp`. */
  seed?: string | number;
  /** Initial users; the four presets (`new-york`, `traveler`, `sydney`, `kolkata`) when omitted. */
  users?: UserSpec[];
  /** Start the clock frozen at this instant (ISO or epoch ms); default: real time. Ignored with `clock`. */
  startAt?: string | number;
  /** A clock of the caller's (e.g. one running at a multiple of real time); `startAt` is then ignored. */
  clock?: Clock;
  /** Days of history for users without `since` (default 60). */
  historyDays?: number;
  /** Base URL for absolute links (pagination.next); default: from the request's Host. */
  publicUrl?: string;
  /** Requests per user per hour (default 150, fitbit-web-api §2). */
  rateLimitPerHour?: number;
  /** Start in the post-shutdown world where everything answers 410. */
  gone?: boolean;
  /** Lifetime of issued access tokens (default 8 hours, fitbit-web-api §1.3); short ones make a refresh storm. */
  accessTokenTtlSeconds?: number;
}

/** A running-in-process Fitbit Web API simulator and its handles for tests. */
export interface FitbitSimulator {
  app: FastifyInstance;
  world: World;
  clock: Clock;
  /** The full mutable state (tokens, rate buckets, faults, counters). */
  state: FitbitState;
  counters(): Counters;
  addFault(spec: FaultSpec): Fault;
  clearFaults(): void;
  /** Toggles the post-shutdown world (every API and OAuth call answers 410 Gone). */
  setGone(gone: boolean): void;
  setIntradayAccess(enabled: boolean): void;
  /** The user removes the app's access at Fitbit: every token of theirs stops working. */
  revokeUser(userId: string): void;
  /**
   * Records every data request (URL and bearer token, in memory only) until `stop()`, which
   * returns them: a benchmark replays them to measure the provider's side without fitlamp.
   */
  recordRequests(): { stop(): RecordedRequest[] };
}

/**
 * Creates the Fitbit Web API simulator: OAuth (consent page, token, revoke, introspect), the data
 * endpoints rendered from the deterministic world, rate limits, faults and a `/_control` API.
 */
export function createFitbitSimulator(options: FitbitSimulatorOptions): FitbitSimulator {
  const startAt = typeof options.startAt === 'string' ? Date.parse(options.startAt) : options.startAt;
  if (startAt !== undefined && !Number.isFinite(startAt)) throw new Error('startAt must be an ISO instant or epoch ms');
  if (options.redirectUris.length === 0) throw new Error('redirectUris must list at least one URI');
  const clock = options.clock ?? createClock(startAt === undefined ? {} : { startAt });
  const world = createWorld({
    seed: String(options.seed ?? 'fitlamp'),
    now: clock.now(),
    ...(options.users ? { users: options.users } : {}),
    ...(options.historyDays !== undefined ? { historyDays: options.historyDays } : {}),
  });
  const state: FitbitState = {
    client: { clientId: options.clientId, clientSecret: options.clientSecret, redirectUris: [...options.redirectUris], appName: options.appName },
    world,
    clock,
    publicUrl: options.publicUrl,
    intradayAccess: options.intradayAccess ?? true,
    rateLimitPerHour: options.rateLimitPerHour ?? 150,
    accessTokenTtlS: options.accessTokenTtlSeconds ?? ACCESS_TOKEN_TTL_S,
    gone: options.gone ?? false,
    autoConsent: undefined,
    transactions: new Map(),
    codes: new Map(),
    accessTokens: new TokenMap(),
    refreshTokens: new TokenMap(),
    activeRefresh: new Map(),
    rate: new Map(),
    faults: [],
    nextFaultId: 1,
    servedFaults: [],
    counters: emptyCounters(),
    recorded: undefined,
  };

  const app = Fastify({ logger: false });
  app.register(formbody);
  app.addHook('onRequest', async (request, reply) => {
    if (request.url.startsWith('/_control')) return;
    // After the shutdown the API and the OAuth endpoints answer 410 Gone (fitbit-web-api §0).
    if (state.gone) return reply.code(410).type('application/json').send(GONE_BODY);
    if (await applyFault(state, request, reply)) return reply;
  });
  app.register(async (scope) => {
    registerOAuthRoutes(scope, state);
    registerDataRoutes(scope, state);
    registerControlRoutes(scope, state);
  });

  return {
    app,
    world,
    clock,
    state,
    counters: () => state.counters,
    addFault: (spec) => addFault(state, spec),
    clearFaults: () => {
      state.faults.length = 0;
    },
    setGone: (gone) => {
      state.gone = gone;
    },
    setIntradayAccess: (enabled) => {
      state.intradayAccess = enabled;
    },
    revokeUser: (userId) => revokeUser(state, userId),
    recordRequests: () => {
      const recorded: RecordedRequest[] = [];
      state.recorded = recorded;
      return {
        stop: () => {
          if (state.recorded === recorded) state.recorded = undefined;
          return recorded;
        },
      };
    },
  };
}
