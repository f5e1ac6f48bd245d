// Fixtures for the Google Health simulator tests: start, consent through the HTML page, call the API.
import { createGoogleHealthSimulator, type GoogleHealthSimulator, type GoogleHealthSimulatorOptions } from '../src/google/app.ts';
import { SCOPES } from '../src/google/catalogue.ts';
import { connectWithPkce, fixtureOptions, submitConsent, type ConsentChoice } from './client.ts';

export { control, pkce } from './client.ts';

export const CLIENT_ID = '123-sim.apps.googleusercontent.com';
export const CLIENT_SECRET = 'GOCSPX-test-secret';
export const REDIRECT_URI = 'http://127.0.0.1:9/oauth/google-health/callback';
export const READ_SCOPES = [SCOPES.activity, SCOPES.healthMetrics, SCOPES.sleep, SCOPES.settings];

export interface Running {
  sim: GoogleHealthSimulator;
  url: string;
}

/** Starts a simulator on a free port with a frozen clock (2026-11-03T15:00Z unless given) and no delivery timer. */
export async function startSimulator(options: Partial<GoogleHealthSimulatorOptions> = {}): Promise<Running> {
  const sim = createGoogleHealthSimulator({
    ...fixtureOptions({ id: CLIENT_ID, secret: CLIENT_SECRET, redirectUri: REDIRECT_URI }),
    ...options,
    webhooks: { deliveryIntervalMs: 0, timeoutMs: 2000, ...options.webhooks },
  });
  const url = await sim.app.listen({ port: 0, host: '127.0.0.1' });
  return { sim, url };
}

export function authorizeUrl(url: string, params: Record<string, string | undefined> = {}): string {
  const all: Record<string, string | undefined> = {
    client_id: CLIENT_ID,
    response_type: 'code',
    scope: READ_SCOPES.join(' '),
    redirect_uri: REDIRECT_URI,
    state: 'state-123',
    access_type: 'offline',
    prompt: 'consent',
    ...params,
  };
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(all)) if (v !== undefined) q.set(k, v);
  return `${url}/o/oauth2/v2/auth?${q.toString()}`;
}

/** Loads the consent page (the authorize URL with `params` over the defaults) and answers it; returns the redirect. */
export function consent(url: string, opts: ConsentChoice & { params?: Record<string, string | undefined> } = {}): Promise<URL> {
  return submitConsent(authorizeUrl(url, opts.params), opts);
}

export async function tokenRequest(url: string, form: Record<string, string>): Promise<{ status: number; body: any }> {
  const res = await fetch(`${url}/token`, { method: 'POST', body: new URLSearchParams({ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, ...form }) });
  return { status: res.status, body: await res.json() };
}

/** Consents (PKCE S256, offline) and exchanges the code. */
export async function connectUser(url: string, opts: { user?: string; scopes?: string[] } = {}): Promise<{ access_token: string; refresh_token?: string; scope: string; expires_in: number }> {
  return connectWithPkce((params) => consent(url, { ...opts, params }), (form) => tokenRequest(url, form), REDIRECT_URI);
}

export async function api(url: string, token: string, path: string, init: { method?: string; body?: unknown; rawBody?: string } = {}): Promise<{ status: number; headers: Headers; body: any }> {
  const hasBody = init.body !== undefined || init.rawBody !== undefined;
  const res = await fetch(`${url}${path}`, {
    method: init.method ?? 'GET',
    headers: { authorization: `Bearer ${token}`, ...(hasBody ? { 'content-type': 'application/json' } : {}) },
    ...(hasBody ? { body: init.rawBody ?? JSON.stringify(init.body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
}

/** `list` path with a filter. */
export function listPath(type: string, filter?: string, extra: Record<string, string> = {}, method = ''): string {
  const q = new URLSearchParams({ ...(filter ? { filter } : {}), ...extra });
  const qs = q.toString();
  return `/v4/users/me/dataTypes/${type}/dataPoints${method}${qs ? `?${qs}` : ''}`;
}
