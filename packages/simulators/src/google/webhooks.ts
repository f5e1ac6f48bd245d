import { generateKeyPairSync, randomInt, randomUUID, sign, type KeyObject } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { REVISION_WINDOW_MS } from '../world/sync.ts';
import type { Clock } from '../world/clock.ts';
import type { WorldUser } from '../world/users.ts';
import { findUser, firstSyncAfter, lastSync, viewDay } from '../world/world.ts';
import { addDays, dayBounds, localDateOf } from '../world/zones.ts';
import { CLOUD_PLATFORM, RENDERED_TYPES, findDataType } from './catalogue.ts';
import { ApiError, invalid, sendApiError } from './errors.ts';
import { pointsForDate, type RenderContext } from './points.ts';
import { grantedScopes, healthUserIdOf, isConnected, type GoogleState } from './state.ts';
import { civilDateTime, civilString, timestamp } from './wire.ts';

/**
 * Google Health webhooks (google-health-api §4, §8.6): subscribers with the two-step endpoint
 * verification, AUTOMATIC notifications when a consenting user's device syncs, ECDSA P-256
 * signatures in Tink's wire format against a published Tink JSON keyset, retries until a 204, and
 * forced duplicates.
 */

/** A signing key: Tink key id and the P-256 key pair. */
export interface SigningKey {
  keyId: number;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export interface SubscriberConfig {
  dataTypes: string[];
  subscriptionCreatePolicy: 'AUTOMATIC' | 'MANUAL';
}

export interface Subscriber {
  id: string;
  endpointUri: string;
  secret: string;
  configs: SubscriberConfig[];
  state: 'UNVERIFIED' | 'ACTIVE' | 'INACTIVE';
  createTime: number;
  updateTime: number;
}

/** One attempt at delivering a POST. */
export interface DeliveryAttempt {
  at: string;
  status: number | null;
  error?: string;
}

/** A notification (or a forced duplicate) on its way to a subscriber. */
export interface Delivery {
  id: number;
  subscriberId: string;
  /** The exact bytes posted (and signed). */
  body: string;
  userId: string | undefined;
  dataTypes: string[];
  /** The delivery this one repeats, for duplicates. */
  duplicateOf: number | undefined;
  createdAt: number;
  nextAttemptAt: number;
  attempts: DeliveryAttempt[];
  state: 'pending' | 'delivered' | 'dropped';
}

/** Webhook settings and state. */
export interface WebhookState {
  projectNumber: string;
  /** Bearer token of the service account (cloud-platform) that manages subscribers. */
  serviceAccountToken: string;
  /** Header names carrying the signature (default `X-HEALTHAPI-SIGNATURE`). */
  signatureHeaders: string[];
  envelope: 'object' | 'array';
  /** Send `Authorization: <secret>` on notifications (one live report saw it only on verification). */
  sendAuthorization: boolean;
  /** Accept only 201 on the first verification POST (Discovery); otherwise 200 or 201 (guide). */
  strictVerification: boolean;
  /** Corrupt signatures (a fault for testing the receiver). */
  badSignature: boolean;
  /** Give up on a notification older than this (7 days, §4.6). */
  maxAgeMs: number;
  /** A sync is notified only once this long has passed since it (simulated ms; 0: at once). */
  notifyAfterMs: number;
  timeoutMs: number;
  keys: SigningKey[];
  primaryKeyId: number;
  subscribers: Map<string, Subscriber>;
  deliveries: Delivery[];
  nextDeliveryId: number;
  /** Deliveries to repeat after their 204 (each counts one). */
  duplicateNext: number;
  /** `${subscriberId}|${userId}` → the last sync already notified. */
  notifiedUpTo: NotifiedMap;
  inFlight: Set<Promise<void>>;
  /** Deliveries still pending: what a pass attempts, without going through every delivery ever made. */
  pending: Set<Delivery>;
  /** Keep delivered and dropped deliveries for the control API [true]; false forgets them (long runs). */
  keepSettled: boolean;
  settled: number;
  /**
   * When each connected user's next sync is to be notified (simulated ms; `dueAt` holds the
   * current one, the heap may hold stale ones): a pass looks at the users due, not at everyone.
   */
  due: Array<{ at: number; userId: string }>;
  dueAt: Map<string, number>;
  /** Called when a notification is planned earlier than any other (the delivery timer re-arms). */
  wake: (() => void) | undefined;
}

/** `${subscriberId}|${userId}` → number, that also knows each user's keys (a revoke forgets them). */
export class NotifiedMap extends Map<string, number> {
  #keysOf = new Map<string, Set<string>>();

  override set(key: string, value: number): this {
    const userId = key.slice(key.indexOf('|') + 1);
    let keys = this.#keysOf.get(userId);
    if (!keys) this.#keysOf.set(userId, (keys = new Set()));
    keys.add(key);
    return super.set(key, value);
  }

