import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { KNOWN_SCOPES } from './catalogue.ts';
import { consentPage, errorPage } from './consent-page.ts';
import { ApiError, oauthError } from './errors.ts';
import { baselineUser, forgetNotified } from './webhooks.ts';
import { healthUserIdOf, isConnected, type AccessToken, type AuthCode, type ConsentTransaction, type GoogleState } from './state.ts';
import { findUser } from '../world/world.ts';

/** Access tokens live an hour; Google answers `expires_in: 3599` (google-health-api §1.3). */
export const ACCESS_TOKEN_TTL_S = 3599;
/** Refresh tokens of apps in Testing expire after 7 days (`refresh_token_expires_in: 604799`). */
export const TESTING_REFRESH_TTL_S = 604_799;
/** Authorization codes: single use, ~10 minutes (§8.2). */
export const CODE_TTL_MS = 10 * 60_000;

function b64url(data: string | Buffer): string {
  return Buffer.from(data).toString('base64url');
}

function secureEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function html(reply: FastifyReply, status: number, body: string): FastifyReply {
  return reply.code(status).type('text/html; charset=utf-8').send(body);
}

function redirectWith(reply: FastifyReply, redirectUri: string, params: Record<string, string | undefined>): FastifyReply {
  const url = new URL(redirectUri);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.set(k, v);
  return reply.redirect(url.toString(), 302);
}

function list(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string');
  return [];
}

/** A form (or JSON) body as strings. */
function bodyOf(request: FastifyRequest): Record<string, string> {
  const out: Record<string, string> = {};
  const body = request.body;
  if (typeof body !== 'object' || body === null) return out;
  for (const [k, v] of Object.entries(body as Record<string, unknown>)) {
    const first = list(v)[0];
    if (first !== undefined) out[k] = first;
  }
  return out;
}

function firstUnconnected(state: GoogleState): string | undefined {
  return (state.world.users.find((u) => !isConnected(state, u.id)) ?? state.world.users[0])?.id;
}

function issueCode(state: GoogleState, tx: ConsentTransaction, userId: string, chosen: string[]): string {
  // Partial consent: only the health scopes the user left ticked; identity scopes are not optional.
  const scopes = tx.scopes.filter((s) => !(s.includes('googlehealth.') || s.endsWith('/cloud-platform')) || chosen.includes(s));
  const firstConsent = !state.granted.has(userId);
  const code: AuthCode = {
    code: `4/0A${randomBytes(30).toString('base64url')}`,
    userId,
    scopes,
    redirectUri: tx.redirectUri,
    codeChallenge: tx.codeChallenge,
    codeChallengeMethod: tx.codeChallengeMethod,
    // "Refresh tokens are typically only issued the first time a user grants consent … or when
    // prompt=consent is added", and only with access_type=offline (google-health-api §1.1).
    withRefresh: tx.offline && (firstConsent || tx.promptConsent),
    expiresAt: state.clock.now() + CODE_TTL_MS,
    used: false,
  };
  state.codes.set(code.code, code);
  return code.code;
}

function grantedScopeParam(state: GoogleState, code: string): string {
  return state.codes.get(code)?.scopes.join(' ') ?? '';
}

function idToken(state: GoogleState, userId: string, now: number): string {
  const user = findUser(state.world, userId);
  const header = b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }));
  const payload = b64url(
    JSON.stringify({
      iss: 'https://accounts.google.com',
      aud: state.client.clientId,
      sub: user ? healthUserIdOf(state.world.seed, user) : userId,
      email: `${userId.toLowerCase()}@fitlamp-sim.test`,
      iat: Math.floor(now / 1000),
      exp: Math.floor(now / 1000) + 3600,
    }),
  );
  return `${header}.${payload}.`;
}

function mintAccess(state: GoogleState, userId: string, scopes: string[]): AccessToken {
  const now = state.clock.now();
  const token: AccessToken = { token: `ya29.a0${randomBytes(60).toString('base64url')}`, userId, scopes, expiresAt: now + (ACCESS_TOKEN_TTL_S + 1) * 1000, revoked: false };
  state.accessTokens.set(token.token, token);
  state.counters.accessTokensIssued += 1;
  return token;
}

/** Revokes the user's grant: every refresh and access token of the app (google-health-api §1.4). */
export function revokeGrant(state: GoogleState, userId: string): void {
  for (const a of state.accessTokens.ofUser(userId)) a.revoked = true;
  for (const r of state.refreshTokens.ofUser(userId)) r.revoked = true;
  state.granted.delete(userId);
  forgetNotified(state.webhooks, userId);
}

/** Resolves a client from the body or HTTP Basic; undefined when it authenticated. */
function clientError(state: GoogleState, request: FastifyRequest, form: Record<string, string>): string | undefined {
  let id = form.client_id;
  let secret = form.client_secret;
  const basic = /^Basic\s+(\S+)$/i.exec(request.headers.authorization ?? '');
  if (basic?.[1]) {
    const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    id = decodeURIComponent(decoded.slice(0, colon));
    secret = decodeURIComponent(decoded.slice(colon + 1));
  }
  if (id !== state.client.clientId) return 'The OAuth client was not found.';
  if (secret === undefined || !secureEqual(secret, state.client.clientSecret)) return 'Unauthorized';
  return undefined;
}

