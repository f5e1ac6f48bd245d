// Test support (imported only by this service's tests): the real gateway on port 0 with real
// Postgres and Redis, the Fitbit and mindLAMP simulators in process, and captured log lines.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import type { FastifyInstance } from 'fastify';
import { createTokenCipher, parseEncryptionKey, type TokenCipher } from '@fitlamp/crypto';
import { createLampClient } from '@fitlamp/lamp';
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
  requestEnrollmentLink,
  serviceTestEnv,
  startConsent,
  testRedisUrl,
  uniquePrefix,
  type ConsentAnswer,
  type TestDatabase,
} from '@fitlamp/testing';
import { buildGateway } from './app.ts';
import { loadGatewayEnv, type GatewayEnv } from './env.ts';
import { createProviders } from '@fitlamp/provider-registry';

export const LAMP_ACCESS_KEY = 'researcher@fitlamp.test';

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

export interface TestGateway {
  env: GatewayEnv;
  base: string;
  app: FastifyInstance;
  db: TestDatabase['db'];
  queues: QueueSet;
  cipher: TokenCipher;
  lampSim: LampSimulator;
  fitbit: FitbitSimulator;
  /** The Google Health simulator, when `google` was asked for. */
  google?: GoogleHealthSimulator;
  googleUrl?: string;
  /** Every log line the gateway wrote, as raw JSON text. */
  logs: string[];
  /** `Authorization` header for the admin API. */
  admin: { authorization: string };
  close(): Promise<void>;
}

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
    googleEnv = {
      GOOGLE_CLIENT_ID: base.GOOGLE_CLIENT_ID,
      GOOGLE_CLIENT_SECRET: base.GOOGLE_CLIENT_SECRET,
      GOOGLE_AUTHORIZE_URL: `${googleUrl}/o/oauth2/v2/auth`,
      GOOGLE_TOKEN_URL: `${googleUrl}/token`,
      GOOGLE_REVOKE_URL: `${googleUrl}/revoke`,
      GOOGLE_HEALTH_API_URL: googleUrl,
      GOOGLE_HEALTH_WEBHOOK_SECRET: `Bearer ${randomBytes(24).toString('base64url')}`,
      GOOGLE_HEALTH_WEBHOOK_KEYSET_URL: `${googleUrl}/googlehealthapi/webhooks/webhooks_public_keyset.json`,
    };
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
  const logs: string[] = [];
  const logger = createLogger({ name: 'gateway', level: 'debug', destination: { write: (line: string) => void logs.push(line) } });
  const redis = new Redis(testRedisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: true });
  const queues = createQueues(redis, env.QUEUE_PREFIX);
  const cipher = createTokenCipher(parseEncryptionKey(env.TOKEN_ENCRYPTION_KEY));
  const lamp = createLampClient({ baseUrl: env.LAMP_API_URL, accessKey: env.LAMP_ACCESS_KEY, secretKey: env.LAMP_SECRET_KEY, timeoutMs: 5_000 });
  const app = await buildGateway({
    env,
    logger,
    db: t.db,
    redis,
    queues,
    registry: new Registry(),
    providers: createProviders(env),
    lamp,
    cipher,
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  const gatewayUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  // Redirect URIs hang off PUBLIC_BASE_URL, read per request: point it at the real port.
  env.PUBLIC_BASE_URL = gatewayUrl;
  fitbit.state.client.redirectUris = [`${gatewayUrl}/oauth/fitbit/callback`];
  if (google) google.state.client.redirectUris = [`${gatewayUrl}/oauth/google-health/callback`];

  return {
    env,
    base: gatewayUrl,
    app,
    db: t.db,
    queues,
    cipher,
    lampSim,
    fitbit,
    ...(google ? { google, googleUrl: googleUrl! } : {}),
    logs,
    admin: { authorization: `Bearer ${env.ADMIN_TOKEN}` },
    async close() {
      await app.close();
      await queues.close();
      await lamp.close();
      redis.disconnect();
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

export { startConsent };

/** Answers the simulated Fitbit consent screen; answers the callback URL Fitbit redirects to. */
export function answerFitbit(authorizeUrl: string, answer: ConsentAnswer): Promise<string> {
  return answerProviderConsent(authorizeUrl, answer);
}

/** The whole flow without a browser: link → consent page → Fitbit → callback page. */
export async function connectThroughFitbit(
  gw: TestGateway,
  participantId: string,
  answer: ConsentAnswer = { decision: 'allow' },
): Promise<{ status: number; text: string; callbackUrl: string }> {
  const link = await issueLink(gw, participantId);
  const callbackUrl = await answerFitbit(await startConsent(link), answer);
  const res = await fetch(callbackUrl);
  return { status: res.status, text: await res.text(), callbackUrl };
}

/** The whole Google Health flow without a browser: link → consent page → Google → callback page. */
export async function connectThroughGoogle(
  gw: TestGateway,
  participantId: string,
  answer: ConsentAnswer = { decision: 'allow' },
): Promise<{ status: number; text: string; callbackUrl: string; authorizeUrl: string }> {
  const link = await issueLink(gw, participantId, { provider: 'google-health' });
  const authorizeUrl = await startConsent(link);
  const callbackUrl = await answerProviderConsent(authorizeUrl, answer);
  const res = await fetch(callbackUrl);
  return { status: res.status, text: await res.text(), callbackUrl, authorizeUrl };
}