  override delete(key: string): boolean {
    const userId = key.slice(key.indexOf('|') + 1);
    const keys = this.#keysOf.get(userId);
    keys?.delete(key);
    if (keys?.size === 0) this.#keysOf.delete(userId);
    return super.delete(key);
  }

  override clear(): void {
    this.#keysOf.clear();
    super.clear();
  }

  keysOf(userId: string): string[] {
    return [...(this.#keysOf.get(userId) ?? [])];
  }
}

/** Forgets what was notified to a user (a revoked grant): a new grant starts from a new baseline. */
export function forgetNotified(wh: WebhookState, userId: string): void {
  for (const key of wh.notifiedUpTo.keysOf(userId)) wh.notifiedUpTo.delete(key);
}

/** Options for webhooks; every field has a default. */
export interface WebhookOptions {
  projectNumber?: string;
  serviceAccountToken?: string;
  /** `X-HEALTHAPI-SIGNATURE` (default), `GOOGLE-HEALTH-API-SIGNATURE`, or both. */
  signatureHeader?: 'X-HEALTHAPI-SIGNATURE' | 'GOOGLE-HEALTH-API-SIGNATURE' | 'both';
  /** A single `{data}` object per POST (default, the guide's example) or a JSON array of up to 99. */
  envelope?: 'object' | 'array';
  sendAuthorization?: boolean;
  strictVerification?: boolean;
  timeoutMs?: number;
  /**
   * How long after a device sync its notification is created (default 0). Google states no
   * delay; a few seconds models the provider's processing between the sync and the webhook.
   */
  notifyAfterMs?: number;
  /** Keep delivered and dropped deliveries for the control API [true]; false: only pending ones (long runs). */
  keepSettled?: boolean;
}

export function createWebhookState(options: WebhookOptions = {}): WebhookState {
  const key = newKey();
  const header = options.signatureHeader ?? 'X-HEALTHAPI-SIGNATURE';
  return {
    projectNumber: options.projectNumber ?? '482615908371',
    serviceAccountToken: options.serviceAccountToken ?? 'sim-service-account-token',
    signatureHeaders: header === 'both' ? ['X-HEALTHAPI-SIGNATURE', 'GOOGLE-HEALTH-API-SIGNATURE'] : [header],
    envelope: options.envelope ?? 'object',
    sendAuthorization: options.sendAuthorization ?? true,
    strictVerification: options.strictVerification ?? false,
    badSignature: false,
    maxAgeMs: 7 * 86_400_000,
    notifyAfterMs: options.notifyAfterMs ?? 0,
    timeoutMs: options.timeoutMs ?? 10_000,
    keys: [key],
    primaryKeyId: key.keyId,
    subscribers: new Map(),
    deliveries: [],
    nextDeliveryId: 1,
    duplicateNext: 0,
    notifiedUpTo: new NotifiedMap(),
    inFlight: new Set(),
    pending: new Set(),
    keepSettled: options.keepSettled ?? true,
    settled: 0,
    due: [],
    dueAt: new Map(),
    wake: undefined,
  };
}

function newKey(): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { keyId: randomInt(1, 2 ** 31 - 1), privateKey, publicKey };
}

/** Adds a new primary key and keeps the old ones published (rotation, §4.5). */
export function rotateKey(state: WebhookState): SigningKey {
  const key = newKey();
  state.keys.push(key);
  state.primaryKeyId = key.keyId;
  return key;
}

// Minimal protobuf encoding for Tink's EcdsaPublicKey {version=1, params=2, x=3, y=4} and
// EcdsaParams {hash_type=1 (SHA256=3), curve=2 (NIST_P256=2), encoding=3 (DER=2)}.
function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

function field(no: number, bytes: Buffer): Buffer {
  return Buffer.concat([Buffer.from([(no << 3) | 2, ...varint(bytes.length)]), bytes]);
}

// Tink writes coordinates as Java BigInteger bytes: a leading 0x00 when the high bit is set.
function bigEndianUnsigned(b: Buffer): Buffer {
  return (b[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b;
}

function tinkPublicKey(key: SigningKey): string {
  const jwk = key.publicKey.export({ format: 'jwk' });
  const params = Buffer.from([0x08, 0x03, 0x10, 0x02, 0x18, 0x02]);
  const proto = Buffer.concat([
    field(2, params),
    field(3, bigEndianUnsigned(Buffer.from(jwk.x ?? '', 'base64url'))),
    field(4, bigEndianUnsigned(Buffer.from(jwk.y ?? '', 'base64url'))),
  ]);
  return proto.toString('base64');
}

/** The public Tink JSON keyset served at the keyset URL. */
export function publicKeyset(state: WebhookState): object {
  return {
    primaryKeyId: state.primaryKeyId,
    key: state.keys.map((k) => ({
      keyData: { typeUrl: 'type.googleapis.com/google.crypto.tink.EcdsaPublicKey', value: tinkPublicKey(k), keyMaterialType: 'ASYMMETRIC_PUBLIC' },
      status: 'ENABLED',
      keyId: k.keyId,
      outputPrefixType: 'TINK',
    })),
  };
}

/** Tink signature: base64(0x01 ‖ keyId (4 bytes BE) ‖ DER ECDSA-P256-SHA256 over the raw body). */
export function signBody(state: WebhookState, body: string): string {
  const key = state.keys.find((k) => k.keyId === state.primaryKeyId) ?? state.keys[0];
  if (!key) throw new Error('no signing key');
  const prefix = Buffer.alloc(5);
  prefix[0] = 0x01;
  prefix.writeUInt32BE(key.keyId, 1);
  const sig = sign('sha256', Buffer.from(body), { key: key.privateKey, dsaEncoding: 'der' });
  if (state.badSignature) sig[sig.length - 1] = (sig[sig.length - 1] ?? 0) ^ 0xff;
  return Buffer.concat([prefix, sig]).toString('base64');
}

function signatureHeaders(state: WebhookState, body: string): Record<string, string> {
  const value = signBody(state, body);
  return Object.fromEntries(state.signatureHeaders.map((h) => [h.toLowerCase(), value]));
}

async function post(state: WebhookState, url: string, body: string, headers: Record<string, string>): Promise<{ status: number | null; error?: string }> {
  try {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body, signal: AbortSignal.timeout(state.timeoutMs) });
    await res.arrayBuffer().catch(() => undefined);
    return { status: res.status };
  } catch (err) {
    return { status: null, error: (err as Error).message };
  }
}

/**
 * The two verification POSTs (§4.2): with the exact secret → 201 (200 too unless strict), then
 * without Authorization → 401 or 403. Returns what failed, or null.
 */
async function verifyEndpoint(state: WebhookState, url: string, secret: string): Promise<string | null> {
  const body = JSON.stringify({ type: 'verification' });
  const ua = { 'user-agent': 'Google-Health-API-Webhooks-Verifier' };
  const first = await post(state, url, body, { ...ua, authorization: secret, ...signatureHeaders(state, body) });
  const okFirst = state.strictVerification ? [201] : [200, 201];
  if (first.status === null || !okFirst.includes(first.status)) {
    return `the request with the Authorization header answered ${first.status ?? first.error}, expected ${okFirst.join(' or ')}`;
  }
  const second = await post(state, url, body, { ...ua, ...signatureHeaders(state, body) });
  if (second.status !== 401 && second.status !== 403) return `the request without the Authorization header answered ${second.status ?? second.error}, expected 401 or 403`;
  return null;
}

function subscriberBody(state: WebhookState, s: Subscriber): object {
  return {
    name: `projects/${state.projectNumber}/subscribers/${s.id}`,
    endpointUri: s.endpointUri,
    subscriberConfigs: s.configs,
    endpointAuthorization: { secretSet: true },
    state: s.state,
    createTime: timestamp(s.createTime),
    updateTime: timestamp(s.updateTime),
  };
}

function operation(response: object | null, type: string): object {
  return { name: `operations/${randomUUID()}`, done: true, response: { '@type': `type.googleapis.com/${type}`, ...(response ?? {}) } };
}

function parseConfigs(raw: unknown): SubscriberConfig[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) throw invalid('INVALID_ARGUMENT', 'subscriberConfigs must be an array.');
  return raw.map((c: { dataTypes?: unknown; subscriptionCreatePolicy?: unknown }) => {
    if (!Array.isArray(c?.dataTypes)) throw invalid('MISSING_DATA_TYPES', 'subscriberConfigs[].dataTypes is required.');
    if (c.dataTypes.length === 0) throw invalid('DATA_TYPES_CANNOT_BE_EMPTY', 'subscriberConfigs[].dataTypes cannot be empty.');
    for (const t of c.dataTypes) {
      if (typeof t !== 'string' || !findDataType(t)) throw invalid('INVALID_DATA_TYPE_FORMAT', `Invalid data type "${String(t)}"; use kebab-case data types such as heart-rate.`);
    }
    if (c.subscriptionCreatePolicy !== 'AUTOMATIC' && c.subscriptionCreatePolicy !== 'MANUAL') {
      throw invalid('INVALID_ARGUMENT', 'subscriberConfigs[].subscriptionCreatePolicy must be AUTOMATIC or MANUAL.');
    }
    return { dataTypes: c.dataTypes as string[], subscriptionCreatePolicy: c.subscriptionCreatePolicy };
  });
}

function checkEndpoint(raw: unknown): string {
  if (typeof raw !== 'string') throw invalid('INVALID_ARGUMENT', 'endpointUri is required.');
  try {
    const url = new URL(raw);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error('scheme');
  } catch {
    throw invalid('INVALID_ARGUMENT', `endpointUri "${raw}" is not a valid URL.`);
  }
  return raw;
}

/** Sets the notification baseline of every subscriber for a user: no backfill of earlier data (§4.3). */
export function baselineUser(state: GoogleState, user: WorldUser): void {
  const synced = lastSync(state.world, user, state.clock.now()) ?? -Infinity;
  for (const sub of state.webhooks.subscribers.values()) {
    const key = `${sub.id}|${user.id}`;
    if (!state.webhooks.notifiedUpTo.has(key)) state.webhooks.notifiedUpTo.set(key, synced);
  }
  planUser(state, user);
}

/** Registers subscriber CRUD under `/v4/projects/{projectNumber}/subscribers` and the keyset. */
export function registerWebhookRoutes(app: FastifyInstance, state: GoogleState): void {
  const wh = state.webhooks;
  app.get('/googlehealthapi/webhooks/webhooks_public_keyset.json', async (_request, reply) => reply.type('application/json').send(publicKeyset(wh)));

  const guard = (request: FastifyRequest, project: string): void => {
    const m = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '');
    if (!m?.[1]) throw new ApiError(401, 'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.', 'CREDENTIALS_MISSING', {}, 'UNAUTHENTICATED');
    if (m[1] !== wh.serviceAccountToken) {
      const user = state.accessTokens.get(m[1]);
      if (user && !user.scopes.includes(CLOUD_PLATFORM)) throw new ApiError(403, 'Request had insufficient authentication scopes.', 'ACCESS_TOKEN_SCOPE_INSUFFICIENT', { service: 'health.googleapis.com' });
      throw new ApiError(401, 'Request had invalid authentication credentials.', 'ACCESS_TOKEN_INVALID', {}, 'UNAUTHENTICATED');
    }
    // The project must be the project number; a project id is refused ([LIVE] §4.1).
    if (project !== wh.projectNumber) throw new ApiError(403, `Permission denied on resource project ${project}.`, 'IAM_PERMISSION_DENIED', { resource: `projects/${project}` });
  };

