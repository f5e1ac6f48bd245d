import type { FastifyReply } from 'fastify';

/** Fitbit's non-RFC error body: `{"errors":[{errorType, message}],"success":false}` (fitbit-web-api §1.5). */
export function errorBody(errorType: string, message: string, fieldName?: string): object {
  return { errors: [{ errorType, ...(fieldName ? { fieldName } : {}), message }], success: false };
}

const VISIT = 'Visit https://dev.fitbit.com/docs/oauth2 for more information on the Fitbit Web API authorization process.';

/** Sends a Fitbit error. `message` gets the documentation suffix the real API appends. */
export function sendError(reply: FastifyReply, status: number, errorType: string, message: string, fieldName?: string): FastifyReply {
  return reply.code(status).type('application/json').send(errorBody(errorType, `${message} ${VISIT}`.trim(), fieldName));
}

/** The body answered once the legacy API is switched off (google-health-api §8.7 placeholder). */
export const GONE_BODY = errorBody('gone', 'The Fitbit Web API has been shut down.');
