// Fixtures for the Fitbit simulator tests: start, consent through the HTML page, call the API.
import { createFitbitSimulator, type FitbitSimulator, type FitbitSimulatorOptions } from '../src/fitbit/app.ts';
import { connectWithPkce, fixtureOptions, submitConsent, type ConsentChoice } from './client.ts';

export { control, pkce } from './client.ts';

export const CLIENT_ID = 'TESTAPP';
export const CLIENT_SECRET = 'test-secret';
export const REDIRECT_URI = 'http://127.0.0.1:9/callback';
export const EVERY_DATA_SCOPE = ['activity', 'heartrate', 'sleep', 'profile', 'settings', 'oxygen_saturation', 'respiratory_rate', 'temperature'];

export interface Running {
  sim: FitbitSimulator;
  url: string;
}

/** Starts a simulator on a free port with a frozen clock (2026-11-03T15:00Z unless given). */
export async function startSimulator(options: Partial<FitbitSimulatorOptions> = {}): Promise<Running> {
  const sim = createFitbitSimulator({
    ...fixtureOptions({ id: CLIENT_ID, secret: CLIENT_SECRET, redirectUri: REDIRECT_URI }),
    ...options,
  });
  const url = await sim.app.listen({ port: 0, host: '127.0.0.1' });
  return { sim, url };
}

/** The Basic header of the registered client. */
export function basicAuth(id = CLIENT_ID, secret = CLIENT_SECRET): string {
  return `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
}

/** The authorize URL with sensible defaults. */
export function authorizeUrl(url: string, params: Record<string, string | undefined> = {}): string {
  const q = new URLSearchParams();
  const all: Record<string, string | undefined> = {
    client_id: CLIENT_ID,
    response_type: 'code',
    scope: EVERY_DATA_SCOPE.join(' '),
    redirect_uri: REDIRECT_URI,
    state: 'state-123',
    ...params,
  };
  for (const [k, v] of Object.entries(all)) if (v !== undefined) q.set(k, v);
  return `${url}/oauth2/authorize?${q.toString()}`;
}

/** Loads the consent page (the authorize URL with `params` over the defaults) and answers it; returns the redirect. */
export function consent(url: string, opts: ConsentChoice & { params?: Record<string, string | undefined> } = {}): Promise<URL> {
  return submitConsent(authorizeUrl(url, opts.params), opts);
}

/** POSTs a form to the token endpoint with the client's Basic auth. */
export async function tokenRequest(url: string, form: Record<string, string>, auth = basicAuth()): Promise<{ status: number; body: any }> {
  const res = await fetch(`${url}/oauth2/token`, { method: 'POST', headers: { authorization: auth }, body: new URLSearchParams(form) });
  return { status: res.status, body: await res.json() };
}

/** Consents (PKCE S256) and exchanges the code; returns the token response. */
export async function connectUser(url: string, opts: { user?: string; scopes?: string[] } = {}): Promise<{ access_token: string; refresh_token: string; user_id: string; scope: string }> {
  return connectWithPkce((params) => consent(url, { ...opts, params }), (form) => tokenRequest(url, form), REDIRECT_URI);
}

/** GETs a data path with a bearer token. */
export async function api(url: string, token: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; body: any }> {
  const res = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${token}`, ...headers } });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
}