  const wrap =
    (fn: (request: FastifyRequest, params: Record<string, string>) => Promise<object>) =>
    async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
      try {
        const params = request.params as Record<string, string>;
        guard(request, params.project ?? '');
        return reply.type('application/json; charset=UTF-8').send(await fn(request, params));
      } catch (err) {
        if (err instanceof ApiError) return sendApiError(reply, err);
        throw err;
      }
    };

  app.post(
    '/v4/projects/:project/subscribers',
    wrap(async (request) => {
      const q = request.query as Record<string, string | undefined>;
      const id = q.subscriberId ?? randomUUID();
      if (q.subscriberId !== undefined && !/^[a-z]([a-z0-9-]{2,34}[a-z0-9])$/.test(q.subscriberId)) {
        throw invalid('INVALID_SUBSCRIBER_NAME', 'subscriberId must be 4-36 characters matching [a-z]([a-z0-9-]{2,34}[a-z0-9]).');
      }
      if (wh.subscribers.has(id)) throw new ApiError(409, `Subscriber ${id} already exists.`, undefined, {}, 'ALREADY_EXISTS');
      const body = (request.body ?? {}) as { endpointUri?: unknown; endpointAuthorization?: { secret?: unknown }; subscriberConfigs?: unknown };
      const endpointUri = checkEndpoint(body.endpointUri);
      const secret = body.endpointAuthorization?.secret;
      if (typeof secret !== 'string' || secret === '') throw invalid('INVALID_ARGUMENT', 'endpointAuthorization.secret is required (the full Authorization header value, e.g. "Bearer …").');
      const configs = parseConfigs(body.subscriberConfigs);
      const failed = await verifyEndpoint(wh, endpointUri, secret);
      if (failed) throw new ApiError(400, `Endpoint verification failed: ${failed}.`, undefined, {}, 'FAILED_PRECONDITION');
      const now = state.clock.now();
      const sub: Subscriber = { id, endpointUri, secret, configs, state: 'ACTIVE', createTime: now, updateTime: now };
      wh.subscribers.set(id, sub);
      for (const u of state.world.users) if (mayBeConnected(state, u.id) && isConnected(state, u.id)) baselineUser(state, u);
      return operation(subscriberBody(wh, sub), 'google.devicesandservices.health.v4.Subscriber');
    }),
  );

  app.get(
    '/v4/projects/:project/subscribers',
    wrap(async () => {
      const subs = [...wh.subscribers.values()].map((s) => subscriberBody(wh, s));
      return { ...(subs.length > 0 ? { subscribers: subs } : {}), totalSize: subs.length };
    }),
  );

  app.patch(
    '/v4/projects/:project/subscribers/:id',
    wrap(async (request, params) => {
      const sub = wh.subscribers.get(params.id ?? '');
      if (!sub) throw new ApiError(404, `Subscriber ${params.id} not found.`, 'RESOURCE_NOT_FOUND');
      const mask = ((request.query as Record<string, string | undefined>).updateMask ?? '').split(',').filter(Boolean);
      if (mask.length === 0) throw invalid('INVALID_FIELD_MASK_DATA', 'updateMask is required (endpointUri, subscriberConfigs, endpointAuthorization).');
      const body = (request.body ?? {}) as { endpointUri?: unknown; endpointAuthorization?: { secret?: unknown }; subscriberConfigs?: unknown };
      const next = { ...sub };
      for (const f of mask) {
        if (f === 'endpointUri') next.endpointUri = checkEndpoint(body.endpointUri);
        else if (f === 'endpointAuthorization') {
          if (typeof body.endpointAuthorization?.secret !== 'string') throw invalid('INVALID_ARGUMENT', 'endpointAuthorization.secret is required.');
          next.secret = body.endpointAuthorization.secret;
        } else if (f === 'subscriberConfigs') next.configs = parseConfigs(body.subscriberConfigs);
        else throw invalid('INVALID_FIELD_MASK_DATA', `Unknown field in updateMask: ${f}.`);
      }
      if (mask.includes('endpointUri') || mask.includes('endpointAuthorization')) {
        const failed = await verifyEndpoint(wh, next.endpointUri, next.secret);
        if (failed) throw new ApiError(400, `Endpoint verification failed: ${failed}.`, undefined, {}, 'FAILED_PRECONDITION');
      }
      next.updateTime = state.clock.now();
      wh.subscribers.set(sub.id, next);
      return operation(subscriberBody(wh, next), 'google.devicesandservices.health.v4.Subscriber');
    }),
  );

  app.delete(
    '/v4/projects/:project/subscribers/:id',
    wrap(async (_request, params) => {
      if (!wh.subscribers.delete(params.id ?? '')) throw new ApiError(404, `Subscriber ${params.id} not found.`, 'RESOURCE_NOT_FOUND');
      return operation(null, 'google.protobuf.Empty');
    }),
  );
}

