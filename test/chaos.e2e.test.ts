import { describe, expect, it } from 'vitest';
import { assessChaos, runChaos, type ChaosReport } from '@fitlamp/harness';

// The short chaos run (the full one is `pnpm chaos`): its own Postgres cluster and redis-server,
// two fetchers and two writers, six participants whose watches sync every minute, and a minute of
// steady state after the backfill, through SIGKILLs, a FLUSHALL, a Redis restart on its AOF,
// terminated Postgres connections, a Postgres restart, ambiguous mindLAMP writes, provider 5xx,
// 429 with Retry-After, 401s and a token storm. It is judged by the full run's own list
// (assessChaos): every fault confirmed fired by the simulators' or servers' counts, then mindLAMP
// holds every minute of the world exactly once, no refresh token was used twice, no service
// exited on its own. The run waits on progress only (waitUntilCaughtUp), never on a fixed short
// deadline.

describe('the chaos run, short', () => {
  it('loses nothing and duplicates nothing through every kind of fault', async () => {
    const lines: string[] = [];
    let report: ChaosReport;
    try {
      report = await runChaos({
        participants: 6,
        backfillDays: 4,
        steadyMs: 60_000,
        kills: 4,
        pgTerminations: 2,
        lampBursts: 6,
        lampBurstSize: 3,
        providerBursts: 1,
        tokenStorms: 1,
        bare429: false,
        simStartAt: '2026-11-04T09:00:00Z',
        seed: 'fitlamp-chaos-short',
        log: (line) => lines.push(line),
      });
    } finally {
      console.log(lines.join('\n'));
    }
    console.log(JSON.stringify(report!, null, 2));

    // What the full run asserts, with this plan's counts: each kind injected and fired.
    const fired = Object.fromEntries(report!.faults.map((f) => [f.kind, f]));
    const expectations: Array<[string, number]> = [
      ['sigkill', 4],
      ['pg-terminate-backend', 2],
      ['redis-flushall', 1],
      ['redis-restart', 1],
      ['postgres-restart', 1],
      ['lamp-store-then-drop', 2],
      ['lamp-late-answer', 2],
      ['lamp-partial-write', 2],
      ['provider-5xx', 1],
      ['provider-429-retry-after', 1],
      ['provider-401', 1],
      ['token-storm', 1],
    ];
    for (const [kind, injected] of expectations) expect(fired[kind]?.injected, `${kind} injected`).toBe(injected);
    // Store-then-drop and late answers hit every armed request; a partial write is counted only
    // when the batch was larger than what the simulator stored.
    for (const kind of ['lamp-store-then-drop', 'lamp-late-answer']) expect(fired[kind]!.fired, kind).toBe(fired[kind]!.armed);
    expect(assessChaos(report!, 12)).toEqual([]);
    expect(report!.events.expected).toBeGreaterThan(0);
    expect(report!.events).toMatchObject({ lost: 0, duplicated: 0, misplaced: 0, repeatsInMindLamp: 0 });
  }, 1_800_000);
});
