import type { FastifyReply, FastifyRequest } from 'fastify';
import { safeEqual } from '@fitlamp/crypto';

/**
 * Accepts `Authorization: Bearer <ADMIN_TOKEN>` (API clients) or HTTP Basic with the token as
 * the password (a browser opening Bull Board gets a login prompt). Timing-safe comparison.
 */
export function createAdminGuard(adminToken: string) {
  return async function requireAdmin(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const header = request.headers.authorization ?? '';
    let presented: string | undefined;
    if (header.startsWith('Bearer ')) presented = header.slice(7).trim();
    else if (header.startsWith('Basic ')) {
      const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
      presented = decoded.slice(decoded.indexOf(':') + 1);
    }
    if (presented === undefined || !safeEqual(presented, adminToken)) {
      await reply
        .code(401)
        .header('www-authenticate', 'Basic realm="fitlamp admin", charset="UTF-8"')
        .send({ error: 'unauthorized', message: 'Send the admin token as "Authorization: Bearer <ADMIN_TOKEN>".' });
    }
  };
}

/** The studies each signed-in request may see; absent: the global admin (everything). */
const scopes = new WeakMap<FastifyRequest, readonly string[]>();

/**
 * The studies the caller may see: `undefined` for the global admin, else the coordinator's
 * studies. Every admin route filters by it.
 */
export function studyScopeOf(request: FastifyRequest): readonly string[] | undefined {
  return scopes.get(request);
}
