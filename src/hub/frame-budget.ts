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
  private readonly burst: number;
  private readonly perSecond: number;
  private tokens: number;
  private at: number;
  private dropped = 0;

  constructor(burst: number, perSecond: number, now = Date.now()) {
    this.burst = burst;
    this.perSecond = perSecond;
    this.tokens = burst;
    this.at = now;
  }

  take(now = Date.now()): FrameVerdict {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.perSecond);
    this.at = now;
    if (this.tokens >= this.burst) this.dropped = 0; // calm again: past drops are forgiven
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 'ok';
    }
    this.dropped++;
    if (this.dropped > this.burst) return 'flood';
    return this.dropped === 1 ? 'first-drop' : 'drop';
  }
}
