import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { Counter } from 'prom-client';
import { findParticipantsByAccounts, findZoneHistory, invalidateLedgerDays, recordWebhookVerified } from '@fitlamp/db';
import type { StreamName, ZoneHistory } from '@fitlamp/provider';
import { enqueue } from '@fitlamp/queues';
import type { GatewayDeps } from './app.ts';
import { sendError } from './errors.ts';
import { createKeysetVerifier } from './webhook-keyset.ts';

/**
 * `POST /webhooks/google-health` (google-health-api §4): the endpoint verification handshake,
 * then signed notify-only envelopes, each turned into a targeted sync of the named participant,
 * streams and local days. The provider reads the envelope (`Provider.parseNotifications`); this
 * route keeps the HTTP side: raw body, handshake, Authorization and signature, participants,
 * the ledger, dedup and the queue. Answers 204 having only looked the users up and enqueued
 * work; the data itself is pulled by the fetcher. Duplicates (delivery is at least once) are
 * ignored for as long as Google may redeliver; a notification counts as seen only once its work is
 * durable. Notifications for users fitlamp does not know get 204 too (only 204 stops Google).
 */

/** Google keeps undelivered notifications up to 7 days (§4.6): remember one a day longer. */
const DEDUP_TTL_SECONDS = 8 * 86_400;
function sameSecret(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/**
 * Registers `POST /webhooks/google-health` when the Google Health provider and
 * `GOOGLE_HEALTH_WEBHOOK_SECRET` are configured; without them the route does not exist (404).
 */
export async function registerGoogleHealthWebhooks(app: FastifyInstance, deps: GatewayDeps): Promise<void> {
  const secret = deps.env.GOOGLE_HEALTH_WEBHOOK_SECRET;
  const parseNotifications = deps.providers['google-health']?.parseNotifications;
  if (!secret || !parseNotifications) return;
  const { db, redis, logger } = deps;
  const verifier = createKeysetVerifier({ url: deps.env.GOOGLE_HEALTH_WEBHOOK_KEYSET_URL });
  const notifications = new Counter({
    name: 'fitlamp_webhook_notifications_total',
    help: 'Webhook notifications received, by outcome (accepted, duplicate, unknown_user, ignored_type, bad_signature, malformed)',
    labelNames: ['provider', 'outcome'],
    registers: [deps.registry],
  });
  const count = (outcome: string, n = 1) => notifications.inc({ provider: 'google-health', outcome }, n);

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
        return sendError(reply, 400, 'malformed', 'the body is not JSON');
      }
      const authorization = request.headers.authorization;

      // §4.2: with the exact secret → 201, without (or wrong) → 401.
      if (typeof body === 'object' && body !== null && !Array.isArray(body) && (body as { type?: unknown }).type === 'verification') {
        if (!sameSecret(authorization, secret)) return sendError(reply, 401, 'unauthorized', 'missing or wrong Authorization');
        logger.info({ provider: 'google-health' }, 'webhook endpoint verified');
        return reply.code(201).send({});
      }

      // Notifications: the Authorization header may be missing on events (§4.5, one live report),
      // so the signature is what counts; a wrong Authorization is refused all the same.
      if (authorization !== undefined && !sameSecret(authorization, secret)) {
        count('bad_signature');
        return sendError(reply, 401, 'unauthorized', 'wrong Authorization');
      }
      const header = request.headers['x-healthapi-signature'] ?? request.headers['google-health-api-signature'];
      const signature = Array.isArray(header) ? header[0] : header;
      let valid = false;
      try {
        valid = signature !== undefined && (await verifier.verify(raw, signature));
      } catch (error) {
        logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'webhook keyset unavailable');
        return sendError(reply, 503, 'keyset_unavailable', 'cannot verify signatures right now; retry later');
      }
      if (!valid) {
        count('bad_signature');
        logger.warn({ provider: 'google-health', hasSignature: signature !== undefined }, 'webhook notification with a missing or bad signature refused');
        return sendError(reply, 401, 'bad_signature', 'the signature does not verify against the published keyset');
      }
      const parsed = parseNotifications(body);
      if (!parsed.ok) {
        count('malformed');
        return sendError(reply, 400, 'malformed', parsed.error);
      }
      const list = parsed.notifications;

      const users = [...new Set(list.map((n) => n.providerUserId))];
      const participantOf = await findParticipantsByAccounts(db, 'google-health', users);
      const known = list.filter((n) => participantOf.has(n.providerUserId));
      const unknownUsers = users.filter((u) => !participantOf.has(u));
      if (unknownUsers.length > 0) {
        // 204 all the same: any other answer makes Google redeliver for 7 days (§4.6), and
        // nothing will ever know these users. Said once per user (per dedup period), not per delivery.
        count('unknown_user', list.length - known.length);
        for (const user of unknownUsers) {
          const first = await redis.set(`${deps.env.QUEUE_PREFIX}-webhook-unknown-${user}`, '1', 'EX', DEDUP_TTL_SECONDS, 'NX').catch(() => 'OK');
          if (first === 'OK') logger.warn({ provider: 'google-health', healthUserId: user }, 'webhook notifications for a user no participant is connected with are ignored');
        }
      }
      if (known.length === 0) return reply.code(204).send();

      await recordWebhookVerified(db, 'google-health', list.length);

      // Targeted syncs, merged per participant. A notification counts as seen (its dedup key is
      // set) only once its participant's durable work is done: a failure part-way leaves every
      // notification not yet handled free to come back in Google's redelivery.
      const work = new Map<string, { streams: Set<StreamName>; days: Set<string>; keys: Set<string> }>();
      const zonesOf = new Map<string, ZoneHistory>();
      for (const n of known) {
        const stream = n.stream;
        if (!stream) {
          count('ignored_type');
          continue;
        }
        const key = `${deps.env.QUEUE_PREFIX}-webhook-${n.dedupKey}`;
        if ((await redis.exists(key)) === 1) {
          count('duplicate');
          continue;
        }
        const participantId = participantOf.get(n.providerUserId)!;
        if (!zonesOf.has(participantId)) zonesOf.set(participantId, await findZoneHistory(db, participantId));
        const entry = work.get(participantId) ?? { streams: new Set(), days: new Set(), keys: new Set() };
        entry.streams.add(stream);
        for (const day of n.days(zonesOf.get(participantId)!)) entry.days.add(day);
        entry.keys.add(key);
        work.set(participantId, entry);
      }
      let failed = 0;
      for (const [participantId, entry] of work) {
        try {
          // Durable first: the named days lose their fetch watermark, so the planner fetches them
          // on the participant's next sync even if a job is already waiting (same job id) or Redis
          // loses this one.
          await invalidateLedgerDays(db, participantId, {
            streams: [...entry.streams],
            days: [...entry.days],
            reason: 'Google Health notified a change',
          });
          await enqueue(deps.queues, 'sync', { participantId, reason: 'webhook', streams: [...entry.streams], days: [...entry.days].sort() });
          // Seen only now. Two deliveries racing may both do the work: it is idempotent (same
          // days, same job id); losing it is not.
          // One SET per key: on a Redis Cluster the keys live in different slots (no MULTI across them).
          await Promise.all([...entry.keys].map((key) => redis.set(key, '1', 'EX', DEDUP_TTL_SECONDS)));
          count('accepted', entry.keys.size);
        } catch (error) {
          failed += 1;
          logger.error(
            { participantId, err: { type: error instanceof Error ? error.name : typeof error, message: error instanceof Error ? error.message : String(error) } },
            'webhook notifications not handled; left for redelivery',
          );
        }
      }
      if (failed > 0) return sendError(reply, 503, 'unavailable', 'some notifications could not be handled; retry later');
      logger.info({ provider: 'google-health', notifications: list.length, participants: work.size }, 'webhook notifications accepted');
      return reply.code(204).send();
    });
  });
}