// ---- notifications -------------------------------------------------------------------------

function intervalForms(user: WorldUser, start: number, end: number): object {
  return {
    physicalTimeInterval: { startTime: timestamp(start), endTime: timestamp(end) },
    civilDateTimeInterval: { startDateTime: civilDateTime(user.zoneHistory, start), endDateTime: civilDateTime(user.zoneHistory, end) },
    civilIso8601TimeInterval: { startTime: civilString(user.zoneHistory, start), endTime: civilString(user.zoneHistory, end) },
  };
}

/**
 * The intervals a sync in (prev, last] changed for a data type: each local day whose points of
 * that type it added or modified (UPSERT, §4.4) — new minutes with a value, a revision (a sync
 * revises days up to 48 h after they end), a session or daily value that appeared or changed
 * since `prev` — clipped to the sync. A day the sync left as it was is not named, so a type
 * the sync brought nothing of is not notified.
 */
function changedIntervals(state: GoogleState, user: WorldUser, type: string, prev: number, last: number): Array<[number, number]> {
  const info = findDataType(type);
  if (!info || !RENDERED_TYPES.has(type)) return [];
  const h = user.zoneHistory;
  const from = Number.isFinite(prev) ? prev - REVISION_WINDOW_MS : -Infinity;
  let first = Number.isFinite(from) ? localDateOf(h, from) : user.since;
  if (first < user.since) first = user.since;
  const lastDate = localDateOf(h, last);
  const ctx: RenderContext = { world: state.world, user, healthUserId: healthUserIdOf(state.world.seed, user), now: state.clock.now(), civilTimes: false, phone: false };
  const out: Array<[number, number]> = [];
  for (let d = first; d <= lastDate; d = addDays(d, 1)) {
    const b = dayBounds(h, d);
    if (b.end + REVISION_WINDOW_MS < prev && Number.isFinite(prev)) continue;
    const minuteType = type === 'steps' || type === 'heart-rate' || type === 'active-zone-minutes';
    const changed = !Number.isFinite(prev)
      ? minuteType
        ? viewDay(state.world, user, d, ctx.now).day !== null
        : pointsForDate(ctx, info, d).length > 0
      : minuteType
        ? minutesChanged(state, user, type, d, prev, ctx.now)
        : renderPoints({ ...ctx, now: prev }, info, d) !== renderPoints(ctx, info, d);
    if (changed) out.push([b.start, Math.min(b.end, last)]);
  }
  return out;
}

