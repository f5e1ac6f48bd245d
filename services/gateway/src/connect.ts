import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { createPkcePair, randomToken, sha256Hex } from '@fitlamp/crypto';
import {
  codeVerifierPlace,
  connectionTokenPlace,
  consumeOauthState,
  findActiveConnectionByAccount,
  findConnection,
  insertOauthState,
  lockProviderAccount,
  recordTimeZone,
  saveConnectedTokens,
  scheduleStreams,
  upsertParticipant,
  type ProviderConnection,
} from '@fitlamp/db';
import { ProviderError, type AccountInfo, type Provider, type ProviderName, type StreamName, type TokenGrant } from '@fitlamp/provider';
import { enqueue } from '@fitlamp/queues';
import type { GatewayDeps } from './app.ts';
import {
  checkLampParticipant,
  EnrollmentError,
  enrollmentUrl,
  PARTICIPANT_ID,
  signEnrollment,
  verifyEnrollment,
} from './enrollment.ts';
import { createCrossSiteGuard } from './cross-site.ts';
import { retireSupersededConnections } from './reconsent.ts';
import { revocableToken } from './stored-tokens.ts';
import { connectedPage, consentPage, deniedPage, problemPage, sendPage } from './pages.ts';

/** OAuth state lives 10 minutes (the brief; Fitbit's codes live as long: fitbit-web-api §1.2). */
const OAUTH_STATE_TTL_MS = 10 * 60_000;
/** A "try again" link made on the participant's behalf lives one hour. */
const RETRY_LINK_TTL_MS = 60 * 60_000;

/**
 * The cookie binding a consent to the browser that started it (RFC 9700 §4.7.1), one per
 * provider. HttpOnly, SameSite=Lax (the provider's redirect back is a top-level GET, which Lax
 * lets through), Path=/. Over https a `__Host-` cookie, which browsers accept only when Secure,
 * host-only and Path=/; over plain http (local trials) the same without Secure and the prefix.
 */
export function consentCookie(publicBaseUrl: string, provider: ProviderName): { name: string; secure: boolean } {
  const secure = new URL(publicBaseUrl).protocol === 'https:';
  return { name: `${secure ? '__Host-' : ''}fitlamp-consent-${provider}`, secure };
}

function first(value: unknown): unknown {
  return Array.isArray(value) ? value[0] : value;
}

/** Query and form values as single strings (a repeated parameter counts once). */
function singles(input: unknown): Record<string, unknown> {
  if (typeof input !== 'object' || input === null) return {};
  return Object.fromEntries(Object.entries(input).map(([k, v]) => [k, first(v)]));
}

/** Any name: an unknown provider is answered by the route (404), before the other schemas. */
const providerParams = z.object({ provider: z.string() });
/** Who a link is for: signed (`t`), or the prototype's `user_id` where a study allows it. */
const enrollmentInput = z.preprocess(
  singles,
  z.object({
    t: z.string().min(1).max(1024).optional(),
    user_id: z.string().regex(PARTICIPANT_ID).optional(),
  }),
);
const callbackQuery = z.preprocess(
  singles,
  z.object({
    state: z.string().min(16).max(512),
    code: z.string().min(1).max(4096).optional(),
    error: z.string().max(200).optional(),
  }),
);

/**
 * The participant-facing routes, provider-generic: `/connect/:provider` (the page an enrollment
 * link opens, and its form that starts consent) and `/oauth/:provider/callback`.
 */
