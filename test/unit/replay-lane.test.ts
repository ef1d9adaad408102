import { describe, expect, it } from 'vitest';
import { ReplayLane, type ReplayBudget, type ReplayStep } from '../../src/hub/replay-lane.ts';
import { FakeClock } from '../support/fake-clock.ts';

/** A replay of `total` bytes sent in pages of `maxBytes`; its pages reach the kernel when the test flushes them. */
class FakeReplay {
  sent = 0;
  pages = 0;
  readonly unflushed: ((err?: Error) => void)[] = [];
  constructor(private readonly total: number) {}
  readonly step: ReplayStep = (maxBytes, onFlushed) => {
    const bytes = Math.min(maxBytes, this.total - this.sent);
    this.sent += bytes;
    if (bytes > 0) {
      this.pages++;
      this.unflushed.push(onFlushed);
    }
    return { bytes, done: this.sent === this.total };
  };
  flush(err?: Error): boolean {
    const cb = this.unflushed.shift();
    cb?.(err);
    return cb !== undefined;
  }
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
const KiB = 1024;
const budget: ReplayBudget = { burstBytes: 64 * KiB, bytesPerSecond: 16 * KiB, pageBytes: 8 * KiB, maxRefusals: 3 };

describe('ReplayLane', () => {
  it('sends the first page at once and the next only once the previous one left the process', async () => {
    const lane = new ReplayLane(budget, new FakeClock());
    const a = new FakeReplay(32 * KiB);
    lane.start('a', a.step);
    expect(a.pages).toBe(1);
    await turn();
    expect(a.pages).toBe(1); // nothing more until the flush
    a.flush();
    await turn();
    expect(a.pages).toBe(2);
  });

  it('keeps one page in flight per socket, across rooms, and serves rooms in turn', async () => {
    const lane = new ReplayLane(budget, new FakeClock());
    const a = new FakeReplay(24 * KiB);
    const b = new FakeReplay(24 * KiB);
    lane.start('a', a.step);
    lane.start('b', b.step);
    expect([a.pages, b.pages]).toEqual([1, 0]);
    const order: string[] = [];
    for (;;) {
      const which = a.unflushed.length > 0 ? a : b.unflushed.length > 0 ? b : undefined;
      if (!which) break;
      expect(a.unflushed.length + b.unflushed.length).toBe(1);
      which.flush();
      await turn();
      order.push(a.unflushed.length > 0 ? 'a' : b.unflushed.length > 0 ? 'b' : '-');
    }
    // A room that sent a page goes to the back of the queue; b arrived after a's first page.
    expect(order).toEqual(['a', 'b', 'a', 'b', 'b', '-']);
    expect(lane.pending).toBe(0);
  });

  it('never sends more than the burst plus the refill plus one page, however fast the client reads', async () => {
    const clock = new FakeClock();
    const lane = new ReplayLane(budget, clock);
    const big = new FakeReplay(100 * 1024 * KiB);
    lane.start('a', big.step);
    for (let ms = 0; ms < 10_000; ms += 50) {
      while (big.flush()) await turn();
      expect(big.sent).toBeLessThanOrEqual(budget.burstBytes + (clock.t / 1000) * budget.bytesPerSecond + budget.pageBytes);
      clock.advance(50);
    }
    // And it did keep going at the refill rate (paced, not stopped).
    expect(big.sent).toBeGreaterThanOrEqual(budget.burstBytes + 9 * budget.bytesPerSecond);
  });

  it('a new replay of a room replaces the pending one; the old one is never stepped again', async () => {
    const lane = new ReplayLane(budget, new FakeClock());
    const first = new FakeReplay(40 * KiB);
    const second = new FakeReplay(16 * KiB);
    lane.start('a', first.step);
    lane.start('a', second.step); // first's page is in flight: second waits for it
    expect([first.pages, second.pages]).toEqual([1, 0]);
    first.flush();
    await turn();
    expect([first.pages, second.pages]).toEqual([1, 1]);
    while (second.flush()) await turn();
    expect([first.pages, second.pages]).toEqual([1, 2]);
    expect(lane.pending).toBe(0);
  });

  it('refuses restarts of an unfinished replay once the bucket is spent, then says flood; calm forgives', async () => {
    const clock = new FakeClock();
    const lane = new ReplayLane(budget, clock);
    const big = () => new FakeReplay(10 * 1024 * KiB);
    let current = big();
    lane.start('a', current.step);
    // Restarts within the budget are fine.
    expect(lane.admit('a')).toEqual({ kind: 'ok' });
    // Spend the bucket.
    while (current.flush()) await turn();
    expect(current.sent).toBeGreaterThanOrEqual(budget.burstBytes);
    // Another room is never refused (it is paced instead), nor is a room without a pending replay.
    expect(lane.admit('b')).toEqual({ kind: 'ok' });
    const verdicts = [1, 2, 3, 4].map(() => lane.admit('a').kind);
    expect(verdicts).toEqual(['refused', 'refused', 'refused', 'flood']);
    const v = lane.admit('a');
    expect(v.kind === 'flood' && v.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    // The refused restarts changed nothing: the running replay goes on once the bucket refills.
    const before = current.sent;
    clock.advance(1000);
    await turn();
    expect(current.sent).toBeGreaterThan(before);
    // Calm (no replay, bucket full again): the count starts over.
    lane.cancel('a');
    while (current.flush()) await turn();
    clock.advance(10_000);
    current = big();
    lane.start('a', current.step);
    expect(lane.admit('a')).toEqual({ kind: 'ok' });
  });

  it('after close, or a failed write, nothing more is sent and no timer is left', async () => {
    const clock = new FakeClock();
    const lane = new ReplayLane(budget, clock);
    const a = new FakeReplay(1024 * KiB);
    lane.start('a', a.step);
    while (a.flush()) await turn();
    expect(clock.waiting).toBe(true); // waiting for the refill
    lane.close();
    expect(clock.waiting).toBe(false);
    clock.advance(60_000);
    await turn();
    const pages = a.pages;
    lane.start('a', a.step);
    expect(a.pages).toBe(pages);

    const failing = new ReplayLane(budget, new FakeClock());
    const b = new FakeReplay(1024 * KiB);
    failing.start('b', b.step);
    b.flush(new Error('socket closed'));
    await turn();
    expect(b.pages).toBe(1);
    expect(failing.pending).toBe(0);
  });

  it('an unsubscribed room is dropped; its page in flight still completes and the lane goes on', async () => {
    const lane = new ReplayLane(budget, new FakeClock());
    const a = new FakeReplay(40 * KiB);
    const b = new FakeReplay(8 * KiB);
    lane.start('a', a.step);
    lane.start('b', b.step);
    lane.cancel('a');
    a.flush();
    await turn();
    expect([a.pages, b.pages]).toEqual([1, 1]);
    b.flush();
    await turn();
    expect(lane.pending).toBe(0);
  });
});
