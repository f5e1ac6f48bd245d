import formbody from '@fastify/formbody';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import { TokenMap } from '../indexes.ts';
import { createClock, type Clock } from '../world/clock.ts';
import type { UserSpec } from '../world/users.ts';
import { createWorld, findUser, syncUser, type World } from '../world/world.ts';
import { registerApiRoutes } from './api-routes.ts';
import { registerControlRoutes } from './control-routes.ts';
import { ApiError, sendApiError } from './errors.ts';
import { addFault, applyFault, type FaultSpec } from './faults.ts';
import { registerOAuthRoutes, revokeGrant } from './oauth.ts';
import { emptyCounters, healthUserIdOf, isConnected, type Counters, type Fault, type GoogleState } from './state.ts';
import { clockRate, createWebhookState, describeDelivery, nextDueAt, notifyDue, registerWebhookRoutes, notifySyncs, planUser, publicKeyset, pump, rotateKey, startDue, type RatedClock, type WebhookOptions } from './webhooks.ts';

/** Options of {@link createGoogleHealthSimulator}. */
export interface GoogleHealthSimulatorOptions {
  clientId: string;
  clientSecret: string;
  /** Registered redirect URIs; `redirect_uri` must match one exactly. */
  redirectUris: string[];
  /** Shown on the consent screen. */
  appName: string;
  /** Seed of the generated world; the same seed and users give the same data as the Fitbit simulator. Default `fitlamp`. */
  seed?: string | number;
  /** Initial users; the four presets when omitted (as in the Fitbit simulator). */
  users?: UserSpec[];
  /** Share a world (and its manual syncs) with a Fitbit simulator in the same process: `fitbit.world`. */
  world?: World;
  /**
   * Share a clock with another simulator: `fitbit.clock`. A clock faster than real time says how
   * fast (`rate()`, simulated ms per real ms), so that webhook notifications keep simulated time.
   */
  clock?: RatedClock;
  /** Start the clock frozen at this instant (ISO or epoch ms); default real time. Ignored with `clock`. */
  startAt?: string | number;
  /** Days of history for users without `since` (default 60). Ignored with `world`. */
  historyDays?: number;
  /** App in Testing: refresh tokens expire after 7 days (`refresh_token_expires_in: 604799`). Default false. */
  testingMode?: boolean;
  /** Requests per user per rolling minute (default 300). */
  rateLimitPerMinute?: number;
  /** Send `Retry-After` with 429s (undocumented for Health; default off). */
  retryAfterHeader?: boolean;
  /** Include civilStartTime/civilEndTime/civilTime in data points (live samples omit them; default false). */
  civilTimes?: boolean;
  /** Reproduce the page-boundary tie bug (default true, as observed live). */
  tieBug?: boolean;
  /** World user ids who also carry a phone recording steps: `list` then returns two sources. */
  phoneUsers?: string[];
  /**
   * Webhook settings; `deliveryIntervalMs` (default 1000, 0 = only when flushed) paces retries and the
   * full pass over connected users; a sync's notification is sent when it is due on the clock.
   */
  webhooks?: WebhookOptions & { deliveryIntervalMs?: number };
}

/** A Google Health API simulator running in-process, with handles for tests. */
export interface GoogleHealthSimulator {
  app: FastifyInstance;
  world: World;
  clock: Clock;
  state: GoogleState;
  counters(): Counters;
  addFault(spec: FaultSpec): Fault;
  clearFaults(): void;
  /** The healthUserId of a world user id. */
  healthUserId(userId: string): string;
  /** The user removes the app's access in their Google account: every token of theirs stops working. */
  revokeUser(userId: string): void;
  /**
   * Records a device sync of a world user at `at` (default now; ahead of time too), as the world's
   * `syncUser` does, and plans its webhook notification for `notifyAfterMs` after it.
   */
  recordSync(userId: string, at?: number): void;
  /** Notifies subscribers of syncs so far and attempts every due delivery; resolves when they are done. */
  flushWebhooks(): Promise<void>;
  /** Every delivery with its attempts and status. */
  deliveries(): object[];
  /** The published Tink keyset. */
  keyset(): object;
  rotateSigningKey(): void;
}

/**
 * Creates the Google Health API simulator: Google OAuth (consent page with partial consent, token,
 * revoke), the v4 user surface fitlamp uses rendered from the deterministic world, webhooks with
 * signed notifications, rate limits, faults and a `/_control` API. One Fastify app serves
 * `/o/oauth2/v2/auth`, `/token`, `/revoke`, `/v4/...`, the keyset and `/_control/...`.
 */
