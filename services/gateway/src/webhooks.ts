import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { Counter } from 'prom-client';
import { z } from 'zod';
import { findParticipantsByAccounts, findZoneHistory, invalidateLedgerDays, recordWebhookVerified } from '@fitlamp/db';
import { streamOfDataType } from '@fitlamp/google-health';
import { addDays, localDayAt, type StreamName, type ZoneHistory } from '@fitlamp/provider';
import { enqueue } from '@fitlamp/queues';
import type { GatewayDeps } from './app.ts';
import { createKeysetVerifier, type KeysetVerifier } from './webhook-keyset.ts';

/**
 * `POST /webhooks/google-health` (google-health-api §4): the endpoint verification handshake,
 * then signed notify-only envelopes, each turned into a targeted sync of the named participant,
 * streams and local days. Answers 204 having only looked the users up and enqueued work; the
 * data itself is pulled by the fetcher. Duplicates (delivery is at least once) are ignored for
 * as long as Google may redeliver.
 */

/** Google keeps undelivered notifications up to 7 days (§4.6): remember one a day longer. */
const DEDUP_TTL_SECONDS = 8 * 86_400;
/** A notification names at most this many local days (a longer interval is clipped to its newest days). */
const MAX_DAYS_PER_NOTIFICATION = 62;

const civilDate = z.object({ year: z.number().int(), month: z.number().int().min(1).max(12), day: z.number().int().min(1).max(31) });
const civilDateTime = z.object({
  date: civilDate,
  time: z.object({ hours: z.number().int().optional(), minutes: z.number().int().optional(), seconds: z.number().int().optional() }).optional(),
});
const interval = z.object({
  physicalTimeInterval: z.object({ startTime: z.iso.datetime({ offset: true }), endTime: z.iso.datetime({ offset: true }) }).optional(),
  civilDateTimeInterval: z.object({ startDateTime: civilDateTime, endDateTime: civilDateTime }).optional(),
  civilIso8601TimeInterval: z
    .object({ startTime: z.string().regex(/^\d{4}-\d{2}-\d{2}T[\d:.]+$/), endTime: z.string().regex(/^\d{4}-\d{2}-\d{2}T[\d:.]+$/) })
    .optional(),
});
const notification = z.object({
  data: z.object({
    version: z.string().max(20).optional(),
    clientProvidedSubscriptionName: z.string().max(200).optional(),
    healthUserId: z.string().min(1).max(200),
    operation: z.enum(['UPSERT', 'DELETE']).optional(),
    dataType: z.string().min(1).max(100),
    intervals: z.array(interval).max(1000).default([]),
  }),
});
type Notification = z.infer<typeof notification>['data'];
const envelopes = z.union([notification.transform((n) => [n]), z.array(notification).min(1).max(1000)]);

const pad = (n: number) => String(n).padStart(2, '0');
const dateOf = (d: z.infer<typeof civilDate>) => `${d.year}-${pad(d.month)}-${pad(d.day)}`;
const isMidnight = (t: z.infer<typeof civilDateTime>['time']) => !t || ((t.hours ?? 0) === 0 && (t.minutes ?? 0) === 0 && (t.seconds ?? 0) === 0);

/** The local days from `first` to `last`, both included (an end at midnight is exclusive). */
function daysBetween(first: string, last: string): string[] {
  const days: string[] = [];
  for (let day = last; day >= first && days.length < MAX_DAYS_PER_NOTIFICATION; day = addDays(day, -1)) days.push(day);
  return days;
}

/**
 * The participant's local days an interval touches: the civil forms when present (they are the
 * participant's own calendar), else the physical instants through the zone history.
 */
