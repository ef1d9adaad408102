import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Message } from '../../src/domain/message.ts';
import { Hub, type HistoryReader, type Peer } from '../../src/hub/hub.ts';
import { DEFAULT_REPLAY_BUDGET, type ReplayBudget } from '../../src/hub/replay-lane.ts';
import { FakeClock } from '../support/fake-clock.ts';

/**
 * The hub's promise: a subscriber with a cursor gets every committed message of its room after
 * the cursor exactly once, in seq order, whatever happens meanwhile (commits and pushes while the
 * replay is between pages or waiting for its byte budget, other peers subscribing, the same peer
 * restarting its replay). Checked under randomized interleavings.
 */

const ROOMS = ['a', 'b'] as const;

/** A message's size as the fake store estimates it for page cuts (any estimate must be exact-safe). */
const estimate = (m: Message) => m.body.length + 100;

/** Committed history: what the store holds, in seq order (a fake history reader over it). */
class History implements HistoryReader {
  readonly all: Message[] = [];
  roomPage(room: string, after: number, limit: number, maxBytes: number): { messages: Message[]; more: boolean } {
    const out: Message[] = [];
    let bytes = 0;
    for (const m of this.all) {
      if (m.room !== room || m.seq <= after) continue;
      out.push(m);
      bytes += estimate(m);
      if (out.length === limit || bytes >= maxBytes) return { messages: out, more: true };
    }
    return { messages: out, more: false };
  }
  roomHead(room: string): number {
    for (let i = this.all.length - 1; i >= 0; i--) if (this.all[i]!.room === room) return this.all[i]!.seq;
    return 0;
  }
  lastCursor(room: string, n: number): number {
    const seqs = this.all.filter((m) => m.room === room).map((m) => m.seq);
    return seqs.length < n ? 0 : seqs[seqs.length - n]! - 1;
  }
  epoch(): string {
    return 'e';
  }
  append(rooms: readonly string[]): Message[] {
    const base = this.all.length;
    const added = rooms.map((room, i) => {
      const seq = base + i + 1;
      return { id: `m${seq}`, room, sender: 's', body: `b${seq}`.padEnd(seq % 7 === 0 ? 300 : 2, '.'), createdAt: '2026-11-22T00:00:00.000Z', seq };
    });
    this.all.push(...added);
    return added;
  }
  /** seqs of `room` after `from`, ascending: what a subscription from that cursor must receive. */
  expected(room: string, from: number): number[] {
    return this.all.filter((m) => m.room === room && m.seq > from).map((m) => m.seq);
  }
}

/** A socket whose writes reach the kernel only when the test says so. */
class FakePeer implements Peer {
  readonly sent: string[] = [];
  readonly unflushed: ((err?: Error) => void)[] = [];
  readonly open = true;
  constructor(readonly batched: boolean) {}
  send(frame: string | Buffer, onFlushed?: (err?: Error) => void): void {
    this.sent.push(frame.toString());
    if (onFlushed) this.unflushed.push(onFlushed);
  }
  close(): void {}
  cork(): void {}
  uncork(): void {}
  /**
   * The message seqs of `room`, one list per `subscribed` frame of that room (a re-subscribe
   * starts a new list), in the order received.
   */
  streams(room: string): number[][] {
    const frames = this.sent.flatMap((s) => s.split('\n').map((l) => JSON.parse(l) as { type: string; room: string; seq: number }));
    const out: number[][] = [];
    for (const f of frames) {
      if (f.room !== room) continue;
      if (f.type === 'subscribed') out.push([]);
      else if (f.type === 'message') out[out.length - 1]!.push(f.seq);
    }
    return out;
  }
}

type Action =
  | { type: 'commit'; rooms: string[] }
  | { type: 'subscribe'; peer: number; room: string; after: number | null }
  | { type: 'flush'; peer: number }
  | { type: 'tick'; ms: number };

const PEERS = 4;
const room = fc.constantFrom(...ROOMS);
const actions = (maxCommit: number, maxAfter: number): fc.Arbitrary<Action[]> =>
  fc.array(
    fc.oneof(
      fc.record({ type: fc.constant('commit' as const), rooms: fc.array(room, { minLength: 1, maxLength: maxCommit, size: 'max' }) }),
      fc.record({ type: fc.constant('subscribe' as const), peer: fc.nat(PEERS - 1), room, after: fc.option(fc.nat(maxAfter)) }),
      fc.record({ type: fc.constant('flush' as const), peer: fc.nat(PEERS - 1) }),
      fc.record({ type: fc.constant('tick' as const), ms: fc.integer({ min: 1, max: 400 }) }),
    ),
    { maxLength: 30, size: 'max' },
  );

