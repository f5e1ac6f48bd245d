import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '@fitlamp/testing';
import { DEVICE_SYNC_HISTORY, recordDeviceSync } from './connections.ts';

describe('device sync history', () => {
  let t: TestDatabase;
  let connectionId: string;
  beforeAll(async () => {
    t = await createTestDatabase();
    await t.db.insertInto('participants').values({ id: 'D1' }).execute();
    const row = await t.db
      .insertInto('provider_connections')
      .values({ participant_id: 'D1', provider: 'fitbit', status: 'connected' })
      .returning('id')
      .executeTakeFirstOrThrow();
    connectionId = row.id;
  });
  afterAll(async () => {
    await t.drop();
  });

  it('keeps the newest syncs in order, once each, and ignores one older than the last kept', async () => {
    const t0 = Date.parse('2026-11-20T00:00:00Z');
    const times = Array.from({ length: DEVICE_SYNC_HISTORY + 3 }, (_, i) => t0 + i * 3_600_000);
    let kept: number[] = [];
    for (const at of times) {
      kept = await recordDeviceSync(t.db, connectionId, new Date(at));
      // The same sync reported by the next poll is not a new one.
      expect(await recordDeviceSync(t.db, connectionId, new Date(at))).toEqual(kept);
    }
    expect(kept).toEqual(times.slice(-DEVICE_SYNC_HISTORY));
    expect(await recordDeviceSync(t.db, connectionId, new Date(t0))).toEqual(kept);
    const row = await t.db.selectFrom('provider_connections').select(['device_last_sync_at']).where('id', '=', connectionId).executeTakeFirstOrThrow();
    expect(row.device_last_sync_at?.getTime()).toBe(t0);
  });
});
