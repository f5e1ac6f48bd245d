import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '@fitlamp/testing';
import { findDueParticipants, findScheduledStreams, postponeSync, scheduleNextSync, scheduleStreams } from './sync-cursors.ts';

describe('the schedule (sync cursors)', () => {
  let t: TestDatabase;
  const now = new Date('2026-11-20T12:00:00Z');
  beforeAll(async () => {
    t = await createTestDatabase();
    await t.db.insertInto('participants').values([{ id: 'SCHEDULED' }, { id: 'BARE' }, { id: 'OFF' }]).execute();
    await t.db
      .insertInto('provider_connections')
      .values([
        { participant_id: 'SCHEDULED', provider: 'fitbit', status: 'connected' },
        { participant_id: 'BARE', provider: 'fitbit', status: 'connected' },
        { participant_id: 'OFF', provider: 'fitbit', status: 'reconnect_needed' },
      ])
      .execute();
  });
  afterAll(async () => {
    await t.drop();
  });

  it('finds connected participants with a due cursor, or with none, and nothing else', async () => {
    await scheduleStreams(t.db, 'SCHEDULED', ['steps', 'sleep']);
    await scheduleStreams(t.db, 'OFF', ['steps']);
    expect(await findDueParticipants(t.db, now)).toEqual(['BARE', 'SCHEDULED']);

    // After a sync, SCHEDULED waits for its next due time on the caller's clock.
    const next = new Date(now.getTime() + 900_000);
    await scheduleNextSync(t.db, 'SCHEDULED', { streams: ['steps', 'sleep'], at: now, nextDueAt: next, success: true });
    expect(await findDueParticipants(t.db, now)).toEqual(['BARE']);
    expect(await findDueParticipants(t.db, next)).toEqual(['BARE', 'SCHEDULED']);
    // Finding BARE due wrote nothing: no placeholder cursor.
    expect(await findScheduledStreams(t.db, 'BARE')).toEqual([]);
  });

  it('postpones a failed sync, giving a participant without cursors some so it is not due at every tick', async () => {
    const until = new Date(now.getTime() + 300_000);
    await postponeSync(t.db, 'BARE', { streams: ['steps', 'device'], until, error: 'boom' });
    expect(await findScheduledStreams(t.db, 'BARE')).toEqual(['device', 'steps']);
    expect(await findDueParticipants(t.db, now)).not.toContain('BARE');
    expect(await findDueParticipants(t.db, until)).toContain('BARE');

    // With cursors, every one of them is postponed and none is added.
    await scheduleStreams(t.db, 'SCHEDULED', ['steps', 'sleep']);
    await postponeSync(t.db, 'SCHEDULED', { streams: ['steps', 'device'], until, error: 'boom again' });
    const rows = await t.db.selectFrom('sync_cursors').select(['stream', 'next_due_at', 'last_error']).where('participant_id', '=', 'SCHEDULED').orderBy('stream').execute();
    expect(rows).toEqual([
      { stream: 'sleep', next_due_at: until, last_error: 'boom again' },
      { stream: 'steps', next_due_at: until, last_error: 'boom again' },
    ]);
  });
});
