import type { Dispatcher } from 'undici';
import { createFitbitProvider } from '@fitlamp/fitbit';
import { parseStreams, type Provider, type ProviderName } from '@fitlamp/provider';
import { ConfigError } from '@fitlamp/runtime';
import type { GatewayEnv } from './env.ts';

/** `FITBIT_SCOPES="activity heartrate"` or `"activity,heartrate"`; unset: what the streams need. */
export function parseScopes(setting: string | undefined): string[] | undefined {
  const scopes = (setting ?? '').split(/[\s,]+/).filter(Boolean);
  return scopes.length > 0 ? scopes : undefined;
}

/**
 * The providers this gateway serves: each one whose client id is configured. `SYNC_STREAMS`
 * picks the streams (and so the scopes requested); `FITBIT_SCOPES` overrides the scopes.
 */
export function createProviders(env: GatewayEnv, options: { dispatcher?: Dispatcher } = {}): Partial<Record<ProviderName, Provider>> {
  let streams;
  try {
    streams = parseStreams(env.SYNC_STREAMS);
  } catch (error) {
    throw new ConfigError('SYNC_STREAMS', `SYNC_STREAMS is invalid: ${(error as Error).message}`);
  }
  const providers: Partial<Record<ProviderName, Provider>> = {};
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
  // Google Health plugs in here through the same `Provider` interface once @fitlamp/google-health exports it.
  return providers;
}
