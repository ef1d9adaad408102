import { describe, expect, it } from 'vitest';
import { RateLimiter } from '../../src/auth/rate-limit.ts';

describe('RateLimiter (per sender, per minute)', () => {
  it('allows a minute’s worth at once, then one message per 60/limit seconds, with the wait to tell', () => {
    const limiter = new RateLimiter(6); // one every 10 s after the burst
    const t = 1_000_000;
    for (let i = 0; i < 6; i++) expect(limiter.take('ana', t)).toBe(0);
    expect(limiter.take('ana', t)).toBe(10);
    expect(limiter.take('ana', t + 9_000)).toBe(1);
    expect(limiter.take('ana', t + 10_000)).toBe(0);
    expect(limiter.take('bea', t)).toBe(0); // senders do not share
  });

  it('keeps memory bounded: idle senders are forgotten, and the map never exceeds its size', () => {
    // One message a minute: a sender still remembered has to wait; a forgotten one starts afresh.
    const limiter = new RateLimiter(1, 3);
    for (const s of ['a', 'b', 'c']) limiter.take(s, 0);
    limiter.take('d', 60_000); // a, b and c have refilled: swept
    expect(limiter.size).toBe(1);
    for (const s of ['e', 'f', 'g', 'h']) limiter.take(s, 60_000); // all active: the oldest (d, e) go
    expect(limiter.size).toBe(3);
    expect(['f', 'g', 'h'].map((s) => limiter.take(s, 60_000))).toEqual([60, 60, 60]);
    expect(limiter.size).toBe(3);
    expect(limiter.take('d', 60_000)).toBe(0);
    expect(limiter.take('e', 60_000)).toBe(0);
    expect(limiter.size).toBe(3);
  });
});
