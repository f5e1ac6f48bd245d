import type { Kysely } from 'kysely';
import { request } from 'undici';
import {
  countLedgerStatuses,
  findConnectedParticipants,
  findCurrentTimeZones,
  findDayTotals,
  findDueAlertNotifications,
  findParticipantsNeedingConsent,
  findParticipantsNotSyncedSince,
  findParticipantsWithBatteryBelow,
  findParticipantsWithParkedDeliveries,
  markAlertNotified,
  postponeAlertNotification,
  reconcileAlerts,
  withAlertsLock,
  type AlertRule,
  type Database,
  type DueAlertNotification,
} from '@fitlamp/db';
import { addDays, localDayAt } from '@fitlamp/provider';
import type { Logger } from '@fitlamp/runtime';
import type { GatewayEnv } from './env.ts';
import { cellKind } from './overview.ts';

/**
 * Coordinator alerts: the rules, evaluated into the `alerts` table, and the optional outgoing
 * webhook each new alert is sent to. One gateway replica at a time does both (an advisory lock).
 */

/** The rules' thresholds and the webhook, from the gateway's configuration. */
export interface AlertConfig {
  noSyncDays: number;
  /** 0: rule off. */
  batteryBelowPercent: number;
  /** 0: rule off. */
  wearBelowHours: number;
  wearLowDays: number;
  wearWindowDays: number;
  reconnectNeeded: boolean;
  deliveriesParked: boolean;
  webhookUrl: string | undefined;
  /** The gateway's external URL: webhooks link to the participant's dashboard page. */
  publicBaseUrl: string;
}

export function alertConfigFromEnv(env: GatewayEnv): AlertConfig {
  return {
    noSyncDays: env.ALERT_NO_SYNC_DAYS,
    batteryBelowPercent: env.ALERT_BATTERY_BELOW_PERCENT,
    wearBelowHours: env.ALERT_WEAR_BELOW_HOURS,
    wearLowDays: env.ALERT_WEAR_LOW_DAYS,
    wearWindowDays: env.ALERT_WEAR_WINDOW_DAYS,
    reconnectNeeded: env.ALERT_RECONNECT_NEEDED,
    deliveriesParked: env.ALERT_DELIVERIES_PARKED,
    webhookUrl: env.ALERT_WEBHOOK_URL,
    publicBaseUrl: env.PUBLIC_BASE_URL,
  };
}

/** How each rule reads to a person (the overview and the webhook). */
export const ALERT_LABELS: Record<AlertRule, string> = {
  no_sync: 'device not synced',
  low_battery: 'battery low',
  reconnect_needed: 'must reconnect or consent again',
  low_wear: 'watch not worn enough',
  deliveries_parked: 'deliveries to mindLAMP parked',
};

/**
 * Participants worn less than `wearBelowHours` on at least `wearLowDays` of their last
 * `wearWindowDays` complete local days. A day is judged only once fitlamp knows it, as the
 * overview's cell says ({@link cellKind}): worn (with its hours) or complete without heart rate
 * (not worn, 0 h). A day not fetched yet, failed, or still arriving is not judged (the no-sync
 * rule covers a device that stopped syncing).
 */
async function findLowWearParticipants(db: Kysely<Database>, config: AlertConfig, now: number): Promise<string[]> {
  const ids = [...new Set((await findConnectedParticipants(db)).map((c) => c.participantId))];
  if (ids.length === 0) return [];
  const zones = await findCurrentTimeZones(db, ids);
  const windows = new Map(
    ids.map((id) => {
      const to = addDays(localDayAt([{ zone: zones.get(id) ?? 'UTC', validFrom: 0 }], now), -1);
      return [id, { from: addDays(to, -(config.wearWindowDays - 1)), to }];
    }),
  );
  const all = [...windows.values()];
  const range = {
    participantIds: ids,
    from: all.reduce((a, w) => (w.from < a ? w.from : a), all[0]!.from),
    to: all.reduce((a, w) => (w.to > a ? w.to : a), all[0]!.to),
  };
  const [totals, ledger] = await Promise.all([findDayTotals(db, range), countLedgerStatuses(db, range)]);
  const wear = new Map(totals.map((t) => [`${t.participantId}/${t.day}`, t.wearMinutes]));
  const counts = new Map(ledger.map((l) => [`${l.participantId}/${l.day}`, l.counts]));
  const threshold = config.wearBelowHours * 60;
  return ids.filter((id) => {
    const { from, to } = windows.get(id)!;
    let low = 0;
    for (let day = from; day <= to; day = addDays(day, 1)) {
      const key = `${id}/${day}`;
      const dayCounts = counts.get(key);
      const wearMinutes = wear.get(key) ?? 0;
      if ((dayCounts?.partial ?? 0) > 0) continue;
      const kind = cellKind({ counts: dayCounts, wearMinutes, future: false });
      if (kind === 'no_data' || (kind === 'worn' && wearMinutes < threshold)) low++;
    }
    return low >= config.wearLowDays;
  });
}

/**
 * Evaluates every rule at `now` and makes the open alerts match: new ones opened (their webhook
 * due when one is configured), cleared ones closed. A rule switched off closes its alerts.
 * Answers how many alerts each rule opened.
 */
