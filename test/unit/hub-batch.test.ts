import { describe, expect, it } from 'vitest';
import type { Message } from '../../src/domain/message.ts';
import { Hub, type Peer } from '../../src/hub/hub.ts';

/** A peer that records each WebSocket message it was given. */
class FakePeer implements Peer {
  readonly sent: (string | Buffer)[] = [];
  open = true;
  constructor(readonly batched: boolean) {}
  send(frame: string | Buffer): void {
    this.sent.push(frame);
  }
  close(): void {}
  cork(): void {}
  uncork(): void {}
  frames(): Record<string, unknown>[] {
    return this.sent.flatMap((m) => m.toString().split('\n').map((l) => JSON.parse(l)));
  }
}

const msg = (seq: number, room: string, body = `m${seq}`): Message => ({ id: `id${seq}`, room, sender: 's', body, createdAt: '2026-11-22T00:00:00.000Z', seq });
const hub = () => new Hub({ roomPage: () => ({ messages: [], more: false }), roomHead: () => 0, lastCursor: () => 0, epoch: () => 'e' });

describe('Hub.push with batched peers (no broker)', () => {
  it('one WebSocket message per batched peer per batch, frames in log order across rooms', () => {
    const h = hub();
    const plain = new FakePeer(false);
    const both = new FakePeer(true);
    const onlyA = new FakePeer(true);
    const onlyA2 = new FakePeer(true);
    for (const p of [plain, both]) {
      h.subscribe(p, 'a');
      h.subscribe(p, 'b');
    }
    h.subscribe(onlyA, 'a');
    h.subscribe(onlyA2, 'a');
    for (const p of [plain, both, onlyA, onlyA2]) p.sent.length = 0; // the subscribed frames
    const batch = [msg(1, 'a'), msg(2, 'b'), msg(3, 'a'), msg(4, 'c')];
    h.push(batch);
    expect(plain.sent).toHaveLength(3);
    expect(both.sent).toHaveLength(1);
    expect(both.frames()).toEqual(plain.frames());
    expect(both.frames().map((f) => f.seq)).toEqual([1, 2, 3]);
    expect(onlyA.frames().map((f) => f.seq)).toEqual([1, 3]);
    // Sockets that get all of one room's frames share one buffer (joined once).
    expect(onlyA.sent).toHaveLength(1);
    expect(onlyA.sent[0]).toBe(onlyA2.sent[0]);
    expect(onlyA.frames()[0]).toEqual({ type: 'message', ...batch[0] });
  });

  it('a batched peer whose cursor is inside the batch gets only the rest (not the room\'s shared message)', () => {
    let head = 0;
    const h = new Hub({ roomPage: () => ({ messages: [], more: false }), roomHead: () => head, lastCursor: () => 0, epoch: () => 'e' });
    const from0 = new FakePeer(true);
    const from1 = new FakePeer(true);
    h.subscribe(from0, 'a');
    head = 1;
    h.subscribe(from1, 'a'); // live from seq 1: seq 1 is not for it
    from0.sent.length = 0;
    from1.sent.length = 0;
    h.push([msg(1, 'a'), msg(2, 'a')]);
    expect(from0.frames().map((f) => f.seq)).toEqual([1, 2]);
    expect(from1.frames().map((f) => f.seq)).toEqual([2]);
  });

  it('a single-room batched peer that joins a second room keeps getting every frame, in log order', () => {
    const h = hub();
    const p = new FakePeer(true);
    h.subscribe(p, 'a');
    p.sent.length = 0;
    h.push([msg(1, 'a'), msg(2, 'a')]); // one room: the room's shared message
    h.subscribe(p, 'b');
    p.sent.length = 0;
    h.push([msg(3, 'a'), msg(4, 'b'), msg(5, 'a')]); // two rooms: gathered for this socket
    expect(p.sent).toHaveLength(1);
    expect(p.frames().map((f) => f.seq)).toEqual([3, 4, 5]);
    h.unsubscribe(p, 'b');
    p.sent.length = 0;
    h.push([msg(6, 'a'), msg(7, 'b')]);
    expect(p.frames().map((f) => f.seq)).toEqual([6]);
    expect(h.delivered.liveFrames).toBe(2 + 3 + 1);
  });

  it('splits a batch that would exceed 1 MiB into several messages, losing and repeating nothing', () => {
    const h = hub();
    const p = new FakePeer(true);
    h.subscribe(p, 'a');
    p.sent.length = 0;
    const big = 'x'.repeat(300_000);
    h.push([1, 2, 3, 4, 5, 6, 7].map((s) => msg(s, 'a', big)));
    expect(p.sent.length).toBeGreaterThan(1);
    for (const m of p.sent) expect(m.length).toBeLessThanOrEqual(1024 * 1024 + 1000);
    expect(p.frames().map((f) => f.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });
});
