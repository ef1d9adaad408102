import { TokenBucket } from '../token-bucket.ts';

/**
 * Messages per sender per minute, as a token bucket: a sender may spend its whole minute at
 * once, then one message every 60/limit seconds. Shared by HTTP and WebSocket publishing.
 * Memory is bounded: full (idle) buckets are forgotten, and the map never exceeds `maxSenders`.
 */
export class RateLimiter {
  private readonly perMinute: number;
  private readonly maxSenders: number;
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(perMinute: number, maxSenders = 100_000) {
    this.perMinute = perMinute;
    this.maxSenders = maxSenders;
  }

  /** Takes one message from `sender`'s allowance: 0 when allowed, else seconds until it would be. */
  take(sender: string, now = Date.now()): number {
    let bucket = this.buckets.get(sender);
    if (!bucket) {
      if (this.buckets.size >= this.maxSenders) this.sweep(now);
      bucket = new TokenBucket(this.perMinute, this.perMinute / 60_000, now);
      this.buckets.set(sender, bucket);
    }
    if (bucket.take(now)) return 0;
    return Math.max(1, Math.ceil(bucket.msUntilOne() / 1000));
  }

  get size(): number {
    return this.buckets.size;
  }

  private sweep(now: number): void {
    for (const [k, b] of this.buckets) if (b.fullAt(now)) this.buckets.delete(k);
    // Still full of active senders: drop the oldest (Map keeps insertion order).
    for (const k of this.buckets.keys()) {
      if (this.buckets.size < this.maxSenders) break;
      this.buckets.delete(k);
    }
  }
}
