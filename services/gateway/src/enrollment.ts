import type { Kysely } from 'kysely';
import { sign, verifySignature } from '@fitlamp/crypto';
import { findConnection, upsertParticipant, type Database } from '@fitlamp/db';
import { LampError, type LampClient } from '@fitlamp/lamp';
import type { ProviderName } from '@fitlamp/provider';

/**
 * Enrollment links: `<PUBLIC_BASE_URL>/connect/<provider>?t=<payload>.<signature>`, where the
 * payload is base64url JSON `{v, p: participant id, r: provider, e: expiry (epoch seconds),
 * i: issued at (epoch ms)}` and the signature an HMAC-SHA256 of it under `ENROLLMENT_SECRET`.
 * Nothing is stored per link: any change to the payload breaks the signature, and the expiry is
 * inside it. The issue time decides whether the link may replace a connected account: only a
 * link issued after the connection was made may (links from before `i` existed may not).
 */

const PURPOSE = 'fitlamp-enrollment-v1';
/** Participant ids as mindLAMP makes them (`U1234567890`) and as studies import them. */
export const PARTICIPANT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export interface EnrollmentClaims {
  participantId: string;
  provider: ProviderName;
  /** UTC epoch ms. */
  expiresAt: number;
  /** UTC epoch ms; absent on links made before links carried it. */
  issuedAt?: number | undefined;
}

/** Makes the `t` value of an enrollment link. */
export function signEnrollment(secret: string, claims: EnrollmentClaims): string {
  const payload = Buffer.from(
    JSON.stringify({
      v: 1,
      p: claims.participantId,
      r: claims.provider,
      e: Math.floor(claims.expiresAt / 1000),
      ...(claims.issuedAt !== undefined ? { i: claims.issuedAt } : {}),
    }),
  ).toString('base64url');
  return `${payload}.${sign(secret, `${PURPOSE}.${payload}`)}`;
}

export type EnrollmentCheck =
  | { ok: true; claims: EnrollmentClaims }
  | { ok: false; reason: 'invalid' }
  | { ok: false; reason: 'expired'; expiresAt: number };

/** Checks a link's `t` value: signature first (nothing unsigned is even parsed), then provider and expiry. */
export function verifyEnrollment(secret: string, token: string, provider: ProviderName, now = Date.now()): EnrollmentCheck {
  const dot = token.lastIndexOf('.');
  if (dot <= 0 || token.length > 1024) return { ok: false, reason: 'invalid' };
  const payload = token.slice(0, dot);
  if (!verifySignature(secret, `${PURPOSE}.${payload}`, token.slice(dot + 1))) return { ok: false, reason: 'invalid' };
  let body: { v?: unknown; p?: unknown; r?: unknown; e?: unknown; i?: unknown };
  try {
    body = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as typeof body;
  } catch {
    return { ok: false, reason: 'invalid' };
  }
  if (
    body.v !== 1 ||
    typeof body.p !== 'string' ||
    !PARTICIPANT_ID.test(body.p) ||
    body.r !== provider ||
    typeof body.e !== 'number' ||
    (body.i !== undefined && !Number.isSafeInteger(body.i))
  ) {
    return { ok: false, reason: 'invalid' };
  }
  const expiresAt = body.e * 1000;
  if (expiresAt <= now) return { ok: false, reason: 'expired', expiresAt };
  return { ok: true, claims: { participantId: body.p, provider, expiresAt, issuedAt: body.i as number | undefined } };
}

/** The link for a participant, under the gateway's public URL. */
export function enrollmentUrl(publicBaseUrl: string, provider: ProviderName, token: string): string {
  const url = new URL(`${publicBaseUrl.replace(/\/+$/, '')}/connect/${provider}`);
  url.searchParams.set('t', token);
  return url.toString();
}

/**
 * What a coordinator is told when a link is issued for a participant already connected: unlike
 * the links before it, this one can replace the connected account with another.
 */
export function replaceWarning(participantId: string, provider: ProviderName): string {
  return `participant "${participantId}" is connected to a ${provider} account: a link issued now can replace it with another account, for whoever opens it. Send one only to the participant, and only if they changed accounts.`;
}