/** Lets a step the lane scheduled (after a flush) run. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

async function flushOne(peer: FakePeer): Promise<boolean> {
  const cb = peer.unflushed.shift();
  if (!cb) return false;
  cb();
  await turn();
  return true;
}

/**
 * Runs `script` against a hub with `budget` and checks every stream of every (peer, room): the
 * last one is exactly the room's messages after its cursor; one cut short by a re-subscribe is an
 * exact prefix of that (no gap, no duplicate, in order, either way).
 */
async function check(budget: Readonly<ReplayBudget>, initial: string[], batched: boolean[], script: Action[]): Promise<void> {
  const history = new History();
  history.append(initial);
  const clock = new FakeClock();
  const hub = new Hub(history, budget, clock);
  const peers = batched.map((b) => new FakePeer(b));
  /** Each peer's subscriptions per room, in order: the cursor each began from. */
  const cursors = peers.map(() => new Map<string, number[]>());
  for (const a of script) {
    if (a.type === 'commit') {
      // As the Replica does: commit, then push, on one thread.
      hub.push(history.append(a.rooms));
    } else if (a.type === 'subscribe') {
      const peer = peers[a.peer]!;
      // As the socket does: a replay restart over the budget is refused and changes nothing.
      if (a.after !== null && hub.admitReplay(peer, a.room).kind !== 'ok') continue;
      const list = cursors[a.peer]!.get(a.room) ?? [];
      list.push(a.after ?? history.roomHead(a.room));
      cursors[a.peer]!.set(a.room, list);
      hub.subscribe(peer, a.room, a.after ?? undefined);
    } else if (a.type === 'tick') {
      clock.advance(a.ms);
      await turn();
    } else {
      await flushOne(peers[a.peer]!);
    }
  }
  // Every socket drains, waiting out the byte budget where it must.
  for (;;) {
    let flushed = false;
    for (const p of peers) flushed = (await flushOne(p)) || flushed;
    if (flushed) continue;
    if (!clock.waiting) break;
    clock.advance();
    await turn();
  }
  expect(hub.stats.replaysPending).toBe(0);
  peers.forEach((peer, i) => {
    for (const [r, froms] of cursors[i]!) {
      const streams = peer.streams(r);
      expect(streams.length).toBe(froms.length);
      froms.forEach((from, k) => {
        const expected = history.expected(r, from);
        if (k === froms.length - 1) expect(streams[k]).toEqual(expected);
        else expect(streams[k]).toEqual(expected.slice(0, streams[k]!.length));
      });
    }
  });
}

/** The property over random histories, socket kinds and scripts of the given sizes. */
const property = (budget: Readonly<ReplayBudget>, sizes: { initial: number; commit: number; after: number }, numRuns: number) =>
  fc.assert(
    fc.asyncProperty(
      fc.array(room, { maxLength: sizes.initial, size: 'max' }),
      fc.array(fc.boolean(), { minLength: PEERS, maxLength: PEERS }),
      actions(sizes.commit, sizes.after),
      async (initial, batched, script) => check(budget, initial, batched, script),
    ),
    { numRuns },
  );

describe('Hub: replay then live, exactly once', () => {
  it('every subscriber gets each message of its room after its cursor once, in order, under any interleaving', async () => {
    await property(DEFAULT_REPLAY_BUDGET, { initial: 1300, commit: 600, after: 1600 }, 60);
  });

  it('the same holds when replays are paced by a small byte budget and restarted', async () => {
    // Pages of a few messages, a bucket of a few pages: replays wait for flushes and for refills
    // while commits arrive, and re-subscribes replace (or are refused over) running replays.
    const paced: ReplayBudget = { burstBytes: 2000, bytesPerSecond: 4000, pageBytes: 500, maxRefusals: Number.MAX_SAFE_INTEGER };
    await property(paced, { initial: 150, commit: 60, after: 200 }, 100);
  });
});