export async function evaluateAlerts(db: Kysely<Database>, config: AlertConfig, now: number): Promise<Record<AlertRule, number>> {
  const at = new Date(now);
  const holding: Record<AlertRule, () => Promise<string[]>> = {
    no_sync: () => findParticipantsNotSyncedSince(db, new Date(now - config.noSyncDays * 86_400_000)),
    low_battery: async () => (config.batteryBelowPercent > 0 ? findParticipantsWithBatteryBelow(db, config.batteryBelowPercent) : []),
    reconnect_needed: async () => (config.reconnectNeeded ? findParticipantsNeedingConsent(db) : []),
    low_wear: async () => (config.wearBelowHours > 0 ? findLowWearParticipants(db, config, now) : []),
    deliveries_parked: async () => (config.deliveriesParked ? findParticipantsWithParkedDeliveries(db) : []),
  };
  const opened = {} as Record<AlertRule, number>;
  for (const [rule, find] of Object.entries(holding) as Array<[AlertRule, () => Promise<string[]>]>) {
    opened[rule] = (await reconcileAlerts(db, rule, await find(), { now: at, notify: config.webhookUrl !== undefined })).length;
  }
  return opened;
}

/** The first retry after this long, doubling per attempt up to {@link MAX_BACKOFF_MS}. */
export const FIRST_BACKOFF_MS = 30_000;
const MAX_BACKOFF_MS = 3_600_000;
const WEBHOOK_TIMEOUT_MS = 10_000;

/** When to try again after `attempts` failed attempts (this one included). */
export function webhookBackoff(attempts: number): number {
  return Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** Math.max(0, attempts - 1));
}

/**
 * The webhook's JSON: `text` is what Slack incoming webhooks and Teams connectors both display.
 * It names the participant, the rule, since when, and links to the dashboard: no token, no
 * health value (no battery level, no wear time).
 */
export function alertWebhookBody(alert: DueAlertNotification, publicBaseUrl: string) {
  const url = new URL(`/admin/participants/${encodeURIComponent(alert.participantId)}`, publicBaseUrl).toString();
  const since = alert.openedAt.toISOString();
  return {
    text: `fitlamp alert: participant ${alert.participantId}: ${ALERT_LABELS[alert.rule]} (since ${since}). ${url}`,
    idempotencyKey: alert.idempotencyKey,
    alert: { participantId: alert.participantId, rule: alert.rule, since, url },
  };
}

/**
 * Sends every alert webhook due at `now`, once each: accepted (2xx) marks it notified, anything
 * else puts it off with backoff. Durable: what is due lives in Postgres, so a restart resumes.
 * Answers how many the receiver accepted.
 */
export async function sendDueAlertWebhooks(db: Kysely<Database>, config: AlertConfig, logger: Logger, now: number): Promise<number> {
  if (!config.webhookUrl) return 0;
  const due = await findDueAlertNotifications(db, new Date(now), 100);
  let accepted = 0;
  for (const alert of due) {
    let failure: string | undefined;
    try {
      const res = await request(config.webhookUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': alert.idempotencyKey },
        body: JSON.stringify(alertWebhookBody(alert, config.publicBaseUrl)),
        headersTimeout: WEBHOOK_TIMEOUT_MS,
        bodyTimeout: WEBHOOK_TIMEOUT_MS,
      });
      await res.body.dump();
      if (res.statusCode < 200 || res.statusCode >= 300) failure = `receiver answered ${res.statusCode}`;
    } catch (error) {
      // The URL of a Slack or Teams webhook is itself a secret: log the error's code only.
      failure = `request failed: ${(error as { code?: string }).code ?? (error instanceof Error ? error.name : 'error')}`;
    }
    if (failure === undefined) {
      await markAlertNotified(db, alert.id, new Date(now));
      accepted++;
    } else {
      const retryAt = new Date(now + webhookBackoff(alert.attempts + 1));
      await postponeAlertNotification(db, alert.id, retryAt, failure);
      logger.warn({ alertId: alert.id, attempts: alert.attempts + 1, retryAt: retryAt.toISOString(), reason: failure }, 'alert webhook not accepted; will retry');
    }
  }
  return accepted;
}

/**
 * One round under the alerts lock: evaluate the rules, then send due webhooks. Another replica
 * holding the lock means this round is skipped.
 */
export async function runAlertRound(db: Kysely<Database>, config: AlertConfig, logger: Logger, now: number): Promise<boolean> {
  const run = await withAlertsLock(db, async () => {
    const opened = await evaluateAlerts(db, config, now);
    const sent = await sendDueAlertWebhooks(db, config, logger, now);
    if (Object.values(opened).some((n) => n > 0) || sent > 0) logger.info({ opened, webhooksAccepted: sent }, 'alerts evaluated');
  });
  return run.acquired;
}

/**
 * Runs {@link runAlertRound} every `intervalMs` (the first round at once), never two at a time.
 * `close()` waits for a round in flight.
 */
export function startAlertLoop(options: { db: Kysely<Database>; config: AlertConfig; logger: Logger; intervalMs: number; clockOffsetMs: number }) {
  const { db, config, logger, intervalMs, clockOffsetMs } = options;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> = Promise.resolve();
  let closed = false;
  const round = () => {
    inFlight = runAlertRound(db, config, logger, Date.now() + clockOffsetMs)
      .then(() => undefined)
      .catch((error: unknown) => logger.error({ err: error instanceof Error ? error.message : String(error) }, 'alert round failed'))
      .finally(() => {
        if (!closed) timer = setTimeout(round, intervalMs);
      });
  };
  round();
  return {
    async close() {
      closed = true;
      clearTimeout(timer);
      await inFlight;
    },
  };
}