/** Why an enrollment could not be issued; `message` is safe to show a coordinator. */
export class EnrollmentError extends Error {
  constructor(
    readonly code: 'participant_not_found' | 'lamp_unavailable' | 'lamp_rejected',
    message: string,
  ) {
    super(message);
    this.name = 'EnrollmentError';
  }
}

/**
 * Checks that mindLAMP knows the participant (with the researcher credential), translating the
 * client's errors into what a coordinator or participant can act on.
 */
export async function checkLampParticipant(lamp: LampClient, participantId: string): Promise<void> {
  try {
    await lamp.getParticipant(participantId);
  } catch (error) {
    if (!(error instanceof LampError)) throw error;
    if (error.code === 'participant_not_found') {
      throw new EnrollmentError('participant_not_found', `mindLAMP has no participant "${participantId}" in the studies fitlamp's credential can see`);
    }
    if (error.code === 'unauthorized' || error.code === 'forbidden') {
      throw new EnrollmentError('lamp_rejected', `mindLAMP refused fitlamp's credential (${error.status}): check LAMP_ACCESS_KEY and LAMP_SECRET_KEY`);
    }
    throw new EnrollmentError('lamp_unavailable', `mindLAMP could not be asked about the participant (${error.code}); try again shortly`);
  }
}

/** The participant's mindLAMP study, translating the client's errors as {@link checkLampParticipant} does. */
async function findLampStudy(lamp: LampClient, participantId: string): Promise<string | null> {
  try {
    return await lamp.getParticipantStudy(participantId);
  } catch (error) {
    if (!(error instanceof LampError)) throw error;
    throw new EnrollmentError('lamp_unavailable', `mindLAMP could not say which study participant "${participantId}" is in (${error.code}); try again shortly`);
  }
}

export interface IssueEnrollmentDeps {
  db: Kysely<Database>;
  lamp: LampClient;
  enrollmentSecret: string;
  publicBaseUrl: string;
  defaultTtlHours: number;
}

export interface IssuedEnrollment {
  participantId: string;
  provider: ProviderName;
  url: string;
  expiresAt: string;
  /** Set when the participant is connected to an account of this provider: this link can replace it. */
  warning?: string;
}

/**
 * Issues an enrollment link after checking the participant in mindLAMP; records the participant
 * (so the coordinator's list shows who was invited). An unknown participant stores nothing.
 */
export async function issueEnrollment(
  deps: IssueEnrollmentDeps,
  input: {
    participantId: string;
    provider: ProviderName;
    expiresInHours?: number | undefined;
    /** A coordinator scoped to these studies may enroll only their participants. */
    studyIds?: readonly string[];
  },
  now = Date.now(),
): Promise<IssuedEnrollment> {
  await checkLampParticipant(deps.lamp, input.participantId);
  const studyId = await findLampStudy(deps.lamp, input.participantId);
  if (input.studyIds && (studyId === null || !input.studyIds.includes(studyId))) {
    // Said as mindLAMP would say it: another study's participant is not this coordinator's to know of.
    throw new EnrollmentError('participant_not_found', `mindLAMP has no participant "${input.participantId}" in your studies`);
  }
  await upsertParticipant(deps.db, input.participantId, studyId);
  const expiresAt = now + (input.expiresInHours ?? deps.defaultTtlHours) * 3_600_000;
  const token = signEnrollment(deps.enrollmentSecret, { participantId: input.participantId, provider: input.provider, expiresAt, issuedAt: now });
  const connected = await findConnection(deps.db, input.participantId, input.provider);
  return {
    participantId: input.participantId,
    provider: input.provider,
    url: enrollmentUrl(deps.publicBaseUrl, input.provider, token),
    // The link carries whole seconds.
    expiresAt: new Date(Math.floor(expiresAt / 1000) * 1000).toISOString(),
    ...(connected?.provider_user_id ? { warning: replaceWarning(input.participantId, input.provider) } : {}),
  };
}