export function registerConnectRoutes(scope: FastifyInstance, deps: GatewayDeps): void {
  const app = scope.withTypeProvider<ZodTypeProvider>();
  const { env, db, cipher, lamp, logger } = deps;
  const studyName = env.STUDY_NAME;
  const redirectUriFor = (provider: ProviderName) => `${env.PUBLIC_BASE_URL.replace(/\/+$/, '')}/oauth/${provider}/callback`;
  /**
   * A link to try again, issued as the one that started the attempt (`issuedAt`): a retry must not
   * gain the right to replace an account that the original link did not have.
   */
  const retryLink = (provider: ProviderName, participantId: string, issuedAt: number | undefined) =>
    enrollmentUrl(
      env.PUBLIC_BASE_URL,
      provider,
      signEnrollment(env.ENROLLMENT_SECRET, { participantId, provider, expiresAt: Date.now() + RETRY_LINK_TTL_MS, issuedAt }),
    );

  const providerNamed = (name: string): Provider | undefined =>
    Object.hasOwn(deps.providers, name) ? deps.providers[name as ProviderName] : undefined;
  /** The route's provider; {@link knownProvider} has answered 404 for any other. */
  const providerOf = (request: FastifyRequest): Provider => providerNamed((request.params as { provider: string }).provider)!;

  const notAProvider = (reply: FastifyReply) =>
    sendPage(
      reply,
      404,
      'Link not recognised',
      problemPage('This link is not recognised', 'The address does not match any service this study uses.', 'Please use the link the study team sent you.'),
    );
  /** Before validation: a link to a provider this study does not use is not recognised, whatever else it carries. */
  const knownProvider = async (request: FastifyRequest, reply: FastifyReply) => {
    if (!providerNamed((request.params as { provider: string }).provider)) return notAProvider(reply);
  };

  const linkNotValid = (reply: FastifyReply) =>
    sendPage(
      reply,
      400,
      'Link not valid',
      problemPage(
        'This link is not valid',
        'The link is incomplete or has been changed, so we cannot tell who it is for.',
        'Open the link from the study team exactly as you received it, or ask them for a new one.',
      ),
    );
  /** An OAuth answer that matches no connection in progress. */
  const signInExpired = (reply: FastifyReply, provider: Provider) =>
    sendPage(
      reply,
      400,
      'Link expired',
      problemPage(
        'This sign-in has expired or was already used',
        `We could not match this answer from ${provider.displayName} to a connection in progress. Each attempt works once, for 10 minutes, and only in the browser that started it.`,
        'Open the link from the study team again to start over.',
      ),
    );

  /** Resolves who a link is for; sends the problem page and answers `undefined` when it can't. */
  async function participantFromLink(
    provider: Provider,
    input: { t?: string | undefined; user_id?: string | undefined },
    reply: FastifyReply,
  ): Promise<{ participantId: string; fields: Record<string, string>; issuedAt: number | undefined } | undefined> {
    const { t, user_id: unsignedId } = input;
    let participantId: string;
    let fields: Record<string, string>;
    let issuedAt: number | undefined;
    if (t !== undefined) {
      const check = verifyEnrollment(env.ENROLLMENT_SECRET, t, provider.name);
      if (!check.ok) {
        if (check.reason === 'expired') {
          await sendPage(
            reply,
            410,
            'Link expired',
            problemPage(
              'This link has expired',
              `The link was valid until ${new Date(check.expiresAt).toUTCString()}.`,
              'Please ask the study team for a new link.',
            ),
          );
        } else {
          await linkNotValid(reply);
        }
        return undefined;
      }
      participantId = check.claims.participantId;
      issuedAt = check.claims.issuedAt;
      fields = { t };
    } else if (unsignedId !== undefined && env.ALLOW_UNSIGNED_ENROLLMENT) {
      // The prototype's `?user_id=` links, kept only where a study opted in.
      participantId = unsignedId;
      fields = { user_id: unsignedId };
    } else {
      await linkNotValid(reply);
      return undefined;
    }
    try {
      await checkLampParticipant(lamp, participantId);
    } catch (error) {
      if (!(error instanceof EnrollmentError)) throw error;
      logger.warn({ participantId, provider: provider.name, reason: error.code }, 'enrollment refused: participant check failed');
      if (error.code === 'participant_not_found') {
        await sendPage(
          reply,
          404,
          'Participant not found',
          problemPage(
            'We could not find you in the study',
            `The study's mindLAMP account has no participant "${participantId}".`,
            'Please contact the study team: they can check your participant id and send you a new link.',
          ),
        );
      } else {
        await sendPage(
          reply,
          503,
          'Try again shortly',
          problemPage(
            'We cannot check your enrollment right now',
            'The study system did not answer.',
            'Please try again in a few minutes. If it keeps happening, contact the study team.',
          ),
        );
      }
      return undefined;
    }
    return { participantId, fields, issuedAt };
  }

  /** What both enrollment-link routes check before their handler. */
  const linkChecks = {
    preValidation: knownProvider,
    config: { answerInvalidInput: (_request: FastifyRequest, reply: FastifyReply) => linkNotValid(reply) },
  };

  app.get('/connect/:provider', { schema: { params: providerParams, querystring: enrollmentInput }, ...linkChecks }, async (request, reply) => {
    const provider = providerOf(request);
    const who = await participantFromLink(provider, request.query, reply);
    if (!who) return reply;
    return sendPage(
      reply,
      200,
      `Connect your ${provider.displayName}`,
      consentPage({
        studyName,
        providerName: provider.displayName,
        participantId: who.participantId,
        streams: provider.streams,
        action: `/connect/${provider.name}`,
        fields: who.fields,
      }),
    );
  });

  const crossSite = createCrossSiteGuard(
    () => env.PUBLIC_BASE_URL,
    (reply) =>
      sendPage(
        reply,
        403,
        'Request refused',
        problemPage(
          'This request came from another website',
          'Connecting an account must start from the link the study team sent you, not from another site.',
          'Open the link from the study team directly in your browser.',
        ),
      ),
  );

  app.post('/connect/:provider', { schema: { params: providerParams, body: enrollmentInput }, onRequest: crossSite, ...linkChecks }, async (request, reply) => {
    const provider = providerOf(request);
    const who = await participantFromLink(provider, request.body, reply);
    if (!who) return reply;
    const nonce = randomToken(32);
    const cookie = consentCookie(env.PUBLIC_BASE_URL, provider.name);
    const state = randomToken(32);
    const { verifier, challenge } = createPkcePair();
    const scopes = provider.scopesFor(provider.streams);
    await upsertParticipant(db, who.participantId);
    await insertOauthState(db, {
      stateHash: sha256Hex(state),
      participantId: who.participantId,
      provider: provider.name,
      codeVerifierEnc: cipher.encrypt(verifier, codeVerifierPlace(who.participantId)),
      scopesRequested: scopes,
      browserNonceHash: sha256Hex(nonce),
      linkIssuedAt: who.issuedAt !== undefined ? new Date(who.issuedAt) : null,
      expiresAt: new Date(Date.now() + OAUTH_STATE_TTL_MS),
    });
    logger.info({ participantId: who.participantId, provider: provider.name }, 'consent started');
    const target = provider.authorizationUrl({ redirectUri: redirectUriFor(provider.name), state, codeChallenge: challenge, scopes });
    return reply
      .setCookie(cookie.name, nonce, { httpOnly: true, sameSite: 'lax', secure: cookie.secure, path: '/', maxAge: OAUTH_STATE_TTL_MS / 1000 })
      .header('cache-control', 'no-store')
      .redirect(target, 303);
  });

  app.get(
    '/oauth/:provider/callback',
    {
      schema: { params: providerParams, querystring: callbackQuery },
      preValidation: knownProvider,
      config: { answerInvalidInput: (request: FastifyRequest, reply: FastifyReply) => signInExpired(reply, providerOf(request)) },
    },
    async (request, reply) => {
      const provider = providerOf(request);
      const query = request.query;
      const cookie = consentCookie(env.PUBLIC_BASE_URL, provider.name);
      const nonce = request.cookies[cookie.name];
      if (!nonce) {
        logger.warn({ provider: provider.name }, 'oauth callback without the consent cookie: not the browser that started');
        return signInExpired(reply, provider);
      }
      const stateRow = await consumeOauthState(db, sha256Hex(query.state), provider.name, sha256Hex(nonce));
      if (!stateRow) {
        logger.warn({ provider: provider.name }, 'oauth callback with unknown, expired or used state, or another browser’s');
        return signInExpired(reply, provider);
      }
      // The nonce is spent with its state: whatever happens next, this attempt is over.
      reply.clearCookie(cookie.name, { httpOnly: true, sameSite: 'lax', secure: cookie.secure, path: '/' });
      const participantId = stateRow.participant_id;
      const linkIssuedAt = stateRow.link_issued_at?.getTime();
      const retryUrl = retryLink(provider.name, participantId, linkIssuedAt);
      const { code, error } = query;

      if (error !== undefined || code === undefined) {
        if (error === 'access_denied') {
          logger.info({ participantId, provider: provider.name }, 'consent denied by participant');
          return sendPage(reply, 200, `${provider.displayName} not connected`, deniedPage(provider.displayName, retryUrl));
        }
        logger.warn({ participantId, provider: provider.name, providerError: error ?? 'no_code' }, 'consent failed at provider');
        return sendPage(
          reply,
          400,
          'Connection failed',
          problemPage(
            `${provider.displayName} could not complete the connection`,
            `${provider.displayName} reported a problem${error ? ` (${error})` : ''}, so nothing was connected.`,
            'You can try again. If it keeps failing, contact the study team.',
            retryUrl,
          ),
        );
      }

      const failed = (what: string, err: unknown) => {
        const details = err instanceof ProviderError ? { providerError: err.code, status: err.details.status } : { providerError: 'unexpected' };
        logger.warn({ participantId, provider: provider.name, step: what, ...details }, 'connection failed');
        return sendPage(
          reply,
          502,
          'Connection failed',
          problemPage(
            `${provider.displayName} could not complete the connection`,
            `We could not finish connecting your ${provider.displayName} account, so nothing was stored.`,
            'Please try again in a minute. If it keeps failing, contact the study team.',
            retryUrl,
          ),
        );
      };

      let grant: TokenGrant;
      try {
        grant = await provider.exchangeCode({
          code,
          codeVerifier: cipher.decrypt(stateRow.code_verifier_enc, codeVerifierPlace(participantId)),
          redirectUri: redirectUriFor(provider.name),
        });
      } catch (err) {
        return failed('exchange', err);
      }
      const scopes = grant.scopes.length > 0 ? grant.scopes : stateRow.scopes_requested;
      let account: AccountInfo | undefined;
      try {
        account = await provider.fetchAccount({ accessToken: grant.accessToken, zones: [], scopes, intraday: false });
      } catch (err) {
        // Without the profile the time zone stays unknown; the fetcher asks again later.
        if (!grant.providerUserId) return failed('account', err);
        logger.warn({ participantId, provider: provider.name, providerError: err instanceof ProviderError ? err.code : 'unexpected' }, 'profile unavailable at connect');
      }
      const providerUserId = account?.providerUserId ?? grant.providerUserId!;
      const missing = provider.streamsMissingScope(scopes, provider.streams);
      const granted = provider.streams.filter((s) => !missing.includes(s));

      const outcome = await storeGrant(deps, {
        provider,
        participantId,
        providerUserId,
        grant,
        scopes,
        account,
        streams: granted,
        linkIssuedAt,
      });

      if (outcome.kind === 'replace_refused') {
        logger.warn({ participantId, provider: provider.name }, 'consent refused: an older link may not replace the connected account');
        // Nothing of this grant is kept: it goes back to the provider.
        await revokeGrant(deps, provider, participantId, grant.refreshToken ?? grant.accessToken);
        return sendPage(
          reply,
          409,
          'Already connected',
          problemPage(
            `Participant "${participantId}" is already connected to another ${provider.displayName} account`,
            `This link cannot replace the ${provider.displayName} account that is connected, so nothing was changed and the account you signed in with was not connected.`,
            `If the participant now uses a different ${provider.displayName} account, please ask the study team for a new link.`,
          ),
        );
      }

      if (outcome.kind === 'taken') {
        logger.warn({ participantId, provider: provider.name, owner: outcome.ownerParticipantId }, 'account already connected to another participant');
        return sendPage(
          reply,
          409,
          'Account already in use',
          problemPage(
            `This ${provider.displayName} account is already connected to another participant`,
            `Each ${provider.displayName} account can send data for one participant only, so it was not connected to participant "${participantId}".`,
            `If you have another ${provider.displayName} account, sign in with that one. Otherwise, please contact the study team.`,
            retryUrl,
          ),
        );
      }

      try {
        await enqueue(deps.queues, 'sync', { participantId, reason: 'connected' });
      } catch (err) {
        // The cursors are due now: the scheduler's next sweep starts the sync anyway.
        logger.warn({ participantId, err: err instanceof Error ? err.message : String(err) }, 'could not enqueue the initial sync');
      }
      await revokeReplaced(deps, provider, outcome.previous, providerUserId);
      await retireSupersededConnections(deps, { provider, participantId, account });
      logger.info({ participantId, provider: provider.name, streams: granted, missing }, 'connected');
      return sendPage(
        reply,
        200,
        `${provider.displayName} connected`,
        connectedPage(provider.displayName, missing, missing.length > 0 ? retryUrl : undefined),
      );
    },
  );
}

