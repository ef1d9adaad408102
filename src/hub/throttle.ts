/**
 * "At most once per key every `intervalMs`", in memory bounded by the keys used within the last
 * interval: a Map keeps insertion order, and a key is re-inserted when it passes, so the oldest
 * entries are always at the front and are dropped from there.
 */
export class KeyThrottle {
  private readonly intervalMs: number;
  private readonly last = new Map<string, number>();

  constructor(intervalMs: number) {
    this.intervalMs = intervalMs;
  }

  /** True (and remembered) when `key` has not passed within the interval before `now`. */
  pass(key: string, now: number): boolean {
    for (const [k, at] of this.last) {
      if (now - at < this.intervalMs) break;
      this.last.delete(k);
    }
    if (this.last.has(key)) return false;
    this.last.set(key, now);
    return true;
  }

  get size(): number {
    return this.last.size;
  }
}

/** A token bucket: `burst` at once, refilled at `perSecond`. */
export class TokenBucket {
  private tokens: number;
  private at: number;

  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
    now: number,
  ) {
    this.tokens = burst;
    this.at = now;
  }

  take(now: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.perSecond);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