export function createGoogleHealthSimulator(options: GoogleHealthSimulatorOptions): GoogleHealthSimulator {
  const startAt = typeof options.startAt === 'string' ? Date.parse(options.startAt) : options.startAt;
  if (startAt !== undefined && !Number.isFinite(startAt)) throw new Error('startAt must be an ISO instant or epoch ms');
  if (options.redirectUris.length === 0) throw new Error('redirectUris must list at least one URI');
  const clock = options.clock ?? createClock(startAt === undefined ? {} : { startAt });
  const world =
    options.world ??
    createWorld({
      seed: String(options.seed ?? 'fitlamp'),
      now: clock.now(),
      ...(options.users ? { users: options.users } : {}),
      ...(options.historyDays !== undefined ? { historyDays: options.historyDays } : {}),
    });
  for (const id of options.phoneUsers ?? []) if (!findUser(world, id)) throw new Error(`phoneUsers: unknown user ${id}`);
  const state: GoogleState = {
    client: { clientId: options.clientId, clientSecret: options.clientSecret, redirectUris: [...options.redirectUris], appName: options.appName },
    world,
    clock,
    testingMode: options.testingMode ?? false,
    rateLimitPerMinute: options.rateLimitPerMinute ?? 300,
    retryAfterHeader: options.retryAfterHeader ?? false,
    civilTimes: options.civilTimes ?? false,
    tieBug: options.tieBug ?? true,
    phoneUsers: new Set(options.phoneUsers ?? []),
    autoConsent: undefined,
    transactions: new Map(),
    codes: new Map(),
    accessTokens: new TokenMap(),
    refreshTokens: new TokenMap(),
    granted: new Set(),
    rate: new Map(),
    faults: [],
    nextFaultId: 1,
    counters: emptyCounters(),
    webhooks: createWebhookState(options.webhooks),
  };

  const app = Fastify({ logger: false });
  app.register(formbody);
  app.addHook('onRequest', async (request, reply) => {
    if (request.url.startsWith('/_control')) return;
    if (await applyFault(state, request, reply)) return reply;
  });
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error.statusCode === 400 && (error.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || error instanceof SyntaxError)) {
      // Zero-padded numbers etc. are not JSON (google-health-api §3.5, troubleshooting page).
      return sendApiError(reply, new ApiError(400, `Invalid JSON payload received. ${error.message}`));
    }
    if (request.url.startsWith('/_control')) return reply.code(error.statusCode ?? 500).send({ error: error.message });
    return sendApiError(reply, new ApiError(error.statusCode ?? 500, error.statusCode && error.statusCode < 500 ? error.message : 'Internal error encountered.'));
  });
  app.setNotFoundHandler((request, reply) =>
    sendApiError(reply, new ApiError(404, `The requested URL ${request.url.split('?')[0]} was not found on this server.`, undefined, {}, 'NOT_FOUND')),
  );
  app.register(async (scope) => {
    registerOAuthRoutes(scope, state);
    registerApiRoutes(scope, state);
    registerControlRoutes(scope, state);
    registerWebhookRoutes(scope, state);
  });

  const interval = options.webhooks?.deliveryIntervalMs ?? 1000;
  if (interval > 0) {
    // A full pass every `interval` (real ms) finds syncs recorded for instants already past and
    // retries; in between, the timer wakes when the next planned notification is due on the
    // simulated clock (at k × real time, `notifyAfterMs` simulated is notifyAfterMs ÷ k real), and
    // notifies just the users due.
    let lastFull = Date.now();
    let timer: NodeJS.Timeout | undefined;
    let closed = false;
    const arm = () => {
      if (closed) return;
      clearTimeout(timer);
      const rate = clockRate(clock);
      const untilDue = rate > 0 ? (nextDueAt(state) - clock.now()) / rate : Infinity;
      timer = setTimeout(run, Math.max(0, Math.min(lastFull + interval - Date.now(), untilDue)));
      timer.unref();
    };
    const run = () => {
      if (Date.now() - lastFull >= interval) {
        lastFull = Date.now();
        notifySyncs(state);
      } else notifyDue(state);
      startDue(state);
      arm();
    };
    state.webhooks.wake = arm;
    arm();
    app.addHook('onClose', async () => {
      closed = true;
      clearTimeout(timer);
    });
  }
  app.addHook('onClose', async () => {
    await Promise.allSettled([...state.webhooks.inFlight]);
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
    revokeUser: (userId) => revokeGrant(state, userId),
    healthUserId: (userId) => {
      const user = findUser(world, userId);
      if (!user) throw new Error(`unknown user ${userId}`);
      return healthUserIdOf(world.seed, user);
    },
    recordSync: (userId, at) => {
      const user = findUser(world, userId);
      if (!user) throw new Error(`unknown user ${userId}`);
      syncUser(world, user, at ?? clock.now());
      if (isConnected(state, userId)) planUser(state, user);
    },
    flushWebhooks: async () => {
      notifySyncs(state);
      await pump(state);
    },
    deliveries: () => state.webhooks.deliveries.map(describeDelivery),
    keyset: () => publicKeyset(state.webhooks),
    rotateSigningKey: () => {
      rotateKey(state.webhooks);
    },
  };
}