/**
 * What storing a grant came to: connected (with the connection it replaced); the account is
 * another participant's; or the link is older than the participant's connection to another
 * account, which it may not replace.
 */
type ConnectOutcome =
  | { kind: 'connected'; previous: ProviderConnection | undefined }
  | { kind: 'taken'; ownerParticipantId: string }
  | { kind: 'replace_refused' };

/**
 * Whether a consent started from a link issued at `linkIssuedAt` may replace `previous`'s account:
 * only a link issued after that connection was made, so only by an administrator who chose to
 * (the dashboard warns). The link that made a connection, its "try again" links, unsigned links
 * and links from before links carried their issue time (`undefined`) may not: anyone holding one
 * could otherwise swap in their own account. The same account may always reconnect.
 */
export function mayReplaceAccount(previous: ProviderConnection | undefined, providerUserId: string, linkIssuedAt: number | undefined): boolean {
  if (!previous?.provider_user_id || previous.provider_user_id === providerUserId) return true;
  return linkIssuedAt !== undefined && linkIssuedAt > (previous.connected_at?.getTime() ?? 0);
}

/**
 * Stores a fresh grant in one transaction: participant, connection (tokens encrypted, version
 * bumped), time zone, due cursors. Connects of the same provider account are serialized by an
 * advisory lock, so two participants cannot both claim one account.
 */
