/**
 * A token bucket: holds up to `capacity` tokens, refilled continuously at `perMs` tokens per
 * millisecond; taking one is allowed while at least one is there. Time is passed in (`now`, in
 * ms), so callers and tests decide the clock. The one bucket of the code base: per sender
 * (auth/rate-limit.ts), per socket (hub/frame-budget.ts), per socket and room for typing
 * (hub/live-signals.ts), and per client in bytes for replays (hub/replay-lane.ts).
 */
export class TokenBucket {
  readonly capacity: number;
  readonly perMs: number;
  private tokens: number;
  private at: number;

  /** A bucket refilled at `perSecond` tokens per second (the unit settings are given in). */
  static perSecond(capacity: number, perSecond: number, now: number): TokenBucket {
    return new TokenBucket(capacity, perSecond / 1000, now);
  }

  /** Starts full. */
  constructor(capacity: number, perMs: number, now: number) {
    this.capacity = capacity;
    this.perMs = perMs;
    this.tokens = capacity;
    this.at = now;
  }

  /** Adds what accrued since the last call; returns the tokens now in the bucket. */
  refill(now: number): number {
    this.tokens = Math.min(this.capacity, this.tokens + (now - this.at) * this.perMs);
    this.at = now;
    return this.tokens;
  }

  /** Refills, then takes one token if there is one: true when taken. */
  take(now: number): boolean {
    if (this.refill(now) < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /**
   * Refills, then takes `n` even when fewer are there: the bucket may go below zero, a debt the
   * next caller waits out (for costs known only after the work, such as a page's bytes).
   */
  spend(n: number, now: number): void {
    this.refill(now);
    this.tokens -= n;
  }

  /** Milliseconds until the debt is paid (0 if there is none), as of the last refill. */
  msUntilPositive(): number {
    return Math.max(0, -this.tokens / this.perMs);
  }

  /** Milliseconds until one token is there (0 if one is), as of the last refill. */
  msUntilOne(): number {
    return this.tokens >= 1 ? 0 : (1 - this.tokens) / this.perMs;
  }

  /** Whether the bucket would be full at `now` (it has been idle long enough); changes nothing. */
  fullAt(now: number): boolean {
    return this.tokens + (now - this.at) * this.perMs >= this.capacity;
  }
}
