import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { consentPage, errorPage } from './consent-page.ts';
import { sendError } from './errors.ts';
import { findUser } from '../world/world.ts';
import {
  ALL_SCOPES,
  isConnected,
  type AccessToken,
  type ConsentTransaction,
  type FitbitState,
  type RefreshToken,
  type TokenResponse,
} from './state.ts';

/** Access tokens live 8 hours; 28800 is the only supported value (fitbit-web-api §1.4). */
export const ACCESS_TOKEN_TTL_S = 28_800;
/** Authorization codes are valid for 10 minutes (fitbit-web-api §1.2). */
export const CODE_TTL_MS = 10 * 60_000;
/** Identical refresh requests within two minutes get the same response (fitbit-web-api §1.4). */
export const REFRESH_REPLAY_WINDOW_MS = 2 * 60_000;

const JWT_SCOPE: Record<string, string> = {
  activity: 'wact', cardio_fitness: 'wcf', electrocardiogram: 'wecg', heartrate: 'whr', irregular_rhythm_notifications: 'wirn',
  location: 'wloc', nutrition: 'wnut', oxygen_saturation: 'wspo2', profile: 'wpro', respiratory_rate: 'wres', settings: 'wset',
  sleep: 'wsle', social: 'wsoc', temperature: 'wtem', weight: 'wwei',
};

const signingKey = randomBytes(32);

function b64url(data: string | Buffer): string {
  return Buffer.from(data).toString('base64url');
}

// The real access token is a JWT whose `exp` clients may read (fitbit-web-api §1.3).
function mintAccessToken(state: FitbitState, userId: string, scopes: string[], now: number): string {
  const header = b64url(JSON.stringify({ alg: 'HS256' }));
  const payload = b64url(
    JSON.stringify({
      aud: state.client.clientId,
      sub: userId,
      iss: 'Fitbit',
      typ: 'access_token',
      scopes: scopes.map((s) => JWT_SCOPE[s] ?? s).join(' '),
      exp: Math.floor(now / 1000) + state.accessTokenTtlS,
      iat: Math.floor(now / 1000),
      jti: randomBytes(8).toString('hex'),
    }),
  );
  const sig = createHmac('sha256', signingKey).update(`${header}.${payload}`).digest('base64url');
  return `${header}.${payload}.${sig}`;
}

function issueTokens(state: FitbitState, userId: string, scopes: string[], closesReplayOf: string | undefined): TokenResponse {
  const now = state.clock.now();
  const access: AccessToken = {
    token: mintAccessToken(state, userId, scopes, now),
    userId,
    scopes,
    issuedAt: now,
    expiresAt: now + state.accessTokenTtlS * 1000,
    revoked: false,
    closesReplayOf,
  };
  const refresh: RefreshToken = {
    token: randomBytes(32).toString('hex'),
    userId,
    scopes,
    status: 'active',
    rotation: undefined,
    closesReplayOf,
  };
  // One active refresh token per user: a new grant retires the previous one.
  const previous = state.activeRefresh.get(userId);
  const prevRecord = previous ? state.refreshTokens.get(previous) : undefined;
  if (prevRecord && prevRecord.status === 'active') prevRecord.status = 'revoked';
  state.accessTokens.set(access.token, access);
  state.refreshTokens.set(refresh.token, refresh);
  state.activeRefresh.set(userId, refresh.token);
  state.counters.accessTokensIssued += 1;
  state.counters.refreshTokensIssued += 1;
  return {
    access_token: access.token,
    expires_in: state.accessTokenTtlS,
    refresh_token: refresh.token,
    scope: scopes.join(' '),
    token_type: 'Bearer',
    user_id: userId,
  };
}

/** Closes the replay window of a rotated refresh token ("unless the newly issued token is used"). */
function closeReplay(state: FitbitState, refreshToken: string | undefined): void {
  const rotation = refreshToken ? state.refreshTokens.get(refreshToken)?.rotation : undefined;
  if (rotation) rotation.closed = true;
}

/** Revokes every token of a user for the app (revoking either token revokes all: §1.8). */
export function revokeUser(state: FitbitState, userId: string): void {
  for (const a of state.accessTokens.ofUser(userId)) a.revoked = true;
  for (const r of state.refreshTokens.ofUser(userId)) {
    r.status = 'revoked';
    if (r.rotation) r.rotation.closed = true;
  }
  state.activeRefresh.delete(userId);
}