/** A day's points of a (session or daily) type as rendered at `ctx.now`, as one string to compare. */
function renderPoints(ctx: RenderContext, info: NonNullable<ReturnType<typeof findDataType>>, date: string): string {
  return JSON.stringify(pointsForDate(ctx, info, date).map((p) => p.render()));
}

/** Whether a minute type's day gained a minute with a value, or was revised, between `from` and `to`. */
function minutesChanged(state: GoogleState, user: WorldUser, type: string, date: string, from: number, to: number): boolean {
  const before = viewDay(state.world, user, date, from);
  const after = viewDay(state.world, user, date, to);
  if (!after.day) return false;
  if (before.day && before.generation !== after.generation) return true;
  for (let i = before.visibleMinutes; i < after.visibleMinutes; i++) {
    if (type === 'steps' ? (after.day.steps[i] ?? 0) > 0 : type === 'heart-rate' ? (after.day.heartRate[i] ?? null) !== null : (after.day.zone[i] ?? 0) > 0) return true;
  }
  return false;
}

function enqueue(state: GoogleState, sub: Subscriber, body: string, userId: string | undefined, dataTypes: string[], duplicateOf?: number): Delivery {
  const now = state.clock.now();
  const d: Delivery = { id: state.webhooks.nextDeliveryId++, subscriberId: sub.id, body, userId, dataTypes, duplicateOf, createdAt: now, nextAttemptAt: now, attempts: [], state: 'pending' };
  state.webhooks.deliveries.push(d);
  state.webhooks.pending.add(d);
  return d;
}

