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
});
export type LampWriterEnv = z.infer<typeof lampWriterEnvSchema>;

export function loadLampWriterEnv(source: Record<string, string | undefined>): LampWriterEnv {
  return loadEnv(lampWriterEnvSchema, source);
}
