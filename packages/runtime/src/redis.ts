import { Cluster, Redis, type RedisOptions } from 'ioredis';

/** A connection to one Redis, or to a Redis Cluster (`REDIS_CLUSTER=true`). */
export type RedisConnection = Redis | Cluster;

export interface ConnectionTarget {
  /** `redis://` or `rediss://` URL: the server, or with `cluster` any one node of the cluster. */
  url: string;
  /** The URL names a node of a Redis Cluster; the other nodes are discovered from it. */
  cluster?: boolean;
}

/**
 * Opens `target` with `options`. For a cluster, the URL is the seed node and its credentials and
 * TLS apply to every node (a managed cluster uses one password); the other nodes come from
 * CLUSTER SLOTS, and `options` are each node connection's options.
 */
function connect(target: ConnectionTarget, options: RedisOptions & { enableOfflineQueue?: boolean }): RedisConnection {
  if (!target.cluster) return new Redis(target.url, options);
  const url = new URL(target.url);
  const nodeOptions: RedisOptions = {
    ...options,
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
    ...(url.protocol === 'rediss:' ? { tls: {} } : {}),
  };
  return new Cluster([{ host: url.hostname, port: Number(url.port || 6379) }], {
    redisOptions: nodeOptions,
    ...(options.enableOfflineQueue === undefined ? {} : { enableOfflineQueue: options.enableOfflineQueue }),
    // TLS certificates name the hostnames, not the IPs CLUSTER SLOTS reports.
    ...(url.protocol === 'rediss:' ? { dnsLookup: (address: string, callback: (err: null, address: string) => void) => callback(null, address) } : {}),
  });
}

function asTarget(target: string | ConnectionTarget): ConnectionTarget {
  return typeof target === 'string' ? { url: target } : target;
}

/**
 * A connection for code that adds jobs or reads state. It fails fast when Redis is away, so an
 * HTTP request or a scheduler tick errors instead of hanging.
 */
export function createProducerConnection(target: string | ConnectionTarget, options: RedisOptions = {}): RedisConnection {
  return connect(asTarget(target), {
    maxRetriesPerRequest: 2,
    enableOfflineQueue: false,
    lazyConnect: false,
    ...options,
  });
}

/**
 * A connection for BullMQ workers (blocking commands): BullMQ requires
 * `maxRetriesPerRequest: null` so that a worker waits out a Redis restart instead of crashing.
 * Never share one with a producer.
 */
export function createWorkerConnection(target: string | ConnectionTarget, options: RedisOptions = {}): RedisConnection {
  return connect(asTarget(target), { maxRetriesPerRequest: null, ...options });
}
