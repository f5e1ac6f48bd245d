// The gateway under test, on real Postgres and Redis, two ways:
// - `buildTestGateway`: not listening; requests go through `app.inject` (no network), for the
//   routes whose answer depends only on the request and the database;
// - `startTestGateway`: listening on port 0 with the Fitbit, Google Health and mindLAMP
//   simulators in process, for flows that cross to a provider or mindLAMP and back.
import { Redis } from 'ioredis';
import type { Kysely } from 'kysely';
import { Registry } from 'prom-client';
import type { FastifyInstance } from 'fastify';
import { createTokenCipher, parseEncryptionKey, type TokenCipher } from '@fitlamp/crypto';
import type { Database } from '@fitlamp/db';
import { createLampClient } from '@fitlamp/lamp';
import { createProviders } from '@fitlamp/provider-registry';
import { createQueues, type QueueSet } from '@fitlamp/queues';
import { createLogger } from '@fitlamp/runtime';
import {
  createFitbitSimulator,
  createGoogleHealthSimulator,
  createLampSimulator,
  type FitbitSimulator,
  type GoogleHealthSimulator,
  type GoogleHealthSimulatorOptions,
  type LampSimulator,
  type UserSpec,
} from '@fitlamp/simulators';
import {
  answerProviderConsent,
  createTestDatabase,
  finishConsent,
  googleSimulatorEnv,
  requestEnrollmentLink,
  serviceTestEnv,
  startConsent,
  testRedisUrl,
  uniquePrefix,
  type ConsentAnswer,
} from '@fitlamp/testing';
import { buildGateway } from '../src/app.ts';
import { loadGatewayEnv, type GatewayEnv } from '../src/env.ts';

export const LAMP_ACCESS_KEY = 'researcher@fitlamp.test';

/** A request to the gateway in process, answered as a fetch `Response`. */
export type InjectRequest = (path: string, init?: { method?: string; headers?: Record<string, string>; body?: string }) => Promise<Response>;

/** What every gateway under test offers. */
export interface GatewayUnderTest {
  /** Its origin: where it listens, or (not listening) the `Host` that `inject` sends. */
  base: string;
  env: GatewayEnv;
  app: FastifyInstance;
  db: Kysely<Database>;
  queues: QueueSet;
  cipher: TokenCipher;
  /** Its Redis connection (what readiness pings) and Prometheus registry (what the ops port serves). */
  redis: Redis;
  registry: Registry;
  /** Every log line the gateway wrote, as raw JSON text. */
  logs: string[];
  /** `Authorization` header for the admin API. */
  admin: { authorization: string };
  /** Sends a request through `app.inject`: no socket, the same routing, hooks and handlers. */
  inject: InjectRequest;
  close(): Promise<void>;
}

/** Statuses whose responses have no body (the fetch `Response` refuses one). */
const NO_BODY = new Set([101, 204, 205, 304]);

/** The origin of a gateway that does not listen: what `Host` and same-origin checks see. */
const INJECT_BASE = 'http://gateway.test';

function injector(app: FastifyInstance, base: string): InjectRequest {
  return async (path, init = {}) => {
    const res = await app.inject({
      method: (init.method ?? 'GET') as 'GET',
      url: path,
      headers: { host: new URL(base).host, ...init.headers },
      ...(init.body !== undefined ? { payload: init.body } : {}),
    });
    const headers = new Headers();
    for (const [name, value] of Object.entries(res.headers)) {
      for (const v of Array.isArray(value) ? value : [value]) if (v !== undefined) headers.append(name, String(v));
    }
    return new Response(NO_BODY.has(res.statusCode) ? null : res.rawPayload, { status: res.statusCode, headers });
  };
}

