import type { FastifyReply } from 'fastify';

/** Canonical google.rpc.Code names by HTTP status (AIP-193; google-health-api §5.2). */
const STATUS: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  409: 'ABORTED',
  410: 'GONE',
  429: 'RESOURCE_EXHAUSTED',
  500: 'INTERNAL',
  501: 'UNIMPLEMENTED',
  503: 'UNAVAILABLE',
  504: 'DEADLINE_EXCEEDED',
};

export const ERROR_DOMAIN = 'health.googleapis.com';

/** A request the API refuses: answered with the `{error:{code,message,status,details}}` envelope. */
export class ApiError extends Error {
  constructor(
    readonly code: number,
    message: string,
    /** ErrorInfo reason from the catalogue; no details when undefined. */
    readonly reason?: string,
    readonly metadata: Record<string, string> = {},
    readonly status: string = STATUS[code] ?? 'UNKNOWN',
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** The google.rpc.Status JSON body of an error. */
export function errorBody(err: ApiError): object {
  return {
    error: {
      code: err.code,
      message: err.message,
      status: err.status,
      ...(err.reason
        ? {
            details: [
              {
                '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
                reason: err.reason,
                domain: err.reason === 'RATE_LIMIT_EXCEEDED' || err.reason === 'ACCESS_TOKEN_SCOPE_INSUFFICIENT' ? 'googleapis.com' : ERROR_DOMAIN,
                ...(Object.keys(err.metadata).length > 0 ? { metadata: err.metadata } : {}),
              },
            ],
          }
        : {}),
    },
  };
}

/** Sends an ApiError. */
export function sendApiError(reply: FastifyReply, err: ApiError): FastifyReply {
  return reply.code(err.code).headers(err.headers).type('application/json; charset=UTF-8').send(errorBody(err));
}

/** 400 INVALID_ARGUMENT with a catalogue reason. */
export function invalid(reason: string, message: string, metadata: Record<string, string> = {}): ApiError {
  return new ApiError(400, message, reason, metadata);
}

/** The OAuth token endpoint's RFC 6749 §5.2 error (google-health-api §1.4). */
export function oauthError(reply: FastifyReply, status: number, error: string, description: string): FastifyReply {
  return reply.code(status).type('application/json; charset=utf-8').send({ error, error_description: description });
}
