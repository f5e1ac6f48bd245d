import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertCoordinator, recordDeviceSync } from '@fitlamp/db';
import { createLogger } from '@fitlamp/runtime';
import { seedBatch, seedLedger, seedParticipant, seedWear } from '@fitlamp/testing';
import { buildTestGateway, type GatewayUnderTest } from '../test/gateway.ts';
import { hashCoordinatorToken } from './admin-auth.ts';
import { alertConfigFromEnv, evaluateAlerts, FIRST_BACKOFF_MS, runAlertRound, sendDueAlertWebhooks, type AlertConfig } from './alerts.ts';

// The alert rules evaluated on real Postgres, the overview and its Acknowledge form through
// app.inject, and the outgoing webhook against a real local HTTP receiver that fails at first.

const NOW = Date.parse('2026-03-20T12:00:00Z');
const DAY = 86_400_000;
const days = (n: number) => Array.from({ length: n }, (_, i) => new Date(NOW - (i + 1) * DAY).toISOString().slice(0, 10));

describe('alerts', () => {
  let gw: GatewayUnderTest;
  let config: AlertConfig;
  const logLines: string[] = [];
  const logger = createLogger({ name: 'alerts-test', level: 'debug', destination: { write: (line: string) => void logLines.push(line) } });
  const openAlerts = async () =>
    (await gw.db.selectFrom('alerts').select(['id', 'participant_id', 'rule']).where('closed_at', 'is', null).orderBy('participant_id').orderBy('rule').execute()).map(
      (a) => `${a.participant_id}:${a.rule}`,
    );
  const healthy = { syncedAt: new Date(NOW - 3_600_000), battery: 80 };

  beforeAll(async () => {
    gw = await buildTestGateway({ env: { ALERT_NO_SYNC_DAYS: '3', ALERT_BATTERY_BELOW_PERCENT: '15', ALERT_WEAR_BELOW_HOURS: '8', ALERT_WEAR_LOW_DAYS: '3', ALERT_WEAR_WINDOW_DAYS: '7' } });
    config = alertConfigFromEnv(gw.env);
    await seedParticipant(gw.db, 'A-nosync', { status: 'connected', device: { syncedAt: new Date(NOW - 5 * DAY), battery: 80 } });
    await seedParticipant(gw.db, 'B-battery', { status: 'connected', device: { syncedAt: new Date(NOW - 3_600_000), battery: 9 } });
    await seedParticipant(gw.db, 'C-reconnect', { status: 'reconnect_needed', statusReason: 'invalid_grant' });
    await seedParticipant(gw.db, 'D-parked', { status: 'connected', device: healthy, studyId: 'S2' });
    await seedBatch(gw.db, 'D-parked', { status: 'parked', count: 2, day: '2026-03-18' });
    await seedParticipant(gw.db, 'E-lowwear', { status: 'connected', device: healthy });
    await seedParticipant(gw.db, 'F-fine', { status: 'connected', device: healthy });
    await seedParticipant(gw.db, 'G-arriving', { status: 'connected', device: healthy });
    // E: 2 h on two of the last seven days and not worn on a third (complete, no heart rate),
    // 10 h on the others; F: 10 h every day. A day still arriving, or not fetched yet, is not
    // judged: G wore it 1 h on days that are partial, and A, B, D have days nobody fetched.
    for (const [i, day] of days(7).entries()) {
      const eWear = i === 0 || i === 2 ? 120 : i === 4 ? 0 : 600;
      if (eWear > 0) await seedWear(gw.db, 'E-lowwear', day, eWear);
      await seedLedger(gw.db, 'E-lowwear', [{ stream: 'heart_rate', day, status: eWear > 0 ? 'settled' : 'empty' }]);
      await seedWear(gw.db, 'F-fine', day, 600);
      await seedLedger(gw.db, 'F-fine', [{ stream: 'heart_rate', day, status: 'settled' }]);
      await seedWear(gw.db, 'G-arriving', day, 60);
      await seedLedger(gw.db, 'G-arriving', [{ stream: 'heart_rate', day, status: 'partial' }]);
    }
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('opens one alert per participant and rule whose condition holds, and no second one on the next round', async () => {
    await evaluateAlerts(gw.db, config, NOW);
    const expected = ['A-nosync:no_sync', 'B-battery:low_battery', 'C-reconnect:reconnect_needed', 'D-parked:deliveries_parked', 'E-lowwear:low_wear'];
    expect(await openAlerts()).toEqual(expected);
    const opened = await evaluateAlerts(gw.db, config, NOW + 60_000);
    expect(Object.values(opened).every((n) => n === 0)).toBe(true);
    expect(await openAlerts()).toEqual(expected);
    const ids = (await gw.db.selectFrom('alerts').select('id').orderBy('id').execute()).map((a) => Number(a.id));
    // Five rows, and the second round spent no ids on them.
    expect(ids).toHaveLength(5);
    expect(ids.at(-1)! - ids[0]!).toBe(4);
    // No webhook is configured: nothing is due.
    expect(await gw.db.selectFrom('alerts').select('id').where('notify_due_at', 'is not', null).execute()).toEqual([]);
  });

  it('closes an alert when its condition clears, and opens a new one when it returns', async () => {
    const a = await gw.db.selectFrom('provider_connections').select('id').where('participant_id', '=', 'A-nosync').executeTakeFirstOrThrow();
    await recordDeviceSync(gw.db, a.id, new Date(NOW), 80);
    await evaluateAlerts(gw.db, config, NOW + 120_000);
    expect(await openAlerts()).not.toContain('A-nosync:no_sync');
    const closed = await gw.db.selectFrom('alerts').select(['closed_at']).where('participant_id', '=', 'A-nosync').executeTakeFirstOrThrow();
    expect(closed.closed_at).toEqual(new Date(NOW + 120_000));
    // Stricter thresholds from configuration: battery below 90 % catches everyone connected.
    await evaluateAlerts(gw.db, { ...config, batteryBelowPercent: 90, wearBelowHours: 0 }, NOW + 180_000);
    const open = await openAlerts();
    expect(open.filter((a) => a.endsWith(':low_battery'))).toEqual(['A-nosync:low_battery', 'B-battery:low_battery', 'D-parked:low_battery', 'E-lowwear:low_battery', 'F-fine:low_battery', 'G-arriving:low_battery']);
    expect(open.filter((a) => a.endsWith(':low_wear'))).toEqual([]);
    await evaluateAlerts(gw.db, config, NOW + 240_000);
    expect(await openAlerts()).toEqual(['B-battery:low_battery', 'C-reconnect:reconnect_needed', 'D-parked:deliveries_parked', 'E-lowwear:low_wear']);
  });

  it('shows open alerts on the overview, only their studies to a coordinator, and acknowledging removes one from the list', async () => {
    const page = async (headers: Record<string, string>) => (await gw.inject('/admin', { headers: { ...headers, accept: 'text/html' } })).text();
    const overview = await page(gw.admin);
    expect(overview).toContain('Open alerts (4)');
    const row = /<tr data-alert="(\d+)" data-participant="E-lowwear" data-rule="low_wear">([\s\S]*?)<\/tr>/.exec(overview);
    expect(row?.[2]).toContain('watch not worn enough');
    const alertId = row![1]!;
    expect(row?.[2]).toContain(`action="/admin/alerts/${alertId}/acknowledge"`);

    await insertCoordinator(gw.db, { name: 'sam', tokenHash: hashCoordinatorToken('sam-token-0123456789abcdef'), studyIds: ['S2'] });
    const sam = { authorization: `Basic ${Buffer.from('sam:sam-token-0123456789abcdef').toString('base64')}` };
    const scoped = await page(sam);
    expect(scoped).toContain('Open alerts (1)');
    expect(scoped).toContain('data-participant="D-parked" data-rule="deliveries_parked"');
    expect(scoped).not.toContain('E-lowwear');
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    // A coordinator of another study cannot acknowledge it: it does not exist for them.
    expect((await gw.inject(`/admin/alerts/${alertId}/acknowledge`, { method: 'POST', headers: { ...sam, ...form }, body: '' })).status).toBe(404);
    // A form another site makes the browser send is refused, and changes nothing.
    const crossSite = await gw.inject(`/admin/alerts/${alertId}/acknowledge`, { method: 'POST', headers: { ...gw.admin, ...form, 'sec-fetch-site': 'cross-site' }, body: '' });
    expect(crossSite.status).toBe(403);
    expect(await gw.inject(`/admin/alerts/${alertId}/acknowledge`, { method: 'POST', headers: { ...gw.admin, origin: 'https://evil.example' } }).then((r) => r.status)).toBe(403);
    expect(await page(gw.admin)).toContain(`data-alert="${alertId}"`);
    expect((await gw.inject('/admin/alerts/x1/acknowledge', { method: 'POST', headers: gw.admin })).status).toBe(400);
    expect((await gw.inject(`/admin/alerts/${alertId}/acknowledge`, { method: 'POST', headers: { ...form }, body: '' })).status).toBe(401);

    const ack = await gw.inject(`/admin/alerts/${alertId}/acknowledge`, { method: 'POST', headers: { ...gw.admin, ...form, origin: gw.base, 'sec-fetch-site': 'same-origin' }, body: '' });
    expect(ack.status).toBe(303);
    expect(ack.headers.get('location')).toBe(`/admin?acknowledged=${alertId}`);
    const after = await page(gw.admin);
    expect(after).toContain('Open alerts (3)');
    expect(after).not.toContain(`data-alert="${alertId}"`);
    const stored = await gw.db.selectFrom('alerts').select(['acknowledged_by', 'closed_at']).where('id', '=', alertId).executeTakeFirstOrThrow();
    expect(stored).toEqual({ acknowledged_by: 'admin', closed_at: null });
    // Still open (the condition holds): the next round does not raise it again.
    await evaluateAlerts(gw.db, config, NOW + 300_000);
    expect(await page(gw.admin)).not.toContain('data-participant="E-lowwear" data-rule="low_wear"');
    const again = await gw.inject(`/admin/alerts/${alertId}/acknowledge`, { method: 'POST', headers: gw.admin });
    expect(await again.json()).toEqual({ alertId, acknowledged: true, already: true });
  });

  describe('outgoing webhook', () => {
    let receiver: Server;
    let url: string;
    const received: Array<{ headers: IncomingMessage['headers']; body: string }> = [];
    let failFirst = 2;

    beforeAll(async () => {
      receiver = createServer((req, res) => {
        let body = '';
        req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
        req.on('end', () => {
          received.push({ headers: req.headers, body });
          if (failFirst > 0) {
            failFirst--;
            res.writeHead(503).end('busy');
          } else res.writeHead(200).end('ok');
        });
      });
      await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks/T000/B000/s3cr3t`;
    });
    afterAll(async () => {
      await new Promise<void>((resolve) => receiver.close(() => resolve()));
    });

    it('posts each new alert once accepted, retrying with backoff under one idempotency key, with no token or health value', async () => {
      const withHook = { ...config, webhookUrl: url, batteryBelowPercent: 50 };
      const t0 = NOW + 400_000;
      // One new alert: F's battery (80 %) is fine, B's (9 %) alert exists already; raise A's.
      const a = await gw.db.selectFrom('provider_connections').select('id').where('participant_id', '=', 'A-nosync').executeTakeFirstOrThrow();
      await recordDeviceSync(gw.db, a.id, new Date(NOW), 42);
      expect(await runAlertRound(gw.db, withHook, logger, t0)).toBe(true);
      expect(received).toHaveLength(1);
      // Not due yet: the next round sends nothing.
      await sendDueAlertWebhooks(gw.db, withHook, logger, t0 + FIRST_BACKOFF_MS - 1000);
      expect(received).toHaveLength(1);
      await sendDueAlertWebhooks(gw.db, withHook, logger, t0 + FIRST_BACKOFF_MS);
      expect(received).toHaveLength(2);
      // The second retry waits twice as long.
      await sendDueAlertWebhooks(gw.db, withHook, logger, t0 + 2 * FIRST_BACKOFF_MS);
      expect(received).toHaveLength(2);
      // A restart in between: the outbox is in Postgres, a new round picks it up.
      expect(await sendDueAlertWebhooks(gw.db, { ...alertConfigFromEnv(gw.env), webhookUrl: url }, logger, t0 + 3 * FIRST_BACKOFF_MS)).toBe(1);
      expect(received).toHaveLength(3);
      await sendDueAlertWebhooks(gw.db, withHook, logger, t0 + 100 * FIRST_BACKOFF_MS);
      await runAlertRound(gw.db, withHook, logger, t0 + 100 * FIRST_BACKOFF_MS);
      expect(received).toHaveLength(3);

      const row = await gw.db
        .selectFrom('alerts')
        .select(['idempotency_key', 'notified_at', 'notify_attempts', 'opened_at'])
        .where('participant_id', '=', 'A-nosync')
        .where('rule', '=', 'low_battery')
        .where('closed_at', 'is', null)
        .executeTakeFirstOrThrow();
      expect(row.notify_attempts).toBe(3);
      expect(row.notified_at).toEqual(new Date(t0 + 3 * FIRST_BACKOFF_MS));
      for (const r of received) {
        expect(r.headers['idempotency-key']).toBe(row.idempotency_key);
        const body = JSON.parse(r.body) as { text: string; idempotencyKey: string; alert: Record<string, string> };
        expect(body.idempotencyKey).toBe(row.idempotency_key);
        expect(body.alert).toEqual({
          participantId: 'A-nosync',
          rule: 'low_battery',
          since: new Date(t0).toISOString(),
          url: `${gw.env.PUBLIC_BASE_URL}/admin/participants/A-nosync`,
        });
        // Participant, rule, since and a link: no health value (no battery level, no wear time).
        expect(Object.keys(body)).toEqual(['text', 'idempotencyKey', 'alert']);
        expect(body.text).toBe(`fitlamp alert: participant A-nosync: battery low (since ${new Date(t0).toISOString()}). ${body.alert.url}`);
        for (const secret of [gw.env.ADMIN_TOKEN, gw.env.ENROLLMENT_SECRET, gw.env.TOKEN_ENCRYPTION_KEY, 'seeded-not-a-token', 's3cr3t']) expect(r.body).not.toContain(secret);
      }
      // Each refusal was logged with its reason, never with the webhook URL (a secret at Slack and Teams).
      const warnings = logLines.filter((l) => l.includes('alert webhook not accepted'));
      expect(warnings).toHaveLength(2);
      expect(warnings[0]).toContain('receiver answered 503');
      expect(logLines.join('\n')).not.toContain('s3cr3t');
    });

    it('an unreachable receiver is retried later, and the log names the error, not the URL', async () => {
      const closed = createServer();
      await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
      const deadUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/hooks/T1/B1/d34dh00k`;
      await new Promise<void>((resolve) => closed.close(() => resolve()));
      const t1 = NOW + 10 * DAY;
      const f = await gw.db.selectFrom('provider_connections').select('id').where('participant_id', '=', 'F-fine').executeTakeFirstOrThrow();
      await recordDeviceSync(gw.db, f.id, new Date(t1), 5);
      logLines.length = 0;
      await runAlertRound(gw.db, { ...config, webhookUrl: deadUrl, noSyncDays: 30 }, logger, t1);
      const row = await gw.db
        .selectFrom('alerts')
        .select(['notify_attempts', 'notify_due_at', 'notified_at', 'notify_last_error'])
        .where('participant_id', '=', 'F-fine')
        .where('rule', '=', 'low_battery')
        .where('closed_at', 'is', null)
        .executeTakeFirstOrThrow();
      expect(row).toEqual({ notify_attempts: 1, notify_due_at: new Date(t1 + FIRST_BACKOFF_MS), notified_at: null, notify_last_error: 'request failed: ECONNREFUSED' });
      expect(logLines.join('\n')).toContain('ECONNREFUSED');
      expect(logLines.join('\n')).not.toContain('d34dh00k');
    });
  });
});