/** Builds the gateway on `env` with its own Redis connection and captured logs; `close` closes what it opened. */
async function assemble(env: GatewayEnv, db: Kysely<Database>, redisUrl: string): Promise<Omit<GatewayUnderTest, 'base' | 'inject'>> {
  const logs: string[] = [];
  const logger = createLogger({ name: 'gateway', level: 'debug', destination: { write: (line: string) => void logs.push(line) } });
  // Commands fail at once while Redis is unreachable instead of queueing: readiness says so.
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 0, enableOfflineQueue: false, lazyConnect: true });
  redis.on('error', () => {});
  await redis.connect().catch(() => {});
  const queues = createQueues(redis, env.QUEUE_PREFIX);
  const cipher = createTokenCipher(parseEncryptionKey(env.TOKEN_ENCRYPTION_KEY));
  const lamp = createLampClient({ baseUrl: env.LAMP_API_URL, accessKey: env.LAMP_ACCESS_KEY, secretKey: env.LAMP_SECRET_KEY, timeoutMs: 5_000 });
  const registry = new Registry();
  const app = await buildGateway({ env, logger, db, redis, queues, registry, providers: createProviders(env), lamp, cipher });
  return {
    env,
    app,
    db,
    queues,
    cipher,
    redis,
    registry,
    logs,
    admin: { authorization: `Bearer ${env.ADMIN_TOKEN}` },
    async close() {
      await app.close();
      await queues.close();
      await lamp.close();
      redis.disconnect();
    },
  };
}

export interface BuildTestGatewayOptions {
  env?: Record<string, string | undefined>;
  /** Another Redis (e.g. an unreachable one); the test Redis if absent. */
  redisUrl?: string;
  /** Another database (e.g. one that fails); a fresh test database if absent. */
  db?: Kysely<Database>;
}

/**
 * The gateway, not listening, on a fresh test database and the test Redis. Providers and mindLAMP
 * point at an address where nothing listens: a test that reaches them needs `startTestGateway`.
 */
export async function buildTestGateway(options: BuildTestGatewayOptions = {}): Promise<GatewayUnderTest> {
  const t = options.db ? undefined : await createTestDatabase();
  const env = loadGatewayEnv(serviceTestEnv({ ...(t ? { DATABASE_URL: t.url } : {}), QUEUE_PREFIX: uniquePrefix('gw'), LOG_LEVEL: 'debug', ...options.env }));
  const gateway = await assemble(env, options.db ?? t!.db, options.redisUrl ?? testRedisUrl);
  await gateway.app.ready();
  return {
    ...gateway,
    base: INJECT_BASE,
    inject: injector(gateway.app, INJECT_BASE),
    async close() {
      await gateway.close();
      await t?.drop();
    },
  };
}

export interface TestGatewayOptions {
  /** mindLAMP participants that exist (study S1). */
  participants?: string[];
  /** Fitbit accounts the simulator knows; the consent page preselects the first unconnected one. */
  fitbitUsers?: UserSpec[];
  env?: Record<string, string | undefined>;
  /**
   * Also run the Google Health simulator (same world and clock as the Fitbit one) and enable the
   * `google-health` provider against it; options are passed to the simulator.
   */
  google?: boolean | Partial<GoogleHealthSimulatorOptions>;
}

export interface TestGateway extends GatewayUnderTest {
  lampSim: LampSimulator;
  fitbit: FitbitSimulator;
  /** The Google Health simulator, when `google` was asked for. */
  google?: GoogleHealthSimulator;
  googleUrl?: string;
}

