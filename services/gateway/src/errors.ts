import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { stripQuery } from '@fitlamp/runtime';

/**
 * How the gateway answers what goes wrong. Routes declare their input as zod schemas (through
 * `fastify-type-provider-zod`); what a schema refuses, and what Fastify refuses before it (a body
 * that is not JSON, too large, of a type the route does not parse), reaches one error handler:
 *
 * - JSON routes answer `{error, message}`; a 400 always adds `issues`, one `{path, message}` per
 *   field (empty when the request as a whole is malformed): the same body for every route.
 * - Pages people open answer an HTML page saying what happened and what to do: the route's own
 *   page where it has one (`answerInvalidInput`: a link that is not valid, a sign-in that
 *   expired), else its scope's.
 * - A 5xx never carries the failure's text, which may name tables, hosts or internals: the detail
 *   goes to the log, the answer says where to look.
 */

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * The route's own answer to input its schema refused (a page saying what is wrong with the
     * link, the sign-in, the retry). Answers `undefined` to leave this request to the scope's
     * answer (e.g. a JSON client of a route that also takes the dashboard's form).
     */
    answerInvalidInput?: (request: FastifyRequest, reply: FastifyReply) => FastifyReply | undefined;
  }
}

/** One field's problem in a refused request: where (`stream.1`; empty for the request as a whole) and what. */
export interface Issue {
  path: string;
  message: string;
}

/** What a 5xx says instead of its cause. */
export const INTERNAL_ERROR_MESSAGE = 'the request failed; see the gateway log';

/** Sends the one JSON error body: `{error, message}`, plus `issues` on a 400. */
export function sendError(reply: FastifyReply, status: number, error: string, message: string, issues: readonly Issue[] = []): FastifyReply {
  return reply.code(status).send(status === 400 ? { error, message, issues } : { error, message });
}

/** 400 `invalid_request`: every issue, and a message naming each field. */
function sendInvalid(reply: FastifyReply, issues: readonly Issue[]): FastifyReply {
  return sendError(reply, 400, 'invalid_request', issues.map((i) => `${i.path || '(body)'}: ${i.message}`).join('; '), issues);
}

/** The field-by-field problems of a schema validation failure; `undefined` for any other error. */
function schemaIssues(error: unknown): Issue[] | undefined {
  if (!hasZodFastifySchemaValidationErrors(error)) return undefined;
  // `instancePath` is the zod issue's path as a JSON pointer ("/stream/1"; "/" for the whole input).
  return error.validation.map((v) => ({ path: v.instancePath.split('/').filter(Boolean).join('.'), message: v.message ?? 'invalid' }));
}

/** How a scope of HTML pages answers errors (a JSON scope has none). */
export interface ErrorPages {
  /** Input the route's schema refused, or a request malformed before it (400; 413 when too large). */
  badRequest(reply: FastifyReply, status: 400 | 413): FastifyReply;
  /** The scope's rate limit refused the request (a scope without one has no such page). */
  tooManyRequests?(reply: FastifyReply): FastifyReply;
  /** Something failed on the server; the cause is in the log. */
  internal(reply: FastifyReply): FastifyReply;
}

/**
 * The gateway's error handler: JSON for API routes, or `pages` for a scope of pages people open.
 * Set at the root (JSON) and in each page scope.
 */
export function createErrorHandler(pages?: ErrorPages) {
  return async function handleError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const status = typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;
    if (status >= 500) {
      request.log.error(
        { err: { type: error.name, errorCode: error.code, message: error.message, stack: error.stack }, method: request.method, url: stripQuery(request.url) },
        'request failed',
      );
      return pages ? pages.internal(reply) : sendError(reply, status, 'internal', INTERNAL_ERROR_MESSAGE);
    }
    const issues = schemaIssues(error);
    if (issues) {
      const answered = request.routeOptions.config?.answerInvalidInput?.(request, reply);
      if (answered) return answered;
      return pages ? pages.badRequest(reply, 400) : sendInvalid(reply, issues);
    }
    if (status === 429 && pages?.tooManyRequests) return pages.tooManyRequests(reply);
    if (status === 429 && !pages) return sendError(reply, 429, 'rate_limited', error.message);
    // Refused before any schema ran: a body that is not JSON, too large, of an unsupported type.
    if (pages) return pages.badRequest(reply, status === 413 ? 413 : 400);
    return sendError(reply, status, 'invalid_request', error.message);
  };
}
