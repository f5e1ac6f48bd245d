import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '@fitlamp/testing';
import { createDb } from './db.ts';
import { withSchedulerLock } from './locks.ts';

describe('scheduler lock', () => {
  let t: TestDatabase;
  // A second pool: another replica's sessions.
  let other: ReturnType<typeof createDb>;
  beforeAll(async () => {
    t = await createTestDatabase();
    other = createDb(t.url, { max: 2 });
  });
  afterAll(async () => {
    await other.destroy();
    await t.drop();
  });

  it('runs the holder only: another replica skips without waiting while it is held, and gets it once released', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let entered!: () => void;
    const inside = new Promise<void>((resolve) => (entered = resolve));
    const holder = withSchedulerLock(t.db, async () => {
      entered();
      await held;
      return 'holder';
    });
    await inside;

    let ran = false;
    expect(await withSchedulerLock(other, async () => (ran = true))).toEqual({ acquired: false });
    expect(ran).toBe(false);

    release();
    expect(await holder).toEqual({ acquired: true, value: 'holder' });
    expect(await withSchedulerLock(other, async () => 'next')).toEqual({ acquired: true, value: 'next' });
  });

  it('is released when the holder throws', async () => {
    await expect(withSchedulerLock(t.db, async () => Promise.reject(new Error('tick failed')))).rejects.toThrow('tick failed');
    expect(await withSchedulerLock(other, async () => 'after')).toEqual({ acquired: true, value: 'after' });
  });
});
