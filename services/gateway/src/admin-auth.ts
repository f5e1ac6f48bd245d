import { createHash, randomBytes } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import { safeEqual } from '@fitlamp/crypto';
import { findCoordinator, type Database } from '@fitlamp/db';

/** The studies each signed-in coordinator's request may see; the global admin has no entry. */
const scopes = new WeakMap<FastifyRequest, readonly string[]>();

/** Who signed in: the coordinator's name, or "admin" for the global admin token. */
const names = new WeakMap<FastifyRequest, string>();

/** Who signed in, for records of who did what (acknowledged an alert): a coordinator's name, else "admin". */
export function signedInAs(request: FastifyRequest): string {
  return names.get(request) ?? 'admin';
}

/**
 * The studies the caller may see: `undefined` for the global admin, else the coordinator's
 * studies. Every admin route filters by it.
 */
export function studyScopeOf(request: FastifyRequest): readonly string[] | undefined {
  return scopes.get(request);
}

/** A new coordinator token: 32 random bytes, base64url. Shown once; only its hash is stored. */
export function issueCoordinatorToken(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * How a coordinator token is stored. The token is 256 random bits, so one SHA-256 suffices (no
 * slow hash: there is nothing to guess by brute force).
 */
export function hashCoordinatorToken(token: string): string {
  return `sha256:${createHash('sha256').update(token, 'utf8').digest('hex')}`;
}

/**
 * Accepts `Authorization: Bearer <ADMIN_TOKEN>` (API clients) or HTTP Basic (a browser gets a
 * login prompt): any user name with the ADMIN_TOKEN as the password signs in as the global admin;
 * a coordinator's name with their token signs in scoped to their studies. Timing-safe comparison.
 */
export function createAdminGuard(adminToken: string, db: Kysely<Database>) {
  return async function requireAdmin(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const header = request.headers.authorization ?? '';
    let presented: string | undefined;
    let name: string | undefined;
    if (header.startsWith('Bearer ')) presented = header.slice(7).trim();
    else if (header.startsWith('Basic ')) {
      const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      name = colon > 0 ? decoded.slice(0, colon) : undefined;
      presented = decoded.slice(colon + 1);
    }
    if (presented !== undefined && safeEqual(presented, adminToken)) return;
    if (presented !== undefined && name !== undefined && name.length <= 128) {
      const coordinator = await findCoordinator(db, name);
      if (coordinator && safeEqual(hashCoordinatorToken(presented), coordinator.token_hash)) {
        scopes.set(request, coordinator.study_ids);
        names.set(request, coordinator.name);
        return;
      }
    }
    await reply
      .code(401)
      .header('www-authenticate', 'Basic realm="fitlamp admin", charset="UTF-8"')
      .send({ error: 'unauthorized', message: 'Send the admin token as "Authorization: Bearer <ADMIN_TOKEN>", or sign in with your coordinator name and token.' });
  };
}

/** After {@link createAdminGuard}: refuses coordinators scoped to studies (Bull Board sees every participant's jobs). */
export async function requireGlobalAdmin(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (reply.sent || !scopes.has(request)) return;
  await reply.code(403).send({ error: 'forbidden', message: 'The queue dashboard is for the global admin (ADMIN_TOKEN) only.' });
}
