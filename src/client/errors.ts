/** An error the SDK surfaces: the server's error code when there is one, else its own. */
export class ChatError extends Error {
  override name = 'ChatError';
  /** The server's code (`validation_failed`, `forbidden`, ...) or the SDK's: `closed`, `unauthorized`, `token_unavailable`. */
  readonly code: string;
  /** The HTTP status, when the error came from an HTTP answer. */
  readonly status: number | undefined;
  readonly details: Record<string, unknown>;

  constructor(code: string, message: string, status?: number, details: Record<string, unknown> = {}) {
    super(message);
    this.code = code;
    this.status = status;
    this.details = details;
  }
}
