import { z } from 'zod';
import { baseEnvSchema, envFields, loadEnv } from '@fitlamp/runtime';

export const schedulerEnvSchema = baseEnvSchema.extend({
  PORT: envFields.port(9091),
  HOST: z.string().default('0.0.0.0'),
  /** How often each participant stream is polled when nothing else triggers a sync. */
  SYNC_INTERVAL_SECONDS: envFields.positiveInt(900),
  /** How often the scheduler looks for due participants and lost work. */
  SCHEDULER_TICK_SECONDS: envFields.positiveInt(15),
  /** Records not delivered after this long get a fresh delivery job (lost-work sweep). */
  UNDELIVERED_SWEEP_SECONDS: envFields.positiveInt(300),
});
export type SchedulerEnv = z.infer<typeof schedulerEnvSchema>;

export function loadSchedulerEnv(source: Record<string, string | undefined>): SchedulerEnv {
  return loadEnv(schedulerEnvSchema, source);
}