/** The outcome of checking `Authorization: Bearer …` on an API call. */
export function checkBearer(state: GoogleState, header: string | undefined): AccessToken {
  const match = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  const unauthenticated = (reason: string) =>
    new ApiError(
      401,
      'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.',
      reason,
      { service: 'health.googleapis.com' },
      'UNAUTHENTICATED',
      { 'www-authenticate': 'Bearer realm="https://accounts.google.com/", error="invalid_token"' },
    );
  if (!match?.[1]) throw unauthenticated('CREDENTIALS_MISSING');
  const token = state.accessTokens.get(match[1]);
  if (!token || token.revoked) throw unauthenticated('ACCESS_TOKEN_INVALID');
  if (state.clock.now() >= token.expiresAt) throw unauthenticated('ACCESS_TOKEN_EXPIRED');
  return token;
}

/** Registers `/o/oauth2/v2/auth` (GET consent page, POST decision), `/token` and `/revoke`. */
export function registerOAuthRoutes(app: FastifyInstance, state: GoogleState): void {
  app.get('/o/oauth2/v2/auth', async (request, reply) => {
    const q = request.query as Record<string, string | undefined>;
    if (!q.client_id || q.client_id !== state.client.clientId) return html(reply, 401, errorPage('invalid_client', 'The OAuth client was not found.'));
    const redirectUri = q.redirect_uri;
    if (!redirectUri) return html(reply, 400, errorPage('invalid_request', "Missing required parameter: redirect_uri"));
    // Exact match against the registered list; never redirect anywhere else.
    if (!state.client.redirectUris.includes(redirectUri)) {
      return html(reply, 400, errorPage('redirect_uri_mismatch', `You can't sign in to this app because it doesn't comply with Google's OAuth 2.0 policy. redirect_uri=${redirectUri}`));
    }
    if (q.response_type !== 'code') return redirectWith(reply, redirectUri, { error: 'unsupported_response_type', state: q.state });
    const scopes = [...new Set((q.scope ?? '').split(/[\s+]+/).filter(Boolean))];
    if (scopes.length === 0) return html(reply, 400, errorPage('invalid_request', 'Missing required parameter: scope'));
    const unknown = scopes.filter((s) => !KNOWN_SCOPES.has(s));
    if (unknown.length > 0) return html(reply, 400, errorPage('invalid_scope', `Some requested scopes were invalid. {invalid=[${unknown.join(', ')}]}`));
    let method: 'S256' | 'plain' | undefined;
    if (q.code_challenge !== undefined) {
      const m = q.code_challenge_method ?? 'plain';
      if (m !== 'S256' && m !== 'plain') return html(reply, 400, errorPage('invalid_request', 'Invalid code_challenge_method'));
      if (!/^[A-Za-z0-9._~-]{43,128}$/.test(q.code_challenge)) return html(reply, 400, errorPage('invalid_request', 'Invalid code_challenge'));
      method = m;
    }
    const tx: ConsentTransaction = {
      id: randomBytes(16).toString('hex'),
      redirectUri,
      scopes,
      state: q.state,
      codeChallenge: q.code_challenge,
      codeChallengeMethod: method,
      offline: q.access_type === 'offline',
      promptConsent: (q.prompt ?? '').split(' ').includes('consent'),
      expiresAt: state.clock.now() + CODE_TTL_MS,
    };
    const hinted = q.login_hint && findUser(state.world, q.login_hint) ? q.login_hint : undefined;
    const auto = state.autoConsent;
    if (auto) {
      const userId = auto.userId ?? hinted ?? firstUnconnected(state);
      if (auto.decision === 'deny' || userId === undefined) return redirectWith(reply, redirectUri, { error: 'access_denied', state: q.state });
      const code = issueCode(state, tx, userId, auto.scopes ?? scopes);
      return redirectWith(reply, redirectUri, { code, scope: grantedScopeParam(state, code), state: q.state });
    }
    state.transactions.set(tx.id, tx);
    return html(
      reply,
      200,
      consentPage({
        appName: state.client.appName,
        transactionId: tx.id,
        scopes,
        users: state.world.users.map((u) => ({ id: u.id, name: u.name, connected: isConnected(state, u.id) })),
        selectedUserId: hinted ?? firstUnconnected(state),
      }),
    );
  });

  app.post('/o/oauth2/v2/auth', async (request, reply) => {
    const body = (request.body ?? {}) as Record<string, unknown>;
    const txId = list(body.transaction_id)[0] ?? '';
    const tx = state.transactions.get(txId);
    if (!tx || state.clock.now() > tx.expiresAt) return html(reply, 400, errorPage('invalid_request', 'This sign-in request has expired. Go back to the app and try again.'));
    state.transactions.delete(txId);
    if (list(body.decision)[0] !== 'allow') return redirectWith(reply, tx.redirectUri, { error: 'access_denied', state: tx.state });
    const userId = list(body.user)[0] ?? '';
    if (!findUser(state.world, userId)) return html(reply, 400, errorPage('invalid_request', 'Unknown account'));
    const code = issueCode(state, tx, userId, list(body.scope));
    return redirectWith(reply, tx.redirectUri, { code, scope: grantedScopeParam(state, code), state: tx.state });
  });

  app.post('/token', async (request, reply) => {
    const form = bodyOf(request);
    const bad = clientError(state, request, form);
    if (bad) return oauthError(reply, 401, 'invalid_client', bad);
    const now = state.clock.now();
    if (form.grant_type === 'authorization_code') {
      if (!form.code) return oauthError(reply, 400, 'invalid_request', 'Missing required parameter: code');
      const code = state.codes.get(form.code);
      if (!code) return oauthError(reply, 400, 'invalid_grant', 'Malformed auth code.');
      if (code.used || now >= code.expiresAt) {
        code.used = true;
        return oauthError(reply, 400, 'invalid_grant', 'Bad Request');
      }
      if (form.redirect_uri !== code.redirectUri) return oauthError(reply, 400, 'redirect_uri_mismatch', 'Bad Request');
      if (code.codeChallenge !== undefined) {
        if (!form.code_verifier) return oauthError(reply, 400, 'invalid_grant', 'Missing code verifier.');
        const computed = code.codeChallengeMethod === 'S256' ? createHash('sha256').update(form.code_verifier).digest('base64url') : form.code_verifier;
        if (computed !== code.codeChallenge) {
          code.used = true;
          return oauthError(reply, 400, 'invalid_grant', 'Invalid code verifier.');
        }
      }
      code.used = true;
      state.granted.add(code.userId);
      const user = findUser(state.world, code.userId);
      if (user) baselineUser(state, user);
      const access = mintAccess(state, code.userId, code.scopes);
      const response: Record<string, unknown> = { access_token: access.token, expires_in: ACCESS_TOKEN_TTL_S };
      if (code.withRefresh) {
        const refresh = {
          token: `1//0${randomBytes(48).toString('base64url')}`,
          userId: code.userId,
          scopes: code.scopes,
          issuedAt: now,
          expiresAt: state.testingMode ? now + (TESTING_REFRESH_TTL_S + 1) * 1000 : undefined,
          revoked: false,
          uses: 0,
        };
        state.refreshTokens.set(refresh.token, refresh);
        state.counters.refreshTokensIssued += 1;
        response.refresh_token = refresh.token;
      }
      response.scope = code.scopes.join(' ');
      response.token_type = 'Bearer';
      if (code.scopes.includes('openid')) response.id_token = idToken(state, code.userId, now);
      if (code.withRefresh && state.testingMode) response.refresh_token_expires_in = TESTING_REFRESH_TTL_S;
      return reply.header('cache-control', 'no-cache, no-store, max-age=0, must-revalidate').send(response);
    }
    if (form.grant_type === 'refresh_token') {
      if (!form.refresh_token) return oauthError(reply, 400, 'invalid_request', 'Missing required parameter: refresh_token');
      const record = state.refreshTokens.get(form.refresh_token);
      if (!record || record.revoked || (record.expiresAt !== undefined && now >= record.expiresAt)) {
        state.counters.refreshFailures += 1;
        return oauthError(reply, 400, 'invalid_grant', 'Token has been expired or revoked.');
      }
      record.uses += 1;
      state.counters.refreshTokenUses[record.userId] = (state.counters.refreshTokenUses[record.userId] ?? 0) + 1;
      const access = mintAccess(state, record.userId, record.scopes);
      // Google refresh tokens are reusable and the response omits `refresh_token` (§1.3).
      return reply.header('cache-control', 'no-cache, no-store, max-age=0, must-revalidate').send({
        access_token: access.token,
        expires_in: ACCESS_TOKEN_TTL_S,
        scope: record.scopes.join(' '),
        token_type: 'Bearer',
        ...(record.scopes.includes('openid') ? { id_token: idToken(state, record.userId, now) } : {}),
        ...(record.expiresAt !== undefined ? { refresh_token_expires_in: Math.max(0, Math.floor((record.expiresAt - now) / 1000) - 1) } : {}),
      });
    }
    if (!form.grant_type) return oauthError(reply, 400, 'invalid_request', 'Missing required parameter: grant_type');
    return oauthError(reply, 400, 'unsupported_grant_type', `Invalid grant_type: ${form.grant_type}`);
  });

  const revoke = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const token = bodyOf(request).token ?? (request.query as Record<string, string | undefined>).token;
    const now = state.clock.now();
    const access = token ? state.accessTokens.get(token) : undefined;
    const refresh = token ? state.refreshTokens.get(token) : undefined;
    const live = (access && !access.revoked && now < access.expiresAt) || (refresh && !refresh.revoked && (refresh.expiresAt === undefined || now < refresh.expiresAt));
    if (!live) return oauthError(reply, 400, 'invalid_token', 'Token expired or revoked');
    revokeGrant(state, (access ?? refresh)?.userId ?? '');
    return reply.code(200).type('application/json; charset=utf-8').send({});
  };
  app.post('/revoke', revoke);
  app.get('/revoke', revoke);
}
