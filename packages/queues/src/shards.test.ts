import keySlot from 'cluster-key-slot';
import { describe, expect, it } from 'vitest';
import { CLUSTER_SLOTS, parseConsumedShards, shardLayout, shardOf, shardQueueName } from './shards.ts';

describe('queue shards', () => {
  it('keep the historical names with one shard on a single Redis', () => {
    const layout = shardLayout();
    expect(layout).toEqual({ shards: 1, tagged: false });
    expect(shardQueueName('sync', 0, layout)).toBe('sync');
    expect(shardQueueName('deliver', 0, layout)).toBe('deliver');
  });

  it('give each shard its own hash tag, in its own share of the slot space', () => {
    const layout = shardLayout({ shards: 6 });
    const names = Array.from({ length: 6 }, (_, s) => shardQueueName('sync', s, layout));
    expect(new Set(names).size).toBe(6);
    for (const [shard, name] of names.entries()) {
      expect(name).toMatch(new RegExp(`^sync-${shard}\\{s${shard}\\.\\d+\\}$`));
      expect(name).not.toContain(':');
      // Every BullMQ key of the queue (`<prefix>:<name>:<suffix>`) hashes to the tag's slot.
      const slot = keySlot(`fitlamp:${name}:wait`);
      expect(keySlot(`fitlamp:${name}:meta`)).toBe(slot);
      expect(slot).toBeGreaterThanOrEqual(Math.floor((shard * CLUSTER_SLOTS) / 6));
      expect(slot).toBeLessThan(Math.floor(((shard + 1) * CLUSTER_SLOTS) / 6));
    }
    // On a cluster even one shard is tagged, so its keys share a slot.
    expect(shardQueueName('sync', 0, shardLayout({ cluster: true }))).toMatch(/^sync-0\{s0\.\d+\}$/);
    expect(() => shardQueueName('sync', 6, layout)).toThrow(/outside/);
    expect(() => shardLayout({ shards: 0 })).toThrow();
    expect(() => shardLayout({ shards: 1.5 })).toThrow();
  });

  it('send a participant to the same shard every time, and spread participants over all shards', () => {
    expect(shardOf('U42', 1)).toBe(0);
    expect(shardOf('U42', 8)).toBe(shardOf('U42', 8));
    // CRC-32 of "U42" is fixed; a change of hash would strand queued jobs, so pin it.
    expect(shardOf('U42', 8)).toBe(0xe6cb973e % 8);
    const counts = new Array(4).fill(0) as number[];
    for (let i = 0; i < 4000; i += 1) counts[shardOf(`P${i}`, 4)]! += 1;
    for (const count of counts) expect(count).toBeGreaterThan(800);
  });

  it('parse the consumed shards, refusing what does not exist', () => {
    expect(parseConsumedShards(undefined, 3)).toEqual([0, 1, 2]);
    expect(parseConsumedShards('', 3)).toEqual([0, 1, 2]);
    expect(parseConsumedShards('0,2', 3)).toEqual([0, 2]);
    expect(parseConsumedShards('2, 0-1 ,1', 4)).toEqual([0, 1, 2]);
    expect(() => parseConsumedShards('3', 3)).toThrow(/QUEUE_SHARDS is 3/);
    expect(() => parseConsumedShards('2-1', 3)).toThrow(/backwards/);
    expect(() => parseConsumedShards('a', 3)).toThrow(/not a shard/);
  });
});
