import { createHash, randomBytes } from 'node:crypto';

/**
 * What the simulator tests do as an OAuth client, the same against the Fitbit and the Google
 * Health simulator: PKCE, the consent form, the control API. Written from the documented flows,
 * never from fitlamp's provider clients.
 */

/**
 * What every simulator fixture starts with: the registered client (its redirect URI and one
 * other), a fixed seed, and a clock frozen at 2026-11-03T15:00Z.
 */
export function fixtureOptions(client: { id: string; secret: string; redirectUri: string }) {
  return {
    clientId: client.id,
    clientSecret: client.secret,
    redirectUris: [client.redirectUri, 'http://127.0.0.1:9/other'],
    appName: 'Study App',
    seed: 'test-seed',
    startAt: '2026-11-03T15:00:00Z',
  };
}

/** A PKCE verifier and its S256 challenge. */
export function pkce(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

export interface ConsentChoice {
  /** The account that signs in; the page's preselected one if absent. */
  user?: string;
  /** Scopes left ticked; every one the page offers if absent. */
  scopes?: string[];
  decision?: 'allow' | 'deny';
}

/** Loads the consent page at `authorizeUrl`, answers it as `choice` says, and returns the redirect. */
export async function submitConsent(authorizeUrl: string, choice: ConsentChoice = {}): Promise<URL> {
  const page = await fetch(authorizeUrl);
  const html = await page.text();
  const tx = /name="transaction_id" value="([^"]+)"/.exec(html)?.[1];
  const selected = /<option value="([^"]+)" selected/.exec(html)?.[1];
  if (!tx || !selected) throw new Error(`no consent form (${page.status}): ${html}`);
  const offered = [...html.matchAll(/name="scope" value="([^"]+)"/g)].map((m) => m[1] ?? '');
  const form = new URLSearchParams({ transaction_id: tx, user: choice.user ?? selected, decision: choice.decision ?? 'allow' });
  for (const s of choice.scopes ?? offered) form.append('scope', s);
  const target = new URL(authorizeUrl);
  const res = await fetch(`${target.origin}${target.pathname}`, { method: 'POST', body: form, redirect: 'manual' });
  const location = res.headers.get('location');
  if (res.status !== 302 || !location) throw new Error(`expected a redirect, got ${res.status}`);
  return new URL(location);
}

/**
 * The authorization-code grant with PKCE S256: consents (`consent` gets the PKCE parameters to add
 * to the authorize URL), then exchanges the code through `tokenRequest`; answers the token response.
 */
export async function connectWithPkce<T>(
  consent: (params: Record<string, string>) => Promise<URL>,
  tokenRequest: (form: Record<string, string>) => Promise<{ status: number; body: any }>,
  redirectUri: string,
): Promise<T> {
  const { verifier, challenge } = pkce();
  const location = await consent({ code_challenge: challenge, code_challenge_method: 'S256' });
  const code = location.searchParams.get('code') ?? '';
  const res = await tokenRequest({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier });
  if (res.status !== 200) throw new Error(`token exchange failed: ${JSON.stringify(res.body)}`);
  return res.body as T;
}

/** Calls a simulator's control API. */
export async function control(url: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${url}/_control${path}`, {
    method,
    ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  return { status: res.status, body: await res.json() };
}