/** A delivery is done with (delivered or dropped): out of the pending set, and forgotten unless kept. */
function settle(wh: WebhookState, d: Delivery, outcome: 'delivered' | 'dropped'): void {
  d.state = outcome;
  wh.pending.delete(d);
  if (wh.keepSettled) return;
  // Forgotten in bulk once half the list is settled: one pass per many deliveries.
  wh.settled += 1;
  if (wh.settled * 2 > wh.deliveries.length) {
    wh.deliveries = wh.deliveries.filter((x) => x.state === 'pending');
    wh.settled = 0;
  }
}

/** Sends a notification envelope set to one subscriber, as one array or one POST each. */
function sendEnvelopes(state: GoogleState, sub: Subscriber, envelopes: Array<{ data: { healthUserId: string; dataType: string } }>, userId: string): void {
  if (envelopes.length === 0) return;
  if (state.webhooks.envelope === 'array') {
    for (let i = 0; i < envelopes.length; i += 99) {
      const batch = envelopes.slice(i, i + 99);
      enqueue(state, sub, JSON.stringify(batch), userId, batch.map((e) => e.data.dataType));
    }
  } else {
    for (const e of envelopes) enqueue(state, sub, JSON.stringify(e), userId, [e.data.dataType]);
  }
}

/** Builds one notification envelope (§4.4). */
export function envelope(state: GoogleState, user: WorldUser, dataType: string, operation: 'UPSERT' | 'DELETE', intervals: Array<[number, number]>): { data: { healthUserId: string; dataType: string } } {
  return {
    data: {
      version: '1',
      // AUTOMATIC subscriptions get a random UUID per notification (§4.4).
      clientProvidedSubscriptionName: randomUUID(),
      healthUserId: healthUserIdOf(state.world.seed, user),
      operation,
      dataType,
      intervals: intervals.map(([s, e]) => intervalForms(user, s, e)),
    } as { healthUserId: string; dataType: string },
  };
}

/** Types a subscriber gets AUTOMATIC notifications for, for a user with these scopes. */
function notifiedTypes(sub: Subscriber, scopes: Set<string>): string[] {
  const types = new Set<string>();
  for (const c of sub.configs) {
    if (c.subscriptionCreatePolicy !== 'AUTOMATIC') continue;
    for (const t of c.dataTypes) {
      const info = findDataType(t);
      if (info?.webhook && scopes.has(info.scope)) types.add(t);
    }
  }
  return [...types];
}

/** Whether any token was ever issued to the user: users without one are skipped without a look. */
function mayBeConnected(state: GoogleState, userId: string): boolean {
  return state.refreshTokens.ofUser(userId).size > 0 || state.accessTokens.ofUser(userId).size > 0;
}

