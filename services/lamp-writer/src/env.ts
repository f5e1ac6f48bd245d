import { z } from 'zod';
import { baseEnvSchema, envFields, lampEnvSchema, loadEnv, queueConsumerEnvSchema } from '@fitlamp/runtime';

export const lampWriterEnvSchema = baseEnvSchema.extend(lampEnvSchema.shape).extend(queueConsumerEnvSchema.shape).extend({
  PORT: envFields.port(9093),
  HOST: z.string().default('0.0.0.0'),
  /** Events per POST to mindLAMP. */
  LAMP_BATCH_SIZE: z.coerce.number().int().min(1).max(10_000).default(1000),
  /** Bytes per POST; mindLAMP's body limit is far above this (reference §1.3). */
  LAMP_BATCH_MAX_BYTES: envFields.positiveInt(1_000_000),
  LAMP_WRITER_CONCURRENCY: envFields.positiveInt(4),
  LAMP_TIMEOUT_MS: envFields.positiveInt(30_000),
  /**
   * How long a writer's lease on a participant lasts after its last renewal; default twice
   * `LAMP_TIMEOUT_MS` plus 30 s. A POST can wait `LAMP_TIMEOUT_MS` for the headers and again for
   * the body, and must end before the lease can pass to another writer, so it must be longer.
   */
  LAMP_WRITER_LEASE_MS: z.coerce.number().int().positive().optional(),
  /**
   * How long mindLAMP may go on storing a batch after fitlamp stopped waiting for its answer;
   * events a read-back misses are sent again only once the POST is this old. Default
   * `LAMP_WRITER_LEASE_MS`.
   */
  LAMP_SETTLE_MS: z.coerce.number().int().min(0).optional(),
  /** Optional raw archive: a folder where delivered events are appended as NDJSON per participant/day; empty = off. */
  ARCHIVE_DIR: z.string().optional(),
}).superRefine((env, ctx) => {
  if (env.LAMP_WRITER_LEASE_MS !== undefined && env.LAMP_WRITER_LEASE_MS <= 2 * env.LAMP_TIMEOUT_MS) {
    ctx.addIssue({
      code: 'custom',
      path: ['LAMP_WRITER_LEASE_MS'],
      message: `must be longer than twice LAMP_TIMEOUT_MS (${2 * env.LAMP_TIMEOUT_MS} ms), or a writer's POST could outlive its lease`,
    });
  }
});
export type LampWriterEnv = z.infer<typeof lampWriterEnvSchema>;

export function loadLampWriterEnv(source: Record<string, string | undefined>): LampWriterEnv & { LAMP_WRITER_LEASE_MS: number; LAMP_SETTLE_MS: number } {
  const env = loadEnv(lampWriterEnvSchema, source);
  const lease = env.LAMP_WRITER_LEASE_MS ?? 2 * env.LAMP_TIMEOUT_MS + 30_000;
  return { ...env, LAMP_WRITER_LEASE_MS: lease, LAMP_SETTLE_MS: env.LAMP_SETTLE_MS ?? lease };
}
