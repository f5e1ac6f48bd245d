import type { Dispatcher } from 'undici';
import { STREAMS, type Provider, type StreamName } from '@fitlamp/provider';
import { fetchDevices, fetchStream } from './fetch-stream.ts';
import type { GoogleHttp } from './http.ts';
import { GOOGLE_SOURCE, normalizeDevices } from './normalize.ts';
import { parseNotifications } from './notifications.ts';
import { authorizationUrl, CLOUD_PLATFORM, exchangeCode, fetchAccount, fetchTimeZone, refreshToken, revokeToken, scopesFor, streamsMissingScope } from './oauth.ts';
import { planRequests } from './plan.ts';

export interface GoogleHealthProviderConfig {
  clientId: string;
  clientSecret: string;
  /** Consent page [https://accounts.google.com/o/oauth2/v2/auth]. */
  authorizeUrl?: string;
  /** Token endpoint [https://oauth2.googleapis.com/token]. */
  tokenUrl?: string;
  /** Revocation endpoint [https://oauth2.googleapis.com/revoke]. */
  revokeUrl?: string;
  /** The Health API; `/v4/…` hangs off it [https://health.googleapis.com]. */
  apiUrl?: string;
  /** Scopes to request instead of those the streams need (never `cloud-platform`). */
  scopes?: readonly string[];
  /** Streams to sync [all of `STREAMS`]. */
  streams?: readonly StreamName[];
  /** For tests: an undici `MockAgent` or a dispatcher pointed at a simulator. */
  dispatcher?: Dispatcher;
  /** Per-request timeout for headers and body [30 s]. */
  timeoutMs?: number;
}

const trim = (url: string) => url.replace(/\/+$/, '');

/**
 * The Google Health API (`health.googleapis.com/v4`) as a fitlamp `Provider`: Google OAuth with
 * PKCE and offline access, the same mindLAMP sensors and `data` as the legacy Fitbit provider
 * (only `source` differs: `com.google.health`), and the same record keys for the same datum.
 * Webhook notifications are read by `parseNotifications` (the envelope is Google's).
 * Throws a RangeError when `scopes` holds `cloud-platform`: Google refuses every user call of a
 * grant that mixes it with Health scopes.
 */
export function createGoogleHealthProvider(config: GoogleHealthProviderConfig): Provider {
  if (config.scopes?.includes(CLOUD_PLATFORM)) {
    throw new RangeError('Google Health scopes must not include cloud-platform: Google refuses every user call of such a grant');
  }
  const http: GoogleHttp = {
    apiUrl: trim(config.apiUrl ?? 'https://health.googleapis.com'),
    tokenUrl: config.tokenUrl ?? 'https://oauth2.googleapis.com/token',
    revokeUrl: config.revokeUrl ?? 'https://oauth2.googleapis.com/revoke',
    timeoutMs: config.timeoutMs ?? 30_000,
    ...(config.dispatcher ? { dispatcher: config.dispatcher } : {}),
  };
  const client = { clientId: config.clientId, clientSecret: config.clientSecret };
  const authorizeUrl = config.authorizeUrl ?? 'https://accounts.google.com/o/oauth2/v2/auth';
  const streams = config.streams ? [...config.streams] : [...STREAMS];

  return {
    name: 'google-health',
    source: GOOGLE_SOURCE,
    displayName: 'Google Health',
    streams,
    scopesFor: (wanted) => (config.scopes ? [...config.scopes] : scopesFor(wanted)),
    streamsMissingScope,
    authorizationUrl: (req) => authorizationUrl(authorizeUrl, client.clientId, req),
    exchangeCode: (input) => exchangeCode(http, client, input),
    refreshToken: (token) => refreshToken(http, client, token),
    revokeToken: (token) => revokeToken(http, token),
    fetchAccount: (ctx) => fetchAccount(http, ctx),
    fetchTimeZone: (ctx) => fetchTimeZone(http, ctx),
    fetchDevices: (ctx) => fetchDevices(http, ctx),
    normalizeDevices,
    planRequests,
    fetch: (request, ctx) => fetchStream(http, request, ctx),
    parseNotifications,
  };
}