/** The outcome of checking a bearer token on an API call. */
export type BearerCheck = { ok: true; token: AccessToken } | { ok: false; errorType: 'invalid_token' | 'expired_token'; message: string };

/** Validates `Authorization: Bearer …`; a successful use closes the issuing refresh's replay window. */
export function checkBearer(state: FitbitState, header: string | undefined): BearerCheck {
  const match = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  if (!match?.[1]) return { ok: false, errorType: 'invalid_token', message: 'Authorization header required.' };
  const raw = match[1];
  const token = state.accessTokens.get(raw);
  if (!token || token.revoked) return { ok: false, errorType: 'invalid_token', message: `Access token invalid: ${raw}.` };
  if (state.clock.now() >= token.expiresAt) return { ok: false, errorType: 'expired_token', message: `Access token expired: ${raw}.` };
  closeReplay(state, token.closesReplayOf);
  return { ok: true, token };
}

function clientFromBasic(state: FitbitState, header: string | undefined): 'ok' | 'missing' | 'invalid' {
  const match = /^Basic\s+(\S+)$/i.exec(header ?? '');
  if (!match?.[1]) return 'missing';
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const expected = `${state.client.clientId}:${state.client.clientSecret}`;
  const a = Buffer.from(decoded);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b) ? 'ok' : 'invalid';
}

function formBody(request: FastifyRequest): Record<string, string> | null {
  const type = String(request.headers['content-type'] ?? '');
  if (!type.startsWith('application/x-www-form-urlencoded') || typeof request.body !== 'object' || request.body === null) return null;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(request.body as Record<string, unknown>)) {
    if (typeof v === 'string') out[k] = v;
    else if (Array.isArray(v) && typeof v[0] === 'string') out[k] = v[0];
  }
  return out;
}

function requireClient(state: FitbitState, request: FastifyRequest, reply: FastifyReply): boolean {
  const client = clientFromBasic(state, request.headers.authorization);
  if (client === 'ok') return true;
  if (client === 'missing') {
    sendError(reply, 401, 'invalid_client', 'Invalid authorization header format. The header was not recognized to be a valid header for any of known implementations or a client_id was not specified in case of a public client.');
  } else {
    sendError(reply, 401, 'invalid_client', 'Invalid authorization header. Client id invalid or client secret invalid.');
  }
  return false;
}

function verifyPkce(method: 'S256' | 'plain', challenge: string, verifier: string): boolean {
  const computed = method === 'S256' ? createHash('sha256').update(verifier).digest('base64url') : verifier;
  return computed === challenge;
}

function redirectWith(reply: FastifyReply, redirectUri: string, params: Record<string, string | undefined>): FastifyReply {
  const url = new URL(redirectUri);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.set(k, v);
  return reply.redirect(url.toString(), 302);
}

function htmlError(reply: FastifyReply, message: string): FastifyReply {
  return reply.code(400).type('text/html; charset=utf-8').send(errorPage(message));
}

function firstUnconnected(state: FitbitState): string | undefined {
  return (state.world.users.find((u) => !isConnected(state, u.id)) ?? state.world.users[0])?.id;
}

function issueCode(state: FitbitState, tx: ConsentTransaction, userId: string, scopes: string[]): string {
  const code = randomBytes(20).toString('hex');
  state.codes.set(code, {
    code,
    userId,
    scopes: tx.scopes.filter((s) => scopes.includes(s)),
    redirectUri: tx.redirectUri,
    redirectUriGiven: tx.redirectUriGiven,
    codeChallenge: tx.codeChallenge,
    codeChallengeMethod: tx.codeChallengeMethod,
    expiresAt: state.clock.now() + CODE_TTL_MS,
    used: false,
  });
  return code;
}

function asList(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string');
  return [];
}

