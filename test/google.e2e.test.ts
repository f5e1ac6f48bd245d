import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack, type StackParticipant } from '@fitlamp/harness';
import { addDays, localDayAt } from '@fitlamp/provider';
import { findUser, syncUser, viewDay } from '@fitlamp/simulators';
import { answerProviderConsent, completeConsent, minuteValues, startConsent, waitFor } from '@fitlamp/testing';

// The four services as processes with the Google Health and Fitbit simulators sharing one world:
// 10 participants on Google Health (webhooks on, duplicates injected) and 5 on the legacy Fitbit
// API, which shuts down mid-run (410 Gone). The legacy five become needs_reconsent, get Google
// links in one admin call, consent through Google, and their data continues. At the end every
// expected event is in mindLAMP exactly once at the right UTC instant, and every duplicate
// webhook was ignored.

const SIM_START = '2026-11-24T15:00:00Z';
const DAYS = 5;
const presets = ['new-york', 'sydney', 'kolkata'];
const googleParticipants: StackParticipant[] = Array.from({ length: 10 }, (_, i) => ({
  id: `G${String(i + 1).padStart(10, '0')}`,
  user: { id: `GH${String(i + 1).padStart(4, '0')}`, preset: presets[i % presets.length]!, autoSyncMinutes: 0 },
  provider: 'google-health',
}));
const legacyParticipants: StackParticipant[] = Array.from({ length: 5 }, (_, i) => ({
  id: `L${String(i + 1).padStart(10, '0')}`,
  user: { id: `FB${String(i + 1).padStart(4, '0')}`, preset: presets[i % presets.length]!, autoSyncMinutes: 0 },
  provider: 'fitbit',
}));
const participants = [...googleParticipants, ...legacyParticipants];