async function storeGrant(
  deps: GatewayDeps,
  input: {
    provider: Provider;
    participantId: string;
    providerUserId: string;
    grant: TokenGrant;
    scopes: readonly string[];
    account: AccountInfo | undefined;
    streams: readonly StreamName[];
    /** When the link that started this consent was issued (see {@link mayReplaceAccount}). */
    linkIssuedAt: number | undefined;
  },
): Promise<ConnectOutcome> {
  const { cipher } = deps;
  const { provider, participantId, providerUserId, grant } = input;
  // Encrypted for the row they are stored in: the participant's, or the account owner's.
  const tokens = (owner: string) => ({
    participantId: owner,
    provider: provider.name,
    providerUserId,
    legacyUserId: input.account?.legacyUserId ?? null,
    accessTokenEnc: cipher.encrypt(grant.accessToken, connectionTokenPlace(owner, 'access_token_enc')),
    refreshTokenEnc: grant.refreshToken ? cipher.encrypt(grant.refreshToken, connectionTokenPlace(owner, 'refresh_token_enc')) : null,
    keyId: cipher.activeKeyId,
    accessTokenExpiresAt: new Date(grant.accessTokenExpiresAt),
    refreshTokenExpiresAt: grant.refreshTokenExpiresAt ? new Date(grant.refreshTokenExpiresAt) : null,
    scopes: input.scopes,
  });
  return deps.db.transaction().execute(async (trx) => {
    await lockProviderAccount(trx, provider.name, providerUserId);
    const owner = await findActiveConnectionByAccount(trx, provider.name, providerUserId);
    if (owner && owner.participant_id !== participantId) {
      // The provider keeps one live grant per account and app (Fitbit: one refresh token per
      // user, fitbit-web-api §1.4), so this consent has just superseded the owner's tokens, and
      // revoking it would revoke the owner's access too (revocation is per user and app, §1.8).
      // The same account owner consented to the same app: the owner keeps syncing on the new grant.
      await saveConnectedTokens(trx, tokens(owner.participant_id));
      return { kind: 'taken', ownerParticipantId: owner.participant_id };
    }
    const previous = await findConnection(trx, participantId, provider.name);
    if (!mayReplaceAccount(previous, providerUserId, input.linkIssuedAt)) return { kind: 'replace_refused' };
    await upsertParticipant(trx, participantId);
    await saveConnectedTokens(trx, tokens(participantId));
    if (input.account?.timeZone) await recordTimeZone(trx, participantId, input.account.timeZone, `${provider.name}-profile`);
    await scheduleStreams(trx, participantId, input.streams);
    return { kind: 'connected', previous };
  });
}

/**
 * After a reconnect, revokes the tokens it replaced, at the provider. Only when they belonged to
 * another provider account: revocation is per account and app (fitbit-web-api §1.8), so revoking
 * the same account's old token would revoke the grant just stored; the new grant has already
 * retired the old refresh token.
 */
async function revokeReplaced(
  deps: GatewayDeps,
  provider: Provider,
  previous: ProviderConnection | undefined,
  providerUserId: string,
): Promise<void> {
  if (!previous || previous.provider_user_id === providerUserId) return;
  const token = revocableToken(deps.cipher, previous);
  if (token) await revokeGrant(deps, provider, previous.participant_id, token);
}

/** Revokes a grant fitlamp does not keep, at the provider; a failure is logged, not thrown. */
async function revokeGrant(deps: GatewayDeps, provider: Provider, participantId: string, token: string): Promise<void> {
  try {
    await provider.revokeToken(token);
    deps.logger.info({ participantId, provider: provider.name }, 'revoked tokens fitlamp does not keep');
  } catch (err) {
    deps.logger.warn(
      { participantId, provider: provider.name, providerError: err instanceof ProviderError ? err.code : 'unexpected' },
      'could not revoke tokens fitlamp does not keep',
    );
  }
}
