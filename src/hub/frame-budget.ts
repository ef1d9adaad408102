import { TokenBucket } from '../token-bucket.ts';

/** What a socket's frame budget says about one incoming frame. */
export type FrameVerdict = 'ok' | 'first-drop' | 'drop' | 'flood';

/**
 * Frames one socket may send: a token bucket (`burst` at once, refilled at `perSecond`), plus a
 * flood detector. Dropped frames accumulate until the client has been calm long enough for the
 * bucket to be full again; past `burst` of them the socket is flooding. (Resetting the count at
 * each refill, as before, let a steady one-frame-per-millisecond flood run forever: each refill
 * admitted one frame and forgot the drops.)
 */
export class FrameBudget {
  private readonly bucket: TokenBucket;
  private dropped = 0;

  constructor(burst: number, perSecond: number, now = Date.now()) {
    this.bucket = TokenBucket.perSecond(burst, perSecond, now);
  }

  take(now = Date.now()): FrameVerdict {
    if (this.bucket.refill(now) >= this.bucket.capacity) this.dropped = 0; // calm again: past drops are forgiven
    if (this.bucket.take(now)) return 'ok';
    this.dropped++;
    if (this.dropped > this.bucket.capacity) return 'flood';
    return this.dropped === 1 ? 'first-drop' : 'drop';
  }
}
