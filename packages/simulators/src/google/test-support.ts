import { createHash, randomBytes } from 'node:crypto';
import { createGoogleHealthSimulator, type GoogleHealthSimulator, type GoogleHealthSimulatorOptions } from './app.ts';
import { SCOPES } from './catalogue.ts';

/** Fixtures for the Google Health simulator tests: start, consent through the HTML page, call the API. */

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
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    redirectUris: [REDIRECT_URI, 'http://127.0.0.1:9/other'],
    appName: 'Study App',
    seed: 'test-seed',
    startAt: '2026-11-03T15:00:00Z',
    ...options,
    webhooks: { deliveryIntervalMs: 0, timeoutMs: 2000, ...options.webhooks },
  });
  const url = await sim.app.listen({ port: 0, host: '127.0.0.1' });
  return { sim, url };
}

/** A PKCE verifier and its S256 challenge. */
export function pkce(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
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

/** Loads the consent page, ticks `scopes` (default: all offered), submits; returns the redirect. */
export async function consent(
  url: string,
  opts: { user?: string; scopes?: string[]; decision?: 'allow' | 'deny'; params?: Record<string, string | undefined> } = {},
): Promise<URL> {
  const page = await fetch(authorizeUrl(url, opts.params));
  const html = await page.text();
  const tx = /name="transaction_id" value="([^"]+)"/.exec(html)?.[1];
  const selected = /<option value="([^"]+)" selected/.exec(html)?.[1];
  if (!tx || !selected) throw new Error(`no consent form (${page.status}): ${html}`);
  const offered = [...html.matchAll(/name="scope" value="([^"]+)"/g)].map((m) => m[1] ?? '');
  const form = new URLSearchParams({ transaction_id: tx, user: opts.user ?? selected, decision: opts.decision ?? 'allow' });
  for (const s of opts.scopes ?? offered) form.append('scope', s);
  const res = await fetch(`${url}/o/oauth2/v2/auth`, { method: 'POST', body: form, redirect: 'manual' });
  const location = res.headers.get('location');
  if (res.status !== 302 || !location) throw new Error(`expected a redirect, got ${res.status}`);
  return new URL(location);
}

export async function tokenRequest(url: string, form: Record<string, string>): Promise<{ status: number; body: any }> {
  const res = await fetch(`${url}/token`, { method: 'POST', body: new URLSearchParams({ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, ...form }) });
  return { status: res.status, body: await res.json() };
}

/** Consents (PKCE S256, offline) and exchanges the code. */
export async function connectUser(url: string, opts: { user?: string; scopes?: string[] } = {}): Promise<{ access_token: string; refresh_token?: string; scope: string; expires_in: number }> {
  const { verifier, challenge } = pkce();
  const location = await consent(url, { ...opts, params: { code_challenge: challenge, code_challenge_method: 'S256' } });
  const code = location.searchParams.get('code') ?? '';
  const res = await tokenRequest(url, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier });
  if (res.status !== 200) throw new Error(`token exchange failed: ${JSON.stringify(res.body)}`);
  return res.body;
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

export async function control(url: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${url}/_control${path}`, {
    method,
    ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  return { status: res.status, body: await res.json() };
}

/** `list` path with a filter. */
export function listPath(type: string, filter?: string, extra: Record<string, string> = {}, method = ''): string {
  const q = new URLSearchParams({ ...(filter ? { filter } : {}), ...extra });
  const qs = q.toString();
  return `/v4/users/me/dataTypes/${type}/dataPoints${method}${qs ? `?${qs}` : ''}`;
}