/** Notifies one subscriber of the user's syncs since the last notified one; answers how many notifications. */
function notifyUser(state: GoogleState, sub: Subscriber, user: WorldUser, now: number): number {
  const wh = state.webhooks;
  const key = `${sub.id}|${user.id}`;
  const last = lastSync(state.world, user, now - wh.notifyAfterMs);
  if (last === null) return 0;
  const prev = wh.notifiedUpTo.get(key);
  if (prev === undefined) {
    wh.notifiedUpTo.set(key, last);
    return 0;
  }
  if (last <= prev) return 0;
  wh.notifiedUpTo.set(key, last);
  const envs = notifiedTypes(sub, grantedScopes(state, user.id)).flatMap((t) => {
    const intervals = changedIntervals(state, user, t, prev, last);
    return intervals.length > 0 ? [envelope(state, user, t, 'UPSERT', intervals)] : [];
  });
  sendEnvelopes(state, sub, envs, user.id);
  return envs.length;
}

/** The smallest instant after `t` (sync instants may carry fractions of a millisecond). */
function justAfter(t: number): number {
  return Number.isFinite(t) ? t + Math.max(Number.MIN_VALUE, Math.abs(t) * Number.EPSILON) : t;
}

function heapPush(heap: WebhookState['due'], entry: { at: number; userId: string }): void {
  heap.push(entry);
  for (let i = heap.length - 1; i > 0; ) {
    const parent = (i - 1) >> 1;
    if (heap[parent]!.at <= heap[i]!.at) break;
    [heap[parent], heap[i]] = [heap[i]!, heap[parent]!];
    i = parent;
  }
}

function heapPop(heap: WebhookState['due']): { at: number; userId: string } | undefined {
  const top = heap[0];
  const last = heap.pop();
  if (heap.length > 0 && last) {
    heap[0] = last;
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && heap[l]!.at < heap[m]!.at) m = l;
      if (r < heap.length && heap[r]!.at < heap[m]!.at) m = r;
      if (m === i) break;
      [heap[m], heap[i]] = [heap[i]!, heap[m]!];
      i = m;
    }
  }
  return top;
}

/**
 * When the user's next sync is to be notified: its instant plus `notifyAfterMs`, from the
 * world's syncs (the grid's next point, or a sync recorded ahead of time). A sync recorded later
 * for an instant already past is found by the next full pass (notifySyncs).
 */
export function planUser(state: GoogleState, user: WorldUser): void {
  const wh = state.webhooks;
  let after = Infinity;
  for (const sub of wh.subscribers.values()) {
    if (sub.state !== 'ACTIVE') continue;
    after = Math.min(after, wh.notifiedUpTo.get(`${sub.id}|${user.id}`) ?? -Infinity);
  }
  if (after === Infinity) return;
  const next = firstSyncAfter(state.world, user, justAfter(after), Infinity);
  if (next === null) {
    wh.dueAt.delete(user.id);
    return;
  }
  const at = next + wh.notifyAfterMs;
  if (wh.dueAt.get(user.id) === at) return;
  wh.dueAt.set(user.id, at);
  heapPush(wh.due, { at, userId: user.id });
  if (wh.due[0]!.at === at) wh.wake?.();
}

/**
 * Turns device syncs since the last notification into notifications, for every ACTIVE subscriber
 * and every user with a live grant (revoked users get none), and plans each user's next one.
 */
export function notifySyncs(state: GoogleState): number {
  const wh = state.webhooks;
  const now = state.clock.now();
  let created = 0;
  const connected: WorldUser[] = [];
  for (const user of state.world.users) if (mayBeConnected(state, user.id) && isConnected(state, user.id)) connected.push(user);
  for (const sub of wh.subscribers.values()) {
    if (sub.state !== 'ACTIVE') continue;
    for (const user of connected) created += notifyUser(state, sub, user, now);
  }
  for (const user of connected) planUser(state, user);
  if (created > 0) void pump(state);
  return created;
}

/** Notifies the users whose planned notification is due (no look at anyone else); answers how many notifications. */
export function notifyDue(state: GoogleState): number {
  const wh = state.webhooks;
  const now = state.clock.now();
  let created = 0;
  while (wh.due.length > 0 && wh.due[0]!.at <= now) {
    const { at, userId } = heapPop(wh.due)!;
    if (wh.dueAt.get(userId) !== at) continue;
    wh.dueAt.delete(userId);
    const user = findUser(state.world, userId);
    if (!user || !isConnected(state, userId)) continue;
    for (const sub of wh.subscribers.values()) if (sub.state === 'ACTIVE') created += notifyUser(state, sub, user, now);
    planUser(state, user);
  }
  return created;
}

/** The next simulated instant something is due: a planned notification or a delivery's retry. */
export function nextDueAt(state: GoogleState): number {
  const wh = state.webhooks;
  let at = Infinity;
  while (wh.due.length > 0 && wh.dueAt.get(wh.due[0]!.userId) !== wh.due[0]!.at) heapPop(wh.due);
  if (wh.due.length > 0) at = wh.due[0]!.at;
  for (const d of wh.pending) if (!running.has(d)) at = Math.min(at, d.nextAttemptAt);
  return at;
}

