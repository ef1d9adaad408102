import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { BrokerUnavailableError } from './broker/errors.ts';

/**
 * Every coded error a client can see, in one place: HTTP status and default sentence.
 * The WebSocket reuses the codes in its `error` frames.
 */
export const ERRORS = {
  invalid_json: { status: 400, message: 'The request body is not valid JSON.' },
  validation_failed: { status: 400, message: 'The request is not valid.' },
  unauthorized: { status: 401, message: 'A valid bearer token is required.' },
  forbidden: { status: 403, message: 'The token does not allow this room.' },
  sender_mismatch: { status: 403, message: 'sender must be the token subject.' },
  origin_not_allowed: { status: 403, message: 'This Origin is not allowed (CORS_ORIGINS).' },
  not_found: { status: 404, message: 'No such endpoint.' },
  method_not_allowed: { status: 405, message: 'Method not allowed on this endpoint.' },
  request_timeout: { status: 408, message: 'The request was not received in time.' },
  idempotency_conflict: { status: 409, message: 'This key was already used by this sender for a different message.' },
  too_large: { status: 413, message: 'The request is too large.' },
  unsupported_media_type: { status: 415, message: 'Content-Type must be application/json.' },
  epoch_mismatch: { status: 409, message: 'The cursor belongs to an earlier log (the stream was re-created); start over without a cursor.' },
  upgrade_required: { status: 426, message: 'This endpoint speaks WebSocket only.' },
  bad_request: { status: 400, message: 'The request is malformed.' },
  bad_handshake: { status: 400, message: 'The WebSocket handshake is malformed.' },
  rate_limited: { status: 429, message: 'Too many messages; slow down.' },
  headers_too_large: { status: 431, message: 'The request headers are too large.' },
  internal: { status: 500, message: 'Internal error.' },
  broker_unavailable: { status: 503, message: 'The message broker is unavailable; retry shortly.' },
  not_ready: { status: 503, message: 'This node is not ready.' },
  too_many_connections: { status: 503, message: 'This node is at its connection ceiling; retry shortly or use another node.' },
  // WebSocket-only codes (sent in error frames, never as HTTP statuses)
  invalid_frame: { status: 400, message: 'The frame is not valid.' },
  unknown_type: { status: 400, message: 'Unknown frame type.' },
  too_many_subscriptions: { status: 400, message: 'Too many subscriptions on this socket.' },
  not_subscribed: { status: 400, message: 'The socket is not subscribed to this room.' },
} as const satisfies Record<string, { status: ContentfulStatusCode; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

/** The one error class that carries a code (and so an HTTP status) plus optional details. */
export class AppError extends Error {
  override name = 'AppError';
  readonly code: ErrorCode;
  readonly status: ContentfulStatusCode;
  readonly details: Record<string, unknown> | undefined;
  readonly headers: Record<string, string> | undefined;

  constructor(
    code: ErrorCode,
    message?: string,
    opts: { details?: Record<string, unknown>; headers?: Record<string, string> } = {},
  ) {
    super(message ?? ERRORS[code].message);
    this.code = code;
    this.status = ERRORS[code].status;
    this.details = opts.details;
    this.headers = opts.headers;
  }

  toJSON(): { error: Record<string, unknown> } {
    return { error: { code: this.code, message: this.message, ...this.details } };
  }
}

/**
 * The coded error a client sees for `err`: an AppError as it is, the lower layers' typed errors
 * (which know no HTTP) by this table; undefined for anything else, which is a bug (500 internal).
 * Every edge (the HTTP error handler, WebSocket error frames, the metrics) maps through here.
 */
export function toAppError(err: unknown): AppError | undefined {
  if (err instanceof AppError) return err;
  if (err instanceof BrokerUnavailableError) return new AppError('broker_unavailable', undefined, { headers: { 'Retry-After': '2' }, details: { reason: err.reason } });
  return undefined;
}

/** The access error for a room outside the token, the same over HTTP and WebSocket. */
export const forbiddenRoom = (room: string) => new AppError('forbidden', `The token does not allow room "${room}".`, { details: { room } });

/** WebSocket close codes: defined with the frame types the SDK shares (src/protocol.ts). */
export { CLOSE } from './protocol.ts';