describe('Google Health participants and a legacy shutdown with re-consent, end to end', () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack({
      participants,
      backfillDays: DAYS,
      simStartAt: SIM_START,
      syncIntervalSeconds: 8,
      schedulerTickSeconds: 1,
      sweepSeconds: 5,
      env: { PROFILE_CHECK_SECONDS: '3600', WEBHOOK_POLL_MULTIPLIER: '2' },
      seed: 'fitlamp-google-e2e',
    });
  }, 300_000);

  afterAll(async () => {
    await stack?.stop();
  });

  it('delivers every event exactly once across the switch from the legacy API to Google Health', async () => {
    const { fitbit, lamp } = stack;
    const google = stack.google!;
    const admin = { authorization: `Bearer ${stack.adminToken}` };
    const syncAll = (at: number) => {
      for (const p of participants) syncUser(fitbit.world, findUser(fitbit.world, p.user.id)!, at);
    };
    syncAll(fitbit.clock.now() - 120_000);
    // Every Google delivery of the first five is sent twice (after its 204): at-least-once delivery.
    await fetch(`${stack.googleUrl}/_control/webhooks/duplicates`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ count: 5 }),
    });

    for (const p of participants) await stack.connect(p);
    await stack.waitUntilCaughtUp();

    // The legacy API shuts down; the watches sync again (Google notifies its users' changes).
    fitbit.setGone(true);
    syncAll(fitbit.clock.now() - 30_000);
    await google.flushWebhooks();

    // The legacy five are marked needs_reconsent by their next sync, never dropped.
    await waitFor(
      'the legacy participants to be marked needs_reconsent',
      async () => {
        const rows = await stack.db.selectFrom('provider_connections').select('participant_id').where('status', '=', 'needs_reconsent').execute();
        return rows.length === legacyParticipants.length;
      },
      120_000,
    );
    const listed = (await (await fetch(`${stack.gatewayUrl}/admin/participants?migration=waiting`, { headers: admin })).json()) as {
      participants: Array<{ participantId: string }>;
    };
    expect(listed.participants.map((p) => p.participantId).sort()).toEqual(legacyParticipants.map((p) => p.id));

    // One admin call: a Google Health link for everyone waiting; each re-consents through Google.
    const bulk = await fetch(`${stack.gatewayUrl}/admin/enrollments`, {
      method: 'POST',
      headers: { ...admin, 'content-type': 'application/json' },
      body: JSON.stringify({ provider: 'google-health', status: 'needs_reconsent' }),
    });
    expect(bulk.status).toBe(201);
    const { links } = (await bulk.json()) as { links: Array<{ participantId: string; url: string }> };
    expect(links.map((l) => l.participantId).sort()).toEqual(legacyParticipants.map((p) => p.id));
    for (const link of links) {
      const user = legacyParticipants.find((p) => p.id === link.participantId)!.user.id;
      const page = await completeConsent(link.url, { decision: 'allow', user });
      expect(page.status).toBe(200);
    }
    const migrated = (await (await fetch(`${stack.gatewayUrl}/admin/participants?migration=migrated`, { headers: admin })).json()) as {
      participants: Array<{ participantId: string; provider: string; status: string }>;
    };
    expect(new Set(migrated.participants.map((p) => p.participantId))).toEqual(new Set(legacyParticipants.map((p) => p.id)));
    const legacyRows = await stack.db.selectFrom('provider_connections').selectAll().where('provider', '=', 'fitbit').execute();
    for (const row of legacyRows) {
      expect(row.status).toBe('disconnected');
      expect([row.access_token_enc, row.refresh_token_enc]).toEqual([null, null]);
    }

    // Another sync of every watch, notified through webhooks, then everything caught up.
    syncAll(fitbit.clock.now() - 10_000);
    await google.flushWebhooks();
    const final = await stack.waitUntilCaughtUp();
    expect(final.connected).toBe(participants.length);
    await google.flushWebhooks();

    // Nothing twice, across both APIs: each datum (participant, sensor, instant, sleep stage, minute
    // or day) is stored once, whatever its source; in particular no minute or day arrives from both.
    const repeats = lamp.findRepeats();
    expect(repeats.groups.filter((g) => new Set(g.sources).size > 1), 'minutes or days sent from both APIs').toEqual([]);
    expect(repeats.groups).toEqual([]);

    // Every settled day (48 h past its end) of steps and heart rate is in mindLAMP minute by
    // minute at the right UTC instant; heart rate within 1 bpm (Google's samples vs Fitbit's
    // minute averages, docs/mapping.md).
    const now = fitbit.clock.now();
    let checkedDays = 0;
    for (const p of participants) {
      const user = findUser(fitbit.world, p.user.id)!;
      // Every stored minute as an [instant, value] pair, never collapsed: a copy is an extra pair; a
      // correction is added to the minute it corrects (minuteValues).
      const steps = minuteValues(lamp, p.id, 'lamp.steps');
      const heart = minuteValues(lamp, p.id, 'lamp.heart_rate');
      // The participant's own today (Sydney is a day ahead of UTC at 15:00Z).
      const today = localDayAt(user.zoneHistory.map((z) => ({ zone: z.zone, validFrom: z.from })), now);
      for (let i = 3; i < DAYS; i++) {
        const day = addDays(today, -i);
        const truth = viewDay(fitbit.world, user, day, now).day;
        if (!truth) continue;
        const expectedSteps = truth.steps.flatMap((v, m) => (v > 0 ? [[truth.start + m * 60_000, v] as [number, number]] : []));
        const inDay = (pairs: [number, number][]) => pairs.filter(([t]) => t >= truth.start && t < truth.end).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
        expect(inDay(steps), `${p.id} steps ${day}`).toEqual(expectedSteps);
        const dayHeart = inDay(heart);
        const expectedHeart = truth.heartRate.flatMap((v, m) => (v === null ? [] : [[truth.start + m * 60_000, v] as const]));
        expect(dayHeart.map(([t]) => t), `${p.id} heart-rate minutes ${day}`).toEqual(expectedHeart.map(([t]) => t));
        expectedHeart.forEach(([t, v], i) => expect(Math.abs(dayHeart[i]![1] - v), `${p.id} heart rate at ${new Date(t).toISOString()}`).toBeLessThanOrEqual(1));
        checkedDays++;
      }
    }
    expect(checkedDays).toBeGreaterThanOrEqual(participants.length * 2 - 2);

    // The legacy participants' data came from both APIs, without a day counted twice.
    for (const p of legacyParticipants) {
      const sources = new Set(lamp.listEvents({ participantId: p.id }).map((e) => (e.event.data as { source?: string }).source));
      expect(sources.has('com.fitbit.webapi'), `${p.id} has legacy data`).toBe(true);
      expect(sources.has('com.google.health'), `${p.id} has Google Health data`).toBe(true);
    }

    // Every duplicate webhook delivery was answered 204 and ignored.
    const deliveries = ((await (await fetch(`${stack.googleUrl}/_control/webhooks/deliveries`)).json()) as {
      deliveries: Array<{ duplicateOf: number | null; state: string; attempts: Array<{ status?: number }> }>;
    }).deliveries;
    const duplicates = deliveries.filter((d) => d.duplicateOf !== null);
    expect(duplicates.length).toBe(5);
    expect(duplicates.every((d) => d.state === 'delivered')).toBe(true);
    expect(deliveries.filter((d) => d.duplicateOf === null && d.state === 'delivered').length).toBeGreaterThan(5);
    const metrics = await (await fetch(`${stack.gatewayOpsUrl}/metrics`)).text();
    const ignored = Number(/fitlamp_webhook_notifications_total\{provider="google-health",outcome="duplicate"\} (\d+)/.exec(metrics)?.[1] ?? 0);
    expect(ignored).toBe(duplicates.length);
  }, 900_000);
});
