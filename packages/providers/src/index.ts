import type { z } from 'zod';
import { createFitbitProvider } from '@fitlamp/fitbit';
import { parseStreams, type Provider, type ProviderName, type StreamName } from '@fitlamp/provider';
import type { providerEnvSchema } from '@fitlamp/runtime';

export type ProviderEnv = z.infer<typeof providerEnvSchema>;
export type Providers = Partial<Record<ProviderName, Provider>>;

/**
 * The providers this deployment has credentials for, configured from the environment. The
 * gateway and the fetcher build theirs here so both speak to the same URLs with the same scopes.
 */
export function createProviders(env: ProviderEnv): { providers: Providers; streams: StreamName[] } {
  const streams = parseStreams(env.SYNC_STREAMS);
  const providers: Providers = {};
  if (env.FITBIT_CLIENT_ID && env.FITBIT_CLIENT_SECRET) {
    providers.fitbit = createFitbitProvider({
      clientId: env.FITBIT_CLIENT_ID,
      clientSecret: env.FITBIT_CLIENT_SECRET,
      authorizeUrl: env.FITBIT_AUTHORIZE_URL,
      apiUrl: env.FITBIT_API_URL,
      streams,
      ...(env.FITBIT_SCOPES ? { scopes: env.FITBIT_SCOPES.split(/[\s,]+/).filter(Boolean) } : {}),
    });
  }
  return { providers, streams };
}
