import { describe, expect, it, onTestFinished, vi } from 'vitest';
import type { SignalBus } from '../../src/broker/signals.ts';
import { LiveSignals, type SignalPeer } from '../../src/hub/live-signals.ts';
import { PresenceBook, type PresenceChange } from '../../src/hub/presence.ts';
import { KeyThrottle } from '../../src/hub/throttle.ts';
import { TokenBucket } from '../../src/token-bucket.ts';
import { createLogger } from '../../src/log.ts';

// Unit tier: no broker. The soft-state rules, the throttle, and two LiveSignals joined by an in-memory bus.

describe('PresenceBook', () => {
  const book = () => {
    const changes: PresenceChange[] = [];
    const b = new PresenceBook(1000, (c) => changes.push(c));
    return { b, changes };
  };

  it("a user joins with their first source anywhere and leaves with the last", () => {
    const { b, changes } = book();
    b.serve('r');
    expect(b.addLocal('r', 'ana')).toBe(true);
    expect(b.addLocal('r', 'ana')).toBe(false);
    b.remoteJoin('n2', 'r', 'ana', 0);
    b.remoteJoin('n2', 'r', 'bob', 0);
    expect(b.removeLocal('r', 'ana')).toBe(false);
    expect(b.removeLocal('r', 'ana')).toBe(true); // last local socket, but n2 still holds ana
    expect(b.users('r').sort()).toEqual(['ana', 'bob']);
    b.remoteLeave('n2', 'r', 'ana', 0);
    expect(changes).toEqual([
      { type: 'join', room: 'r', user: 'ana' },
      { type: 'join', room: 'r', user: 'bob' },
      { type: 'leave', room: 'r', user: 'ana' },
    ]);
  });

  it("a node's users leave when its TTL passes without a sign of life, and not before", () => {
    const { b, changes } = book();
    b.serve('r');
    b.remoteState('n2', 'r', ['ana', 'bob'], 0);
    b.seen('n2', 500);
    expect(b.expire(1499)).toEqual([]);
    expect(b.expire(1500)).toEqual(['n2']);
    expect(b.users('r')).toEqual([]);
    expect(changes.filter((c) => c.type === 'leave').map((c) => c.user).sort()).toEqual(['ana', 'bob']);
    expect(b.stats).toEqual({ rooms: 0, nodes: 0 });
  });

  it('a snapshot replaces what the node said before; a full one clears rooms it does not name', () => {
    const { b, changes } = book();
    b.serve('r');
    b.serve('s');
    b.remoteState('n2', 'r', ['ana', 'bob'], 0);
    b.remoteState('n2', 's', ['cy'], 0);
    b.remoteState('n2', 'r', ['bob', 'dee'], 0);
    expect(b.users('r').sort()).toEqual(['bob', 'dee']);
    b.remoteFullState('n2', { r: ['dee'] }, 0);
    expect(b.users('r')).toEqual(['dee']);
    expect(b.users('s')).toEqual([]);
    expect(changes.map((c) => `${c.type} ${c.room} ${c.user}`)).toEqual([
      'join r ana', 'join r bob', 'join s cy', 'leave r ana', 'join r dee', 'leave r bob', 'leave s cy',
    ]);
  });

  it('keeps nothing about rooms it does not serve, and forgets a room silently when it stops serving it', () => {
    const { b, changes } = book();
    b.remoteJoin('n2', 'elsewhere', 'ana', 0);
    expect(b.users('elsewhere')).toEqual([]);
    b.serve('r');
    b.remoteJoin('n2', 'r', 'ana', 0);
    b.unserve('r');
    expect(b.users('r')).toEqual([]);
    expect(b.stats.rooms).toBe(0);
    expect(changes).toEqual([{ type: 'join', room: 'r', user: 'ana' }]);
  });
});

describe('KeyThrottle and TokenBucket', () => {
  it('passes a key at most once per interval', () => {
    const t = new KeyThrottle(2000);
    expect(t.pass('ana r', 0)).toBe(true);
    expect(t.pass('ana r', 1999)).toBe(false);
    expect(t.pass('bob r', 1999)).toBe(true);
    expect(t.pass('ana r', 2000)).toBe(true);
  });

  it('holds only the keys used within the last interval', () => {
    const t = new KeyThrottle(2000);
    for (let i = 0; i < 10_000; i++) t.pass(`user-${i}`, i / 10); // 10,000 keys over 1 s
    expect(t.size).toBe(10_000);
    t.pass('late', 2500);
    expect(t.size).toBe(4999 + 1); // the keys of the last 2 s only (times 500.1 .. 999.9, and the new one)
    t.pass('later', 10_000);
    expect(t.size).toBe(1);
  });

  it('a bucket gives a burst, then its rate', () => {
    const b = TokenBucket.perSecond(2, 1, 0);
    expect([b.take(0), b.take(0), b.take(0)]).toEqual([true, true, false]);
    expect(b.take(999)).toBe(false);
    expect(b.take(1000)).toBe(true);
  });
});

/** An in-memory exchange: the room (or the node-wide key) routes to the buses bound to it. */
function memoryExchange() {
  const buses: { address: string; keys: Set<string>; handler: (m: unknown) => void; connected: () => void }[] = [];
  let up = true;
  const deliver = (to: (typeof buses)[number], msg: object) => queueMicrotask(() => to.handler(JSON.parse(JSON.stringify(msg))));
  return {
    bus(address: string): SignalBus {
      const me = { address, keys: new Set(['~nodes']), handler: (_m: unknown) => {}, connected: () => {} };
      buses.push(me);
      return {
        get address() {
          return up ? address : undefined;
        },
        ready: () => up,
        bind: (room) => void me.keys.add(room),
        unbind: (room) => void me.keys.delete(room),
        toRoom: (room, msg) => up && buses.filter((x) => x.keys.has(room)).forEach((x) => deliver(x, msg)),
        toAll: (msg) => up && buses.forEach((x) => deliver(x, msg)),
        toNode: (to, msg) => up && buses.filter((x) => x.address === to).forEach((x) => deliver(x, msg)),
        onMessage: (h) => void (me.handler = h),
        onConnected: (h) => void (me.connected = h),
        stop: async () => {},
      };
    },
    keysOf: (address: string) => buses.find((x) => x.address === address)!.keys,
    connectAll: () => buses.forEach((x) => x.connected()),
  };
}

