import { describe, expect, it } from 'vitest';
import type { Message } from '../../src/domain/message.ts';
import { Hub, type Peer } from '../../src/hub/hub.ts';
import { ReplayBucket, ReplayLane, type ReplayBudget, type ReplayStep } from '../../src/hub/replay-lane.ts';
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

  it('lanes sharing a bucket (one client, several sockets) get one budget between them', async () => {
    const clock = new FakeClock();
    const bucket = new ReplayBucket(budget, clock);
    const replays = [1, 2, 3].map(() => new FakeReplay(100 * 1024 * KiB));
    replays.forEach((r, i) => new ReplayLane(budget, clock, bucket).start(`r${i}`, r.step));
    const total = () => replays.reduce((n, r) => n + r.sent, 0);
    for (let ms = 0; ms < 5000; ms += 50) {
      while (replays.some((r) => r.flush())) await turn();
      // One page of debt at most, however many lanes: each checks and charges in one step.
      expect(total()).toBeLessThanOrEqual(budget.burstBytes + (clock.t / 1000) * budget.bytesPerSecond + budget.pageBytes);
      clock.advance(50);
    }
    expect(Math.min(...replays.map((r) => r.sent))).toBeGreaterThan(0); // all of them were served
  });
});

/** A peer for the hub whose writes flush at once; `replayKey` names its client. */
class InstantPeer implements Peer {
  bytes = 0;
  open = true;
  readonly batched = false;
  constructor(readonly replayKey: string | undefined) {}
  send(frame: string | Buffer, onFlushed?: (err?: Error) => void): void {
    if (frame.toString().startsWith('{"type":"message"')) this.bytes += Buffer.byteLength(frame);
    if (onFlushed) setImmediate(onFlushed);
  }
  close(): void {
    this.open = false;
  }
  cork(): void {}
  uncork(): void {}
}

describe('Hub: replay budgets by client', () => {
  const body = 'x'.repeat(4000);
  const history: Message[] = Array.from({ length: 1000 }, (_, i) => ({ id: `m${i + 1}`, room: 'r', sender: 's', body, createdAt: '2026-11-22T00:00:00.000Z', seq: i + 1 }));
  const reader = {
    roomPage: (room: string, after: number, limit: number, maxBytes: number) => {
      const out = history.filter((m) => m.seq > after).slice(0, Math.min(limit, Math.ceil(maxBytes / 4100)));
      return { messages: out, more: out.length > 0 && out[out.length - 1]!.seq < history.length };
    },
    roomHead: () => history.length,
    lastCursor: () => 0,
    epoch: () => 'e',
  };

  /** Lets every page the lanes can send now (the clock stands still) go out. */
  const drain = async () => {
    for (let i = 0; i < 200; i++) await turn();
  };

  it('a client that reconnects finds its bucket as it left it; another client has its own', async () => {
    const clock = new FakeClock();
    const hub = new Hub(reader, budget, clock);
    const first = new InstantPeer('ip:10.0.0.1');
    hub.subscribe(first, 'r', 0);
    await drain();
    expect(first.bytes).toBeGreaterThanOrEqual(budget.burstBytes);
    // Closed (e.g. 1008) and reconnected at once: no fresh burst.
    hub.remove(first);
    const again = new InstantPeer('ip:10.0.0.1');
    hub.subscribe(again, 'r', 0);
    await drain();
    expect(first.bytes + again.bytes).toBeLessThanOrEqual(budget.burstBytes + budget.pageBytes + 4200);
    // Someone else is not held back by it.
    const other = new InstantPeer('ip:10.0.0.2');
    hub.subscribe(other, 'r', 0);
    await drain();
    expect(other.bytes).toBeGreaterThanOrEqual(budget.burstBytes);
    // Once full again and unused, the bucket is forgotten (bounded memory).
    hub.remove(again);
    hub.remove(other);
    clock.advance(60_000);
    hub.subscribe(new InstantPeer('ip:10.0.0.3'), 'r', 0);
    expect(hub.stats.replayClients).toBe(1);
  });
});