/** Registers `/oauth2/authorize`, `/oauth2/token`, `/oauth2/revoke` and `/1.1/oauth2/introspect`. */
export function registerOAuthRoutes(app: FastifyInstance, state: FitbitState): void {
  app.get('/oauth2/authorize', async (request, reply) => {
    const q = request.query as Record<string, string | undefined>;
    if (q.client_id !== state.client.clientId) return htmlError(reply, 'unauthorized_client - Invalid client_id');
    let redirectUri = q.redirect_uri;
    const redirectUriGiven = redirectUri !== undefined;
    if (redirectUri === undefined) {
      if (state.client.redirectUris.length !== 1) return htmlError(reply, 'invalid_request - Missing parameters: redirect_uri');
      redirectUri = state.client.redirectUris[0] ?? '';
    } else if (!state.client.redirectUris.includes(redirectUri)) {
      // Exact match only (fitbit-web-api §1.2); never redirect to an unregistered URI.
      return htmlError(reply, 'invalid_request - Invalid redirect_uri parameter value');
    }
    if (q.response_type !== 'code') return redirectWith(reply, redirectUri, { error: 'unsupported_response_type', state: q.state });
    const scopes = [...new Set((q.scope ?? '').split(/[\s+]+/).filter(Boolean))];
    if (scopes.length === 0) return htmlError(reply, 'invalid_request - Missing parameters: scope');
    const unknown = scopes.filter((s) => !(ALL_SCOPES as readonly string[]).includes(s));
    if (unknown.length > 0) return htmlError(reply, `invalid_scope - Invalid scope: ${unknown.join(' ')}`);
    let method: 'S256' | 'plain' | undefined;
    if (q.code_challenge !== undefined) {
      // The method defaults to plain when omitted (fitbit-web-api §1.2).
      const m = q.code_challenge_method ?? 'plain';
      if (m !== 'S256' && m !== 'plain') return htmlError(reply, 'invalid_request - Unsupported code_challenge_method');
      if (q.code_challenge.length < 43 || q.code_challenge.length > 128) {
        return htmlError(reply, 'invalid_request - code_challenge parameter length must be between 43 and 128');
      }
      method = m;
    }
    const tx: ConsentTransaction = {
      id: randomBytes(16).toString('hex'),
      redirectUri,
      redirectUriGiven,
      scopes,
      state: q.state,
      codeChallenge: q.code_challenge,
      codeChallengeMethod: method,
      expiresAt: state.clock.now() + CODE_TTL_MS,
    };
    const hinted = q.login_hint && findUser(state.world, q.login_hint) ? q.login_hint : undefined;
    const auto = state.autoConsent;
    if (auto) {
      const userId = auto.userId ?? hinted ?? firstUnconnected(state);
      if (auto.decision === 'deny' || userId === undefined) return redirectWith(reply, redirectUri, { error: 'access_denied', state: q.state });
      const code = issueCode(state, tx, userId, auto.scopes ?? scopes);
      return redirectWith(reply, redirectUri, { code, state: q.state });
    }
    state.transactions.set(tx.id, tx);
    return reply.type('text/html; charset=utf-8').send(
      consentPage({
        appName: state.client.appName,
        transactionId: tx.id,
        scopes,
        users: state.world.users.map((u) => ({ id: u.id, name: u.name, connected: isConnected(state, u.id) })),
        selectedUserId: hinted ?? firstUnconnected(state),
      }),
    );
  });

  app.post('/oauth2/authorize', async (request, reply) => {
    const body = (request.body ?? {}) as Record<string, unknown>;
    const txId = asList(body.transaction_id)[0] ?? '';
    const tx = state.transactions.get(txId);
    if (!tx || state.clock.now() > tx.expiresAt) return htmlError(reply, 'invalid_request - This authorization request has expired. Start again from the app.');
    state.transactions.delete(txId);
    if (asList(body.decision)[0] !== 'allow') return redirectWith(reply, tx.redirectUri, { error: 'access_denied', state: tx.state });
    const userId = asList(body.user)[0] ?? '';
    if (!findUser(state.world, userId)) return htmlError(reply, 'invalid_request - Unknown user');
    const code = issueCode(state, tx, userId, asList(body.scope));
    return redirectWith(reply, tx.redirectUri, { code, state: tx.state });
  });

  app.post('/oauth2/token', async (request, reply) => {
    if (!requireClient(state, request, reply)) return reply;
    const form = formBody(request);
    if (!form) return sendError(reply, 400, 'invalid_request', 'The request must be application/x-www-form-urlencoded.');
    const now = state.clock.now();
    if (form.grant_type === 'authorization_code') {
      const missing = ['code'].filter((k) => !form[k]);
      if (missing.length > 0) return sendError(reply, 400, 'invalid_request', `Missing parameters: ${missing.join(', ')}.`);
      const code = state.codes.get(form.code ?? '');
      if (!code || code.used || now >= code.expiresAt) {
        if (code) code.used = true;
        return sendError(reply, 400, 'invalid_grant', `Authorization code invalid: ${form.code}.`);
      }
      if (code.redirectUriGiven && form.redirect_uri !== code.redirectUri) {
        return sendError(reply, 400, 'invalid_grant', 'Redirect_uri mismatch: the redirect_uri must match the one used to obtain the code.');
      }
      if (code.codeChallenge !== undefined) {
        if (!form.code_verifier) return sendError(reply, 400, 'invalid_request', 'Missing parameters: code_verifier.');
        if (!verifyPkce(code.codeChallengeMethod ?? 'plain', code.codeChallenge, form.code_verifier)) {
          code.used = true;
          return sendError(reply, 400, 'invalid_grant', `Code verifier invalid: ${form.code_verifier}.`);
        }
      }
      code.used = true;
      return reply.send(issueTokens(state, code.userId, code.scopes, undefined));
    }
    if (form.grant_type === 'refresh_token') {
      if (!form.refresh_token) return sendError(reply, 400, 'invalid_request', 'Missing parameters: refresh_token.');
      const record = state.refreshTokens.get(form.refresh_token);
      const fingerprint = JSON.stringify([request.headers.authorization, Object.entries(form).sort(([a], [b]) => a.localeCompare(b))]);
      if (record?.status === 'active') {
        closeReplay(state, record.closesReplayOf);
        record.status = 'rotated';
        const response = issueTokens(state, record.userId, record.scopes, record.token);
        record.rotation = { at: now, fingerprint, response, closed: false };
        return reply.send(response);
      }
      const rotation = record?.status === 'rotated' ? record.rotation : undefined;
      if (rotation && !rotation.closed && now - rotation.at <= REFRESH_REPLAY_WINDOW_MS && rotation.fingerprint === fingerprint) {
        state.counters.refreshReplays += 1;
        return reply.send(rotation.response);
      }
      if (record?.status === 'rotated') state.counters.refreshTokenReuse += 1;
      return sendError(reply, 400, 'invalid_grant', `Refresh token invalid: ${form.refresh_token}.`);
    }
    return sendError(reply, 400, 'unsupported_grant_type', `The grant type "${form.grant_type ?? ''}" is not supported.`);
  });

  app.post('/oauth2/revoke', async (request, reply) => {
    if (!requireClient(state, request, reply)) return reply;
    const form = formBody(request);
    if (!form?.token) return sendError(reply, 400, 'invalid_request', 'Missing parameters: token.');
    const userId = state.accessTokens.get(form.token)?.userId ?? state.refreshTokens.get(form.token)?.userId;
    if (userId) revokeUser(state, userId);
    // RFC 7009: unknown tokens are not an error.
    return reply.code(200).send();
  });

  app.post('/1.1/oauth2/introspect', async (request, reply) => {
    const caller = checkBearer(state, request.headers.authorization);
    if (!caller.ok) return sendError(reply, 401, caller.errorType, caller.message);
    const form = formBody(request);
    if (!form?.token) return sendError(reply, 400, 'invalid_request', 'Missing parameters: token.');
    const token = state.accessTokens.get(form.token);
    if (!token || token.revoked || state.clock.now() >= token.expiresAt) return reply.send({ active: false });
    // The scope format is odd but documented: "{ACTIVITY=READ_WRITE}" (fitbit-web-api §1.6).
    return reply.send({
      active: true,
      scope: `{${token.scopes.map((s) => `${s.toUpperCase()}=READ_WRITE`).join(', ')}}`,
      client_id: state.client.clientId,
      user_id: token.userId,
      token_type: 'access_token',
      exp: token.expiresAt,
      iat: token.issuedAt,
    });
  });
}
