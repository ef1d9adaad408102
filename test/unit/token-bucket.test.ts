import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../../src/token-bucket.ts';

describe('TokenBucket', () => {
  it('starts full, gives exactly its capacity at once, then refills at its rate', () => {
    const t = 1_000_000;
    const b = new TokenBucket(3, 1 / 100, t); // one token per 100 ms
    expect([b.take(t), b.take(t), b.take(t), b.take(t)]).toEqual([true, true, true, false]);
    expect(b.msUntilOne()).toBe(100);
    expect(b.take(t + 99)).toBe(false);
    expect(b.msUntilOne()).toBeCloseTo(1, 9);
    expect(b.take(t + 100)).toBe(true);
    expect(b.take(t + 100)).toBe(false);
  });

  it('never holds more than its capacity, however long it was idle', () => {
    const b = new TokenBucket(2, 1, 0);
    expect(b.refill(1_000_000)).toBe(2);
    expect([b.take(1_000_000), b.take(1_000_000), b.take(1_000_000)]).toEqual([true, true, false]);
  });

  it('fullAt tells whether idle time would refill it, without spending or refilling', () => {
    const b = new TokenBucket(2, 1 / 1000, 0); // one per second
    b.take(0);
    b.take(0);
    expect(b.fullAt(1999)).toBe(false);
    expect(b.fullAt(2000)).toBe(true);
    expect(b.msUntilOne()).toBe(1000); // unchanged: fullAt did not refill
  });

  it('spend may go into debt, which refill pays back before the bucket is positive again', () => {
    const b = TokenBucket.perSecond(1000, 500, 0); // 1000 at once, 500 a second
    b.spend(1600, 0);
    expect(b.refill(0)).toBe(-600);
    expect(b.msUntilPositive()).toBe(1200);
    expect(b.take(1000)).toBe(false); // -100: still in debt
    expect(b.refill(1200)).toBe(0);
    expect(b.msUntilPositive()).toBe(0); // nothing owed
    expect(b.refill(1202)).toBe(1);
    expect(b.msUntilPositive()).toBe(0);
  });

  it('perSecond is the same bucket with the rate given per second', () => {
    const b = TokenBucket.perSecond(2, 4, 0);
    expect(b.perMs).toBe(0.004);
    expect([b.take(0), b.take(0), b.take(0), b.take(250)]).toEqual([true, true, false, true]);
  });
});
