import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Message } from '../../src/domain/message.ts';
import { Hub, type HistoryReader, type Peer } from '../../src/hub/hub.ts';

/**
 * The hub's promise: a subscriber with a cursor gets every committed message of its room after
 * the cursor exactly once, in seq order, whatever happens meanwhile (commits and pushes while the
 * replay is between pages, other peers subscribing). Checked under randomized interleavings.
 */

const ROOMS = ['a', 'b'] as const;

/** Committed history: what the store holds, in seq order (a fake history reader over it). */
class History implements HistoryReader {
  readonly all: Message[] = [];
  roomPage(room: string, after: number, limit: number): Message[] {
    const out: Message[] = [];
    for (const m of this.all) {
      if (m.room === room && m.seq > after) out.push(m);
      if (out.length === limit) break;
    }
    return out;
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
      return { id: `m${seq}`, room, sender: 's', body: `b${seq}`, createdAt: '2026-11-22T00:00:00.000Z', seq };
    });
    this.all.push(...added);
    return added;
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
  /** seqs of the message frames of `room`, in the order received. */
  seqs(room: string): number[] {
    const frames = this.sent.flatMap((s) => s.split('\n').map((l) => JSON.parse(l) as { type: string; room: string; seq: number }));
    return frames.filter((f) => f.type === 'message' && f.room === room).map((f) => f.seq);
  }
}

type Action =
  | { type: 'commit'; rooms: string[] }
  | { type: 'subscribe'; peer: number; room: string; after: number | null }
  | { type: 'flush'; peer: number };

const PEERS = 4;
const room = fc.constantFrom(...ROOMS);
const action: fc.Arbitrary<Action> = fc.oneof(
  fc.record({ type: fc.constant('commit' as const), rooms: fc.array(room, { minLength: 1, maxLength: 600, size: 'max' }) }),
  fc.record({ type: fc.constant('subscribe' as const), peer: fc.nat(PEERS - 1), room, after: fc.option(fc.nat(1600)) }),
  fc.record({ type: fc.constant('flush' as const), peer: fc.nat(PEERS - 1) }),
);

/** Lets the replay step a flush scheduled (setImmediate) run. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

async function flushOne(peer: FakePeer): Promise<void> {
  const cb = peer.unflushed.shift();
  if (!cb) return;
  cb();
  await turn();
}

describe('Hub: replay then live, exactly once', () => {
  it('every subscriber gets each message of its room after its cursor once, in order, under any interleaving', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(room, { maxLength: 1300, size: 'max' }),
        fc.array(fc.boolean(), { minLength: PEERS, maxLength: PEERS }),
        fc.array(action, { maxLength: 25 }),
        async (initial, batched, actions) => {
          const history = new History();
          history.append(initial);
          const hub = new Hub(history);
          const peers = batched.map((b) => new FakePeer(b));
          /** Each peer's subscription per room: the cursor it began from. */
          const subscribed = peers.map(() => new Map<string, number>());
          for (const a of actions) {
            if (a.type === 'commit') {
              // As the Replica does: commit, then push, on one thread.
              hub.push(history.append(a.rooms));
            } else if (a.type === 'subscribe') {
              // One subscription per (peer, room): a re-subscribe restarts the stream of frames.
              if (subscribed[a.peer]!.has(a.room)) continue;
              subscribed[a.peer]!.set(a.room, a.after ?? history.roomHead(a.room));
              hub.subscribe(peers[a.peer]!, a.room, a.after ?? undefined);
            } else {
              await flushOne(peers[a.peer]!);
            }
          }
          // Every socket drains.
          while (peers.some((p) => p.unflushed.length > 0)) for (const p of peers) await flushOne(p);
          peers.forEach((peer, i) => {
            for (const [r, from] of subscribed[i]!) {
              const expected = history.all.filter((m) => m.room === r && m.seq > from).map((m) => m.seq);
              expect(peer.seqs(r)).toEqual(expected);
            }
          });
        },
      ),
      { numRuns: 60 },
    );
  });
});
