import type { Dispatcher } from 'undici';
import { STREAMS, type Provider, type StreamName } from '@fitlamp/provider';
import { fetchDevices, fetchStream } from './fetch-stream.ts';
import type { FitbitHttp } from './http.ts';
import { FITBIT_SOURCE, normalizeDevices } from './normalize.ts';
import { planRequests } from './plan.ts';
import { authorizationUrl, exchangeCode, fetchAccount, refreshToken, revokeToken, scopesFor, streamsMissingScope } from './oauth.ts';

export interface FitbitProviderConfig {
  clientId: string;
  clientSecret: string;
  /** Consent page [https://www.fitbit.com/oauth2/authorize]. */
  authorizeUrl?: string;
  /** Token, revoke, introspect and data endpoints hang off it [https://api.fitbit.com]. */
  apiUrl?: string;
  /** Scopes to request instead of those the streams need. */
  scopes?: readonly string[];
  /** Streams to sync [all of `STREAMS`]. */
  streams?: readonly StreamName[];
  /** For tests: an undici `MockAgent` or a dispatcher pointed at a simulator. */
  dispatcher?: Dispatcher;
  /** Per-request timeout for headers and body [30 s]. */
  timeoutMs?: number;
}

/** The legacy Fitbit Web API (`api.fitbit.com`) as a fitlamp `Provider`. */
export function createFitbitProvider(config: FitbitProviderConfig): Provider {
  const http: FitbitHttp = {
    apiUrl: (config.apiUrl ?? 'https://api.fitbit.com').replace(/\/+$/, ''),
    timeoutMs: config.timeoutMs ?? 30_000,
    ...(config.dispatcher ? { dispatcher: config.dispatcher } : {}),
  };
  const client = { clientId: config.clientId, clientSecret: config.clientSecret };
  const authorizeUrl = config.authorizeUrl ?? 'https://www.fitbit.com/oauth2/authorize';
  const streams = config.streams ? [...config.streams] : [...STREAMS];

  return {
    name: 'fitbit',
    source: FITBIT_SOURCE,
    displayName: 'Fitbit',
    streams,
    scopesFor: (wanted) => (config.scopes ? [...config.scopes] : scopesFor(wanted)),
    streamsMissingScope,
    authorizationUrl: (req) => authorizationUrl(authorizeUrl, client.clientId, req),
    exchangeCode: (input) => exchangeCode(http, client, input),
    refreshToken: (token) => refreshToken(http, client, token),
    revokeToken: (token) => revokeToken(http, client, token),
    fetchAccount: (ctx) => fetchAccount(http, ctx),
    fetchDevices: (ctx) => fetchDevices(http, ctx),
    normalizeDevices,
    planRequests,
    fetch: (request, ctx) => fetchStream(http, request, ctx),
  };
}
