import { Redis, type RedisOptions } from 'ioredis';

/**
 * A connection for code that adds jobs or reads state. It fails fast when Redis is away, so an
 * HTTP request or a scheduler tick errors instead of hanging.
 */
export function createProducerConnection(url: string, options: RedisOptions = {}): Redis {
  return new Redis(url, {
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
export function createWorkerConnection(url: string, options: RedisOptions = {}): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, ...options });
}