/** A clock that may run faster than real time says how fast (simulated ms per real ms). */
export type RatedClock = Clock & { rate?(): number };

/** Simulated ms per real ms: the clock's own answer, else 1 while it ticks and 0 while frozen. */
export function clockRate(clock: RatedClock): number {
  return typeof clock.rate === 'function' ? clock.rate() : clock.isFrozen() ? 0 : 1;
}

/** Sends a hand-made notification to every subscriber configured for the type (control API). */
export function notifyManually(state: GoogleState, user: WorldUser, dataType: string, operation: 'UPSERT' | 'DELETE', intervals: Array<[number, number]>): number {
  let n = 0;
  for (const sub of state.webhooks.subscribers.values()) {
    if (sub.state !== 'ACTIVE' || !sub.configs.some((c) => c.dataTypes.includes(dataType))) continue;
    sendEnvelopes(state, sub, [envelope(state, user, dataType, operation, intervals)], user.id);
    n += 1;
  }
  void pump(state);
  return n;
}

/** Queues an exact repeat of a delivery (same body, a fresh signature of the same bytes). */
export function redeliver(state: GoogleState, id: number): Delivery | undefined {
  const original = state.webhooks.deliveries.find((d) => d.id === id);
  const sub = original ? state.webhooks.subscribers.get(original.subscriberId) : undefined;
  if (!original || !sub) return undefined;
  const d = enqueue(state, sub, original.body, original.userId, original.dataTypes, original.id);
  void pump(state);
  return d;
}

async function attempt(state: GoogleState, d: Delivery): Promise<void> {
  const wh = state.webhooks;
  const sub = wh.subscribers.get(d.subscriberId);
  if (!sub) {
    settle(wh, d, 'dropped');
    return;
  }
  const headers: Record<string, string> = { 'user-agent': 'Google-Health-API-Webhooks', ...signatureHeaders(wh, d.body) };
  if (wh.sendAuthorization) headers.authorization = sub.secret;
  const result = await post(wh, sub.endpointUri, d.body, headers);
  const now = state.clock.now();
  d.attempts.push({ at: timestamp(now), status: result.status, ...(result.error ? { error: result.error } : {}) });
  // Only 204 counts; a 200 is redelivered forever ([LIVE] open-wearables PR #1561, §4.6).
  if (result.status === 204) {
    settle(wh, d, 'delivered');
    if (d.duplicateOf === undefined && wh.duplicateNext > 0) {
      wh.duplicateNext -= 1;
      enqueue(state, sub, d.body, d.userId, d.dataTypes, d.id);
    }
    return;
  }
  if (now - d.createdAt >= wh.maxAgeMs) {
    settle(wh, d, 'dropped');
    return;
  }
  // Exponential backoff in simulated time: 1 s, 2 s, 4 s … capped at an hour.
  d.nextAttemptAt = now + Math.min(3_600_000, 1000 * 2 ** (d.attempts.length - 1));
}

const running = new WeakMap<Delivery, Promise<void>>();

/** Starts every pending delivery that is due and not under way, without waiting for them. */
export function startDue(state: GoogleState): void {
  const wh = state.webhooks;
  const now = state.clock.now();
  for (const d of wh.pending) {
    if (d.nextAttemptAt > now || running.has(d)) continue;
    const p = attempt(state, d).finally(() => {
      running.delete(d);
      wh.inFlight.delete(p);
    });
    running.set(d, p);
    wh.inFlight.add(p);
  }
}

/** Attempts every pending delivery that is due; resolves when those attempts (and any duplicates they spawn) finish. */
export async function pump(state: GoogleState): Promise<void> {
  const wh = state.webhooks;
  for (let round = 0; round < 50; round += 1) {
    const now = state.clock.now();
    const due = [...wh.pending].filter((d) => d.nextAttemptAt <= now && !running.has(d));
    if (due.length === 0 && wh.inFlight.size === 0) break;
    for (const d of due) {
      const p = attempt(state, d).finally(() => {
        running.delete(d);
        wh.inFlight.delete(p);
      });
      running.set(d, p);
      wh.inFlight.add(p);
    }
    // Wait for attempts started here or by a concurrent pump; they may enqueue duplicates.
    await Promise.all([...wh.inFlight]);
  }
}

/** A delivery as the control API lists it. */
export function describeDelivery(d: Delivery): object {
  return {
    id: d.id,
    subscriberId: d.subscriberId,
    userId: d.userId ?? null,
    dataTypes: d.dataTypes,
    duplicateOf: d.duplicateOf ?? null,
    state: d.state,
    lastStatus: d.attempts[d.attempts.length - 1]?.status ?? null,
    attempts: d.attempts,
    nextAttemptAt: d.state === 'pending' ? timestamp(d.nextAttemptAt) : null,
    body: JSON.parse(d.body) as unknown,
  };
}
