/**
 * The broker could not take a record (not connected, the stream not attached yet, no confirm
 * before the deadline, no such stream). Nothing was confirmed; the caller may retry shortly.
 * The broker layer knows no HTTP: the edges map this to `broker_unavailable` (src/errors.ts).
 */
export class BrokerUnavailableError extends Error {
  override name = 'BrokerUnavailableError';
  /** What went wrong, in a few words, for the client and the log. */
  readonly reason: string;

  constructor(reason: string) {
    super(`broker unavailable: ${reason}`);
    this.reason = reason;
  }
}
