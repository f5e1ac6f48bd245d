import type { FastifyReply, FastifyRequest } from 'fastify';

/**
 * Refuses state-changing requests a browser sent on another site's behalf: a page elsewhere that
 * auto-submits someone's enrollment form, or posts to the admin API with the coordinator's
 * remembered Basic credentials. Browsers say where a request comes from:
 * - `Sec-Fetch-Site`, where sent, decides: `same-origin`, or `none` for what the person typed,
 *   passes; anything else is refused, `same-site` too (a sibling subdomain is not necessarily ours).
 * - Otherwise (older browsers; plain-http hosts get no `Sec-Fetch-*`) `Origin` must be the
 *   gateway's own: its public URL, or the host the request was sent to. `Origin: null` is refused
 *   (sandboxed frames, data: pages; the pages' `Referrer-Policy: same-origin` keeps a same-origin
 *   form's Origin real).
 * - A request with neither comes from no browser, and has no victim's cookies or credentials to
 *   abuse: it passes.
 *
 * GET, HEAD and OPTIONS pass: they change nothing.
 */
export function isCrossSiteWrite(request: FastifyRequest, publicBaseUrl: string): boolean {
  if (request.method === 'GET' || request.method === 'HEAD' || request.method === 'OPTIONS') return false;
  const site = request.headers['sec-fetch-site'];
  if (site !== undefined) return site !== 'same-origin' && site !== 'none';
  const origin = request.headers.origin;
  if (origin === undefined) return false;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return true;
  }
  if (url.origin === new URL(publicBaseUrl).origin) return false;
  return url.host !== request.headers.host;
}

/**
 * An `onRequest` hook answering cross-site writes with `refuse` (a page or a JSON error, as the
 * scope speaks). `publicBaseUrl` is read per request (tests move it to their port).
 */
export function createCrossSiteGuard(publicBaseUrl: () => string, refuse: (reply: FastifyReply) => FastifyReply | Promise<FastifyReply>) {
  return async function refuseCrossSite(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (!isCrossSiteWrite(request, publicBaseUrl())) return;
    request.log.warn(
      { method: request.method, route: request.routeOptions.url, origin: request.headers.origin ?? null, site: request.headers['sec-fetch-site'] ?? null },
      'cross-site request refused',
    );
    await refuse(reply);
  };
}