export function intervalDays(i: z.infer<typeof interval>, zones: ZoneHistory): string[] {
  if (i.civilIso8601TimeInterval) {
    const { startTime, endTime } = i.civilIso8601TimeInterval;
    const first = startTime.slice(0, 10);
    let last = endTime.slice(0, 10);
    if (last > first && /T00:00(:00(\.0+)?)?$/.test(endTime)) last = addDays(last, -1);
    return daysBetween(first, last < first ? first : last);
  }
  if (i.civilDateTimeInterval) {
    const first = dateOf(i.civilDateTimeInterval.startDateTime.date);
    let last = dateOf(i.civilDateTimeInterval.endDateTime.date);
    if (last > first && isMidnight(i.civilDateTimeInterval.endDateTime.time)) last = addDays(last, -1);
    return daysBetween(first, last < first ? first : last);
  }
  if (i.physicalTimeInterval) {
    const start = Date.parse(i.physicalTimeInterval.startTime);
    const end = Math.max(start, Date.parse(i.physicalTimeInterval.endTime) - 1);
    const history = zones.length > 0 ? zones : [{ zone: 'UTC', validFrom: 0 }];
    return daysBetween(localDayAt(history, start), localDayAt(history, end));
  }
  return [];
}

function sameSecret(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

export interface WebhookOptions {
  /** Tests: a verifier with its own keyset source. */
  verifier?: KeysetVerifier;
}

/**
 * Registers `POST /webhooks/google-health` when the Google Health provider and
 * `GOOGLE_HEALTH_WEBHOOK_SECRET` are configured; without them the route does not exist (404).
 */
export async function registerGoogleHealthWebhooks(app: FastifyInstance, deps: GatewayDeps, options: WebhookOptions = {}): Promise<void> {
  const secret = deps.env.GOOGLE_HEALTH_WEBHOOK_SECRET;
  if (!secret || !deps.providers['google-health']) return;
  const { db, redis, logger } = deps;
  const verifier = options.verifier ?? createKeysetVerifier({ url: deps.env.GOOGLE_HEALTH_WEBHOOK_KEYSET_URL });
  const notifications = new Counter({
    name: 'fitlamp_webhook_notifications_total',
    help: 'Webhook notifications received, by outcome (accepted, duplicate, unknown_user, ignored_type, bad_signature, malformed)',
    labelNames: ['provider', 'outcome'],
    registers: [deps.registry],
  });
  const count = (outcome: string, n = 1) => notifications.inc({ provider: 'google-health', outcome }, n);
  const refuse = (reply: FastifyReply, status: number, error: string, message: string) => reply.code(status).send({ error, message });

  await app.register(async (scope) => {
    // The signature covers the exact bytes: keep the body raw, parse it here.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: 1024 * 1024 }, (_request, body, done) => done(null, body));

    scope.post('/webhooks/google-health', async (request, reply) => {
      const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      let body: unknown;
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        count('malformed');
        return refuse(reply, 400, 'malformed', 'the body is not JSON');
      }
      const authorization = request.headers.authorization;

      // §4.2: with the exact secret → 201, without (or wrong) → 401.
      if (typeof body === 'object' && body !== null && !Array.isArray(body) && (body as { type?: unknown }).type === 'verification') {
        if (!sameSecret(authorization, secret)) return refuse(reply, 401, 'unauthorized', 'missing or wrong Authorization');
        logger.info({ provider: 'google-health' }, 'webhook endpoint verified');
        return reply.code(201).send({});
      }

      // Notifications: the Authorization header may be missing on events (§4.5, one live report),
      // so the signature is what counts; a wrong Authorization is refused all the same.
      if (authorization !== undefined && !sameSecret(authorization, secret)) {
        count('bad_signature');
        return refuse(reply, 401, 'unauthorized', 'wrong Authorization');
      }
      const header = request.headers['x-healthapi-signature'] ?? request.headers['google-health-api-signature'];
      const signature = Array.isArray(header) ? header[0] : header;
      let valid = false;
      try {
        valid = signature !== undefined && (await verifier.verify(raw, signature));
      } catch (error) {
        logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'webhook keyset unavailable');
        return refuse(reply, 503, 'keyset_unavailable', 'cannot verify signatures right now; retry later');
      }
      if (!valid) {
        count('bad_signature');
        logger.warn({ provider: 'google-health', hasSignature: signature !== undefined }, 'webhook notification with a missing or bad signature refused');
        return refuse(reply, 401, 'bad_signature', 'the signature does not verify against the published keyset');
      }
      const parsed = envelopes.safeParse(body);
      if (!parsed.success) {
        count('malformed');
        return refuse(reply, 400, 'malformed', parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; '));
      }
      const list = parsed.data.map((n) => n.data);

      const users = [...new Set(list.map((n) => n.healthUserId))];
      const participantOf = await findParticipantsByAccounts(db, 'google-health', users);
      const known = list.filter((n) => participantOf.has(n.healthUserId));
      if (known.length === 0) {
        count('unknown_user', list.length);
        logger.warn({ provider: 'google-health', notifications: list.length }, 'webhook notification for unknown users refused');
        return refuse(reply, 404, 'unknown_user', 'no participant is connected with this healthUserId');
      }
      if (known.length < list.length) count('unknown_user', list.length - known.length);

      await recordWebhookVerified(db, 'google-health', list.length);

      // Targeted syncs, merged per participant.
      const work = new Map<string, { streams: Set<StreamName>; days: Set<string>; keys: string[] }>();
      const zonesOf = new Map<string, ZoneHistory>();
      for (const n of known) {
        const stream = streamOfDataType(n.dataType);
        if (!stream) {
          count('ignored_type');
          continue;
        }
        const key = `${deps.env.QUEUE_PREFIX}-webhook-${dedupKey(n)}`;
        // SET NX: the first delivery wins; a redelivery within the TTL is a duplicate.
        if ((await redis.set(key, '1', 'EX', DEDUP_TTL_SECONDS, 'NX')) !== 'OK') {
          count('duplicate');
          continue;
        }
        const participantId = participantOf.get(n.healthUserId)!;
        if (!zonesOf.has(participantId)) zonesOf.set(participantId, await findZoneHistory(db, participantId));
        const entry = work.get(participantId) ?? { streams: new Set(), days: new Set(), keys: [] };
        entry.streams.add(stream);
        for (const i of n.intervals) for (const day of intervalDays(i, zonesOf.get(participantId)!)) entry.days.add(day);
        entry.keys.push(key);
        work.set(participantId, entry);
        count('accepted');
      }
      for (const [participantId, entry] of work) {
        // Durable first: the named days lose their fetch watermark, so the planner fetches them
        // on the participant's next sync even if a job is already waiting (same job id) or Redis
        // loses this one.
        await invalidateLedgerDays(db, participantId, {
          streams: [...entry.streams],
          days: [...entry.days],
          reason: 'Google Health notified a change',
        });
        try {
          await enqueue(deps.queues, 'sync', { participantId, reason: 'webhook', streams: [...entry.streams], days: [...entry.days].sort() });
        } catch (error) {
          // Not enqueued: forget the notification so Google's retry is not taken for a duplicate.
          await redis.del(...entry.keys).catch(() => {});
          logger.warn({ participantId, err: error instanceof Error ? error.message : String(error) }, 'could not enqueue a webhook sync');
          return refuse(reply, 503, 'unavailable', 'could not queue the work; retry later');
        }
      }
      logger.info({ provider: 'google-health', notifications: list.length, participants: work.size }, 'webhook notifications accepted');
      return reply.code(204).send();
    });
  });
}

/**
 * What identifies a notification: the whole `data` object, canonically ordered. Redeliveries
 * repeat it byte for byte (AUTOMATIC subscriptions put a fresh UUID in every new notification),
 * so a later change of the same day is a new notification, not a duplicate.
 */
function dedupKey(n: Notification): string {
  const canonical = (value: unknown): unknown =>
    Array.isArray(value)
      ? value.map(canonical)
      : value && typeof value === 'object'
        ? Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical((value as Record<string, unknown>)[k])]))
        : value;
  return createHash('sha256').update(JSON.stringify(canonical(n))).digest('hex');
}
