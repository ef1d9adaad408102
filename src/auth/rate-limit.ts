/**
 * Messages per sender per minute, as a token bucket: a sender may spend its whole minute at
 * once, then one message every 60/limit seconds. Shared by HTTP and WebSocket publishing.
 * Memory is bounded: full (idle) buckets are forgotten, and the map never exceeds `maxSenders`.
 */
export class RateLimiter {
  private readonly perMinute: number;
  private readonly maxSenders: number;
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(perMinute: number, maxSenders = 100_000) {
    this.perMinute = perMinute;
    this.maxSenders = maxSenders;
  }

  /** Takes one message from `sender`'s allowance: 0 when allowed, else seconds until it would be. */
  take(sender: string, now = Date.now()): number {
    const perMs = this.perMinute / 60_000;
    let b = this.buckets.get(sender);
    if (b) {
      b.tokens = Math.min(this.perMinute, b.tokens + (now - b.at) * perMs);
      b.at = now;
    } else {
      if (this.buckets.size >= this.maxSenders) this.sweep(now);
      b = { tokens: this.perMinute, at: now };
      this.buckets.set(sender, b);
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / perMs / 1000));
  }

  get size(): number {
    return this.buckets.size;
  }

  private sweep(now: number): void {
    const perMs = this.perMinute / 60_000;
    for (const [k, b] of this.buckets) if (b.tokens + (now - b.at) * perMs >= this.perMinute) this.buckets.delete(k);
    // Still full of active senders: drop the oldest (Map keeps insertion order).
    for (const k of this.buckets.keys()) {
      if (this.buckets.size < this.maxSenders) break;
      this.buckets.delete(k);
    }
  }
}
