import { crc32 } from 'node:zlib';
import keySlot from 'cluster-key-slot';

/**
 * Queue sharding. One BullMQ queue keeps all its keys in one Redis Cluster hash slot (its Lua
 * scripts touch many keys at once), so one queue lives on one node. To spread the work over a
 * cluster, each queue kind is split into `QUEUE_SHARDS` queues, each named with its own hash tag;
 * a participant's jobs always go to the same shard.
 *
 * With one shard on a single Redis (the default) the names are the historical `sync` and
 * `deliver`, so existing deployments keep their queues.
 */

/** Redis Cluster's slot count (fixed by the protocol). */
export const CLUSTER_SLOTS = 16_384;
/** Enough for any cluster fitlamp could use; every shard costs one queue per kind. */
export const MAX_QUEUE_SHARDS = 1024;

export interface ShardLayout {
  /** Queues per kind. */
  shards: number;
  /** Name queues with hash tags (needed on a Redis Cluster; always so with more than one shard). */
  tagged: boolean;
}

export function shardLayout(options: { shards?: number; cluster?: boolean } = {}): ShardLayout {
  const shards = options.shards ?? 1;
  if (!Number.isInteger(shards) || shards < 1 || shards > MAX_QUEUE_SHARDS) {
    throw new Error(`queue shards must be a whole number from 1 to ${MAX_QUEUE_SHARDS}, got ${shards}`);
  }
  return { shards, tagged: shards > 1 || options.cluster === true };
}

const tagCache = new Map<string, string>();

/**
 * The hash tag of shard `shard` of `shards`: the first `s<shard>.<k>` whose slot falls in the
 * shard's equal share of the slot space. A cluster created with evenly split slots (what
 * `redis-cli --cluster create` does) then holds an equal number of shards on each master whenever
 * the shard count is a multiple of the master count; a plain hash would leave that to chance.
 * Deterministic, so every replica and version computes the same names.
 */
export function shardHashTag(shard: number, shards: number): string {
  const cacheKey = `${shard}/${shards}`;
  const cached = tagCache.get(cacheKey);
  if (cached) return cached;
  const low = Math.floor((shard * CLUSTER_SLOTS) / shards);
  const high = Math.floor(((shard + 1) * CLUSTER_SLOTS) / shards);
  for (let k = 0; ; k += 1) {
    const tag = `s${shard}.${k}`;
    const slot = keySlot(tag);
    if (slot >= low && slot < high) {
      tagCache.set(cacheKey, tag);
      return tag;
    }
  }
}

/** BullMQ queue name of one shard of a kind: `sync` untagged, else e.g. `sync-2{s2.17}`. */
export function shardQueueName(kind: string, shard: number, layout: ShardLayout): string {
  if (shard < 0 || shard >= layout.shards) throw new Error(`shard ${shard} is outside 0..${layout.shards - 1}`);
  if (!layout.tagged) return kind;
  return `${kind}-${shard}{${shardHashTag(shard, layout.shards)}}`;
}

/** The shard of a participant: a stable hash (CRC-32 of the UTF-8 id), the same in every process. */
export function shardOf(participantId: string, shards: number): number {
  if (shards === 1) return 0;
  return crc32(Buffer.from(participantId, 'utf8')) % shards;
}

/**
 * Which shards a worker consumes: every one when `spec` is empty, else a comma-separated list of
 * shard numbers (`0,2`) or ranges (`0-3`). Refuses numbers outside the layout and empty lists.
 */
export function parseConsumedShards(spec: string | undefined, shards: number): number[] {
  if (spec === undefined || spec.trim() === '') return Array.from({ length: shards }, (_, i) => i);
  const chosen = new Set<number>();
  for (const part of spec.split(',').map((p) => p.trim())) {
    const match = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!match) throw new Error(`"${part}" is not a shard number or range such as 0,2 or 0-3`);
    const from = Number(match[1]);
    const to = match[2] === undefined ? from : Number(match[2]);
    if (to < from) throw new Error(`range "${part}" runs backwards`);
    if (to >= shards) throw new Error(`shard ${to} does not exist: QUEUE_SHARDS is ${shards} (shards 0-${shards - 1})`);
    for (let s = from; s <= to; s += 1) chosen.add(s);
  }
  return [...chosen].sort((a, b) => a - b);
}

/** The layout every service derives from its configuration (QUEUE_SHARDS, REDIS_CLUSTER). */
export function shardLayoutOf(env: { QUEUE_SHARDS: number; REDIS_CLUSTER: boolean }): ShardLayout {
  return shardLayout({ shards: env.QUEUE_SHARDS, cluster: env.REDIS_CLUSTER });
}
