import type { Dispatcher } from 'undici';
import type { z } from 'zod';
import { createFitbitProvider } from '@fitlamp/fitbit';
import { createGoogleHealthProvider } from '@fitlamp/google-health';
import { parseStreams, type Provider, type ProviderName, type StreamName } from '@fitlamp/provider';
import { ConfigError, type providerEnvSchema } from '@fitlamp/runtime';

export type ProviderEnv = z.infer<typeof providerEnvSchema>;
export type Providers = Partial<Record<ProviderName, Provider>>;

/** `FITBIT_SCOPES="activity heartrate"` or `"activity,heartrate"`; unset: what the streams need. */
function parseScopes(setting: string | undefined): string[] | undefined {
  const scopes = (setting ?? '').split(/[\s,]+/).filter(Boolean);
  return scopes.length > 0 ? scopes : undefined;
}

/** `SYNC_STREAMS` as stream names; a {@link ConfigError} naming the variable if one is unknown. */
export function streamsFromEnv(env: ProviderEnv): StreamName[] {
  try {
    return parseStreams(env.SYNC_STREAMS);
  } catch (error) {
    throw new ConfigError('SYNC_STREAMS', `SYNC_STREAMS is invalid: ${(error as Error).message}`);
  }
}

/**
 * The providers this deployment serves: each one whose client id is configured. The gateway and
 * the fetcher build theirs here, so both speak to the same URLs with the same scopes and streams.
 * `SYNC_STREAMS` picks the streams (and so the scopes requested); `FITBIT_SCOPES` and
 * `GOOGLE_SCOPES` override scopes (Google's never include `cloud-platform`: the provider refuses it).
 */
export function createProviders(env: ProviderEnv, options: { dispatcher?: Dispatcher } = {}): Providers {
  const streams = streamsFromEnv(env);
  const providers: Providers = {};
  if (env.FITBIT_CLIENT_ID && env.FITBIT_CLIENT_SECRET) {
    const scopes = parseScopes(env.FITBIT_SCOPES);
    providers.fitbit = createFitbitProvider({
      clientId: env.FITBIT_CLIENT_ID,
      clientSecret: env.FITBIT_CLIENT_SECRET,
      authorizeUrl: env.FITBIT_AUTHORIZE_URL,
      apiUrl: env.FITBIT_API_URL,
      streams,
      ...(scopes ? { scopes } : {}),
      ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}),
    });
  }
  if (env.GOOGLE_CLIENT_ID && env.GOOGLE_CLIENT_SECRET) {
    const scopes = parseScopes(env.GOOGLE_SCOPES);
    try {
      providers['google-health'] = createGoogleHealthProvider({
        clientId: env.GOOGLE_CLIENT_ID,
        clientSecret: env.GOOGLE_CLIENT_SECRET,
        authorizeUrl: env.GOOGLE_AUTHORIZE_URL,
        tokenUrl: env.GOOGLE_TOKEN_URL,
        revokeUrl: env.GOOGLE_REVOKE_URL,
        apiUrl: env.GOOGLE_HEALTH_API_URL,
        streams,
        ...(scopes ? { scopes } : {}),
        ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}),
      });
    } catch (error) {
      throw new ConfigError('GOOGLE_SCOPES', `GOOGLE_SCOPES is invalid: ${(error as Error).message}`);
    }
  }
  return providers;
}