/** The gateway on port 0 with the Fitbit and mindLAMP simulators (and Google Health's, if asked). */
export async function startTestGateway(options: TestGatewayOptions = {}): Promise<TestGateway> {
  const t = await createTestDatabase();
  const base = serviceTestEnv();
  const lampSecret = base.LAMP_SECRET_KEY!;
  const lampSim = createLampSimulator({
    credentials: [{ accessKey: LAMP_ACCESS_KEY, secretKey: lampSecret }],
    participants: (options.participants ?? ['U1001', 'U1002', 'U1003']).map((id) => ({ id, studyId: 'S1' })),
  });
  const lampUrl = await lampSim.app.listen({ port: 0, host: '127.0.0.1' });
  const fitbit = createFitbitSimulator({
    clientId: base.FITBIT_CLIENT_ID!,
    clientSecret: base.FITBIT_CLIENT_SECRET!,
    // Replaced below, once the gateway's port is known.
    redirectUris: ['http://127.0.0.1/placeholder'],
    appName: 'fitlamp test study',
    users: options.fitbitUsers ?? [
      { id: 'AAAAA1', preset: 'new-york' },
      { id: 'BBBBB2', preset: 'sydney' },
      { id: 'CCCCC3', preset: 'kolkata' },
    ],
    historyDays: 2,
  });
  const fitbitUrl = await fitbit.app.listen({ port: 0, host: '127.0.0.1' });
  let google: GoogleHealthSimulator | undefined;
  let googleUrl: string | undefined;
  let googleEnv: Record<string, string | undefined> = { GOOGLE_CLIENT_ID: undefined, GOOGLE_CLIENT_SECRET: undefined };
  if (options.google) {
    google = createGoogleHealthSimulator({
      clientId: base.GOOGLE_CLIENT_ID!,
      clientSecret: base.GOOGLE_CLIENT_SECRET!,
      redirectUris: ['http://127.0.0.1/placeholder'],
      appName: 'fitlamp test study',
      world: fitbit.world,
      clock: fitbit.clock,
      webhooks: { deliveryIntervalMs: 0 },
      ...(typeof options.google === 'object' ? options.google : {}),
    });
    googleUrl = (await google.app.listen({ port: 0, host: '127.0.0.1' })).replace(/\/$/, '');
    googleEnv = googleSimulatorEnv(googleUrl, { id: base.GOOGLE_CLIENT_ID!, secret: base.GOOGLE_CLIENT_SECRET! });
  }

  const env = loadGatewayEnv({
    ...base,
    DATABASE_URL: t.url,
    QUEUE_PREFIX: uniquePrefix('gw'),
    LOG_LEVEL: 'debug',
    LAMP_API_URL: lampUrl,
    LAMP_ACCESS_KEY,
    FITBIT_API_URL: fitbitUrl,
    FITBIT_AUTHORIZE_URL: `${fitbitUrl}/oauth2/authorize`,
    ...googleEnv,
    ...options.env,
  });
  const gateway = await assemble(env, t.db, testRedisUrl);
  await gateway.app.listen({ port: 0, host: '127.0.0.1' });
  const address = gateway.app.server.address();
  const gatewayUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  // Redirect URIs hang off PUBLIC_BASE_URL, read per request: point it at the real port.
  env.PUBLIC_BASE_URL = gatewayUrl;
  fitbit.state.client.redirectUris = [`${gatewayUrl}/oauth/fitbit/callback`];
  if (google) google.state.client.redirectUris = [`${gatewayUrl}/oauth/google-health/callback`];

  return {
    ...gateway,
    base: gatewayUrl,
    inject: injector(gateway.app, gatewayUrl),
    lampSim,
    fitbit,
    ...(google ? { google, googleUrl: googleUrl! } : {}),
    async close() {
      await gateway.close();
      await fitbit.app.close();
      await google?.app.close();
      await lampSim.app.close();
      await t.drop();
    },
  };
}

/** `POST /admin/enrollments`; answers the link. */
export function issueLink(gw: TestGateway, participantId: string, extra: Record<string, unknown> = {}): Promise<string> {
  return requestEnrollmentLink(gw.base, gw.env.ADMIN_TOKEN, participantId, extra);
}

/**
 * The whole flow without a browser: link → consent page → the provider's consent screen →
 * callback page. Answers the page and the URLs it went through.
 */
export async function connectThrough(
  gw: TestGateway,
  provider: 'fitbit' | 'google-health',
  participantId: string,
  answer: ConsentAnswer = { decision: 'allow' },
): Promise<{ status: number; text: string; callbackUrl: string; authorizeUrl: string; cookie: string }> {
  const link = await issueLink(gw, participantId, { provider });
  const start = await startConsent(link);
  const callbackUrl = await answerProviderConsent(start.authorizeUrl, answer);
  const res = await finishConsent(start, callbackUrl);
  return { status: res.status, text: await res.text(), callbackUrl, authorizeUrl: start.authorizeUrl, cookie: start.cookie };
}
