import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimPipeline, type SimPipeline } from '../bench/sim-pipeline.ts';

// The efficiency section's webhooks mode (issue 14 item 5) on real Postgres and Redis: a Google
// Health participant on the simulated clock, the simulator notifying the gateway's webhook route
// 5 s after each device sync. Each notification must find its participant and bring a targeted
// sync; before the simulated connection stored the account's healthUserId, every one was answered
// 204 as an unknown user and only polling fetched.

describe('sim pipeline with Google Health webhooks', () => {
  let p: SimPipeline;
  beforeAll(async () => {
    p = await startSimPipeline({
      participants: 1,
      pollSeconds: 900,
      backfillDays: 2,
      refetchDays: 2,
      startAt: '2026-11-20T12:00:00Z',
      seed: 'sim-pipeline-webhooks',
      provider: 'google-health',
      notifyAfterMs: 5_000,
    });
  });
  afterAll(async () => {
    await p?.close();
  });

  it('turns each device sync into a notification, accepted, and a sync of its participant', async () => {
    const [participant] = p.participants;
    expect(participant!.preset).toBe('new-york');
    const row = await p.db.selectFrom('provider_connections').select(['provider', 'provider_user_id']).where('participant_id', '=', participant!.participantId).executeTakeFirstOrThrow();
    expect(row).toEqual({ provider: 'google-health', provider_user_id: p.google!.healthUserId(participant!.userId) });

    await p.tick();
    await p.drain();
    p.polls.length = 0;
    const from = p.now();
    // 40 simulated minutes: a watch syncing every 15 minutes syncs at least twice.
    for (let i = 0; i < 20; i++) await p.step(120_000);

    const deliveries = p.google!.state.webhooks.deliveries.filter((d) => d.createdAt > from);
    expect(deliveries.length).toBeGreaterThan(0);
    expect(deliveries.every((d) => d.state === 'delivered' && d.attempts.at(-1)?.status === 204)).toBe(true);
    const webhookSyncs = p.polls.filter((x) => x.reason === 'webhook');
    expect(webhookSyncs.length).toBeGreaterThanOrEqual(2);
    expect(new Set(webhookSyncs.map((x) => x.participantId))).toEqual(new Set([participant!.participantId]));
  });
});