const peer = (user?: string) => {
  const frames: Record<string, unknown>[] = [];
  const p: SignalPeer & { frames: typeof frames } = { user, frames, sendVolatile: (f) => void frames.push(JSON.parse(f.toString())) };
  return p;
};

describe('LiveSignals over an in-memory bus', () => {
  const log = createLogger('silent');
  const setup = (queryWaitMs = 200) => {
    const x = memoryExchange();
    const a = new LiveSignals(x.bus('qa'), log, { queryWaitMs });
    const b = new LiveSignals(x.bus('qb'), log, { queryWaitMs });
    x.connectAll();
    return { x, a, b, stop: () => [a, b].forEach((s) => s.stop()) };
  };

  it('binds a room while it has a local subscriber, reference-counted', async () => {
    const { x, a, stop } = setup();
    const p1 = peer('ana');
    const p2 = peer();
    await a.enter(p1, 'r');
    a.activate(p1, 'r');
    await a.enter(p2, 'r');
    a.activate(p2, 'r');
    expect(x.keysOf('qa').has('r')).toBe(true);
    a.leave(p1, 'r');
    expect(x.keysOf('qa').has('r')).toBe(true);
    a.leaveAll(p2);
    expect(x.keysOf('qa').has('r')).toBe(false);
    expect(a.stats.rooms).toBe(0);
    stop();
  });

  it('a node that starts serving a room learns its presence from the others before answering', async () => {
    // The clock is the test's: enter() must resolve because every known node answered, with no
    // time passing, not because the wait ran out (a wall-clock bound here flaked on a busy machine).
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    onTestFinished(() => void vi.useRealTimers());
    const { a, b, stop } = setup(200);
    await vi.advanceTimersByTimeAsync(200); // both nodes past their discovery window, each known to the other
    const ana = peer('ana');
    const anaIn = a.enter(ana, 'r');
    await vi.advanceTimersByTimeAsync(0);
    await anaIn;
    expect(JSON.parse(a.activate(ana, 'r'))).toEqual({ type: 'presence', room: 'r', users: ['ana'] });
    const bob = peer('bob');
    let bobIn = false;
    void b.enter(bob, 'r')?.then(() => (bobIn = true));
    await vi.advanceTimersByTimeAsync(0); // messages delivered, no time passed
    expect(bobIn).toBe(true);
    vi.useRealTimers();
    expect(JSON.parse(b.activate(bob, 'r')).users.sort()).toEqual(['ana', 'bob']);
    await new Promise((r) => setTimeout(r, 0));
    expect(ana.frames).toEqual([{ type: 'join', room: 'r', user: 'bob' }]);
    expect((await a.presence('r')).sort()).toEqual(['ana', 'bob']);
    stop();
  });

  it("typing goes to the room's other users on every node, once per 2 s, never to the sender's sockets", async () => {
    const { a, b, stop } = setup();
    const [ana1, ana2, carl, bob] = [peer('ana'), peer('ana'), peer('carl'), peer('bob')];
    for (const [node, p] of [[a, ana1], [a, ana2], [a, carl], [b, bob]] as const) {
      await node.enter(p, 'r');
      node.activate(p, 'r');
    }
    await new Promise((r) => setTimeout(r, 0));
    const typing = (p: ReturnType<typeof peer>) => p.frames.filter((f) => f.type === 'typing');
    a.typing(ana1, 'r');
    a.typing(ana2, 'r');
    a.typing(ana1, 'r');
    await new Promise((r) => setTimeout(r, 0));
    expect(typing(bob)).toEqual([{ type: 'typing', room: 'r', user: 'ana' }]);
    expect(typing(carl)).toEqual([{ type: 'typing', room: 'r', user: 'ana' }]);
    expect([...typing(ana1), ...typing(ana2)]).toEqual([]);
    stop();
  });

  it('a typing storm in one room is cut to the room budget on every node (bounded fan-out work)', async () => {
    const { a, b, stop } = setup();
    const bob = peer('bob');
    await b.enter(bob, 'big');
    b.activate(bob, 'big');
    const typers = Array.from({ length: 50 }, (_, i) => peer(`t${i}`));
    for (const p of typers) {
      await a.enter(p, 'big');
      a.activate(p, 'big');
    }
    for (const p of typers) a.typing(p, 'big'); // 50 distinct users at once: no per-user throttle applies
    await new Promise((r) => setTimeout(r, 0));
    expect(bob.frames.filter((f) => f.type === 'typing')).toHaveLength(5); // the default burst
    expect(typers[49]!.frames.filter((f) => f.type === 'typing')).toHaveLength(5);
    stop();
  });

  it('a node that stops says goodbye: its users leave at once', async () => {
    const { a, b, stop } = setup();
    const ana = peer('ana');
    const bob = peer('bob');
    await a.enter(ana, 'r');
    a.activate(ana, 'r');
    await b.enter(bob, 'r');
    b.activate(bob, 'r');
    a.stop();
    await new Promise((r) => setTimeout(r, 0));
    expect(bob.frames).toContainEqual({ type: 'leave', room: 'r', user: 'ana' });
    expect(await b.presence('r')).toEqual(['bob']);
    stop();
  });
});
