import { randomBytes } from 'node:crypto';
import type { SignalBus } from '../broker/signals.ts';
import type { Logger } from '../log.ts';
import { PresenceBook, type PresenceChange } from './presence.ts';
import { TokenBucket } from '../token-bucket.ts';
import { KeyThrottle } from './throttle.ts';
import { LIMITS } from '../protocol.ts';

/** A local socket as live signals see it: who it is, and a way to send that may drop. */
export interface SignalPeer {
  readonly user?: string | undefined;
  /** Sends a frame that is worthless later: skipped for a socket that is behind on reading. */
  sendVolatile(frame: Buffer): void;
}

export interface LiveSignalsOptions {
  /** How often this node says it is alive (and so keeps its users present elsewhere). */
  heartbeatMs: number;
  /** A node not heard from for this long is gone: its users leave. */
  ttlMs: number;
  /** The longest a node that starts serving a room waits for the other nodes' presence. */
  queryWaitMs: number;
  /** At most one typing relayed per user and room per this interval. */
  typingIntervalMs: number;
  /** Typing frames one socket may have relayed: a burst, refilled per second (bounds its fan-out work). */
  typingBurst: number;
  typingPerSecond: number;
  /**
   * Typing frames one room may have relayed on this node: a burst, refilled per second. Bounds
   * the fan-out work of a typing storm in a big room (each relay costs one frame per socket);
   * a client showing "several people are typing" needs no more.
   */
  typingRoomBurst: number;
  typingRoomPerSecond: number;
}

export const LIVE_SIGNAL_DEFAULTS: LiveSignalsOptions = {
  heartbeatMs: 4000,
  // 3 heartbeats; plus the 1 s sweep, a dead node's users leave within 13 s (the contract says 15).
  ttlMs: 12_000,
  queryWaitMs: 300,
  typingIntervalMs: LIMITS.typingIntervalMs,
  typingBurst: 4,
  typingPerSecond: 1,
  // A 1,000-socket room costs ~15 ms of CPU per relay here (test/bench/typing-fanout.ts): 3/s keeps
  // a storm under 5% of a core, and still shows every typist of a lively room within seconds.
  typingRoomBurst: 5,
  typingRoomPerSecond: 3,
};

/** What crosses the bus. `n` is the sending node, `a` its address for direct replies. */
type Signal =
  | { k: 'alive'; n: string; a: string }
  | { k: 'hello'; n: string; a: string; s: Record<string, string[]>; ask: string[]; id: string }
  | { k: 'query'; n: string; a: string; ask: string[]; id: string }
  | { k: 'state'; n: string; s: Record<string, string[]>; ask: string[]; id: string }
  | { k: 'join' | 'leave'; n: string; r: string; u: string }
  | { k: 'typing'; n: string; r: string; u: string }
  | { k: 'bye'; n: string };

interface Query {
  ask: string[];
  /** nodes that must still answer before the wait may end early */
  waitingFor: Set<string>;
  /** the wait may not end before this (this node may not know every other node yet) */
  notBefore: number;
  /** receives each answer's users by room */
  onState: ((s: Record<string, string[]>) => void) | undefined;
  done(): void;
  timer: NodeJS.Timeout;
}

interface Room {
  /** local sockets in the room (subscribed or about to be), with whether they already got `subscribed` */
  peers: Map<SignalPeer, boolean>;
  /** resolves when this node knows the room's presence from the other nodes (undefined: known) */
  ready: Promise<void> | undefined;
  /** typing relays this room may still fan out here (created on first use) */
  typing: TokenBucket | undefined;
}

const str = (v: unknown): v is string => typeof v === 'string';
const strings = (v: unknown): v is string[] => Array.isArray(v) && v.every(str);
const roomsOf = (v: unknown): v is Record<string, string[]> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every(strings);

/**
 * Typing and presence across nodes. Keeps the node's local room -> sockets registry for signals,
 * binds the node to a room while it has a local subscriber there (reference-counted), relays
 * typing, and keeps presence as soft state (PresenceBook) fed by the other nodes' join/leave,
 * snapshots and heartbeats. Never touches the log or the store.
 */
export class LiveSignals {
  readonly node = randomBytes(8).toString('hex');
  private readonly bus: SignalBus;
  private readonly log: Logger;
  private readonly opts: LiveSignalsOptions;
  private readonly rooms = new Map<string, Room>();
  private readonly peerRooms = new Map<SignalPeer, Set<string>>();
  private readonly book: PresenceBook;
  private readonly typingThrottle: KeyThrottle;
  private readonly typingBuckets = new WeakMap<SignalPeer, TokenBucket>();
  private readonly queries = new Map<string, Query>();
  /** Until when a query waits its full time: right after (re)connecting, this node does not know the others yet. */
  private discoveryUntil = 0;
  private readonly timers: NodeJS.Timeout[] = [];
  private nextQuery = 0;

  constructor(bus: SignalBus, log: Logger, opts: Partial<LiveSignalsOptions> = {}) {
    this.bus = bus;
    this.log = log;
    this.opts = { ...LIVE_SIGNAL_DEFAULTS, ...opts };
    this.book = new PresenceBook(this.opts.ttlMs, (c) => this.announce(c));
    this.typingThrottle = new KeyThrottle(this.opts.typingIntervalMs);
    bus.onMessage((m) => this.receive(m));
    bus.onConnected(() => this.connected());
    const beat = setInterval(() => {
      const a = this.bus.address;
      if (a) this.bus.toAll({ k: 'alive', n: this.node, a });
    }, this.opts.heartbeatMs);
    const sweep = setInterval(() => this.book.expire(Date.now()), Math.min(1000, this.opts.ttlMs / 4));
    beat.unref();
    sweep.unref();
    this.timers.push(beat, sweep);
  }

  /**
   * `peer` is subscribing to `room`. The node starts serving the room if it did not (binding it
   * and asking the other nodes who is there); the returned promise (if any) resolves once their
   * answers are in or the bounded wait is over, and only then should `subscribed` be sent.
   */
  enter(peer: SignalPeer, room: string): Promise<void> | undefined {
    let r = this.rooms.get(room);
    if (!r) {
      r = { peers: new Map(), ready: undefined, typing: undefined };
      this.rooms.set(room, r);
      this.book.serve(room);
      this.bus.bind(room);
      const asked = this.ask([room]);
      if (asked) {
        const entry = r;
        const ready: Promise<void> = asked.then(() => {
          if (entry.ready === ready) entry.ready = undefined;
        });
        r.ready = ready;
      }
    }
    if (!r.peers.has(peer)) {
      r.peers.set(peer, false);
      let mine = this.peerRooms.get(peer);
      if (!mine) this.peerRooms.set(peer, (mine = new Set()));
      mine.add(room);
    }
    return r.ready;
  }

  /**
   * `peer` is now subscribed (call right before sending `subscribed`): it counts as present,
   * the others hear its join if it is the user's first socket in the room anywhere, and it gets
   * the room's signals from now on. Returns the `presence` frame to send right after `subscribed`.
   */
  activate(peer: SignalPeer, room: string): string {
    if (!this.rooms.get(room)?.peers.has(peer)) void this.enter(peer, room);
    const r = this.rooms.get(room)!;
    if (r.peers.get(peer) !== true) {
      if (peer.user !== undefined && this.book.addLocal(room, peer.user)) {
        this.bus.toRoom(room, { k: 'join', n: this.node, r: room, u: peer.user });
      }
      r.peers.set(peer, true);
    }
    return JSON.stringify({ type: 'presence', room, users: this.book.users(room) });
  }

  /** `peer` left `room` (unsubscribed, refused, or closed). */
  leave(peer: SignalPeer, room: string): void {
    const r = this.rooms.get(room);
    const was = r?.peers.get(peer);
    if (!r || was === undefined) return;
    r.peers.delete(peer);
    const mine = this.peerRooms.get(peer);
    mine?.delete(room);
    if (mine?.size === 0) this.peerRooms.delete(peer);
    if (was && peer.user !== undefined && this.book.removeLocal(room, peer.user)) {
      this.bus.toRoom(room, { k: 'leave', n: this.node, r: room, u: peer.user });
    }
    if (r.peers.size === 0) {
      this.rooms.delete(room);
      this.book.unserve(room);
      this.bus.unbind(room);
    }
  }

  /** `peer` is gone: leaves every room it was in. O(rooms of that peer). */
  leaveAll(peer: SignalPeer): void {
    const mine = this.peerRooms.get(peer);
    if (!mine) return;
    for (const room of [...mine]) this.leave(peer, room);
  }

  /**
   * `peer` (subscribed to `room`, with a user: the caller checks) is typing. Relayed to the
   * room's other users' sockets here and on every other node, unless this user and room relayed
   * one within the interval, or this socket exceeded its typing budget (both silently: typing
   * is a hint, not a request).
   */
  typing(peer: SignalPeer, room: string): void {
    const user = peer.user!;
    const now = Date.now();
    let bucket = this.typingBuckets.get(peer);
    if (!bucket) this.typingBuckets.set(peer, (bucket = TokenBucket.perSecond(this.opts.typingBurst, this.opts.typingPerSecond, now)));
    if (!this.typingThrottle.pass(`${user}\n${room}`, now)) return;
    if (!bucket.take(now)) return;
    // A room in a typing storm relays nothing more from here, to anyone, until its budget refills.
    if (!this.deliverTyping(room, user, now)) return;
    this.bus.toRoom(room, { k: 'typing', n: this.node, r: room, u: user });
  }

  /**
   * Who is in `room` on any node. Known at once for a room this node serves; otherwise it asks
   * the other nodes (without binding the room) and waits for their answers, bounded.
   */
  async presence(room: string): Promise<string[]> {
    const r = this.rooms.get(room);
    if (r) {
      await r.ready;
      return this.book.users(room);
    }
    const users = new Set<string>();
    await this.ask([room], (s) => s[room]?.forEach((u) => users.add(u)));
    return [...users];
  }

  /** Says goodbye (the others drop this node's users at once) and stops the timers. */
  stop(): void {
    for (const t of this.timers) clearInterval(t);
    for (const q of this.queries.values()) q.done();
    if (this.bus.ready()) this.bus.toAll({ k: 'bye', n: this.node });
  }

  get stats(): { rooms: number; peers: number; typingKeys: number; presence: { rooms: number; nodes: number } } {
    return { rooms: this.rooms.size, peers: this.peerRooms.size, typingKeys: this.typingThrottle.size, presence: this.book.stats };
  }

  /** Sends a frame to the room's subscribed sockets here, except the ones of `exceptUser`. */
  private deliver(room: string, frame: string, exceptUser?: string): void {
    const r = this.rooms.get(room);
    if (!r) return;
    let bytes: Buffer | undefined;
    for (const [peer, subscribed] of r.peers) {
      if (!subscribed || (exceptUser !== undefined && peer.user === exceptUser)) continue;
      peer.sendVolatile((bytes ??= Buffer.from(frame)));
    }
  }

  /** Delivers a typing to this node's sockets of the room, unless the room's budget here is spent (false). */
  private deliverTyping(room: string, user: string, now: number): boolean {
    const r = this.rooms.get(room);
    if (!r) return false;
    r.typing ??= TokenBucket.perSecond(this.opts.typingRoomBurst, this.opts.typingRoomPerSecond, now);
    if (!r.typing.take(now)) return false;
    this.deliver(room, JSON.stringify({ type: 'typing', room, user }), user);
    return true;
  }

  private announce(c: PresenceChange): void {
    this.deliver(c.room, JSON.stringify(c));
  }

  /**
   * Asks every node for its users of `ask` (answers go to `onState` as they come). Resolves
   * once every node known alive answered (and this node has been connected long enough to know
   * them), or after `queryWaitMs`. Undefined when there is nobody to wait for.
   */
  private ask(ask: string[], onState?: (s: Record<string, string[]>) => void): Promise<void> | undefined {
    const a = this.bus.address;
    if (!a) return undefined; // broker away: local presence only; `connected` asks again
    const now = Date.now();
    const id = `${this.node}.${this.nextQuery++}`;
    const waitingFor = new Set(this.book.liveNodes(now).filter((n) => n !== this.node));
    this.bus.toAll({ k: 'query', n: this.node, a, ask, id });
    if (waitingFor.size === 0 && now >= this.discoveryUntil) return undefined;
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(q.timer);
        this.queries.delete(id);
        resolve();
      };
      const q: Query = {
        ask,
        waitingFor,
        notBefore: this.discoveryUntil,
        onState,
        done,
        timer: setTimeout(done, this.opts.queryWaitMs),
      };
      this.queries.set(id, q);
      if (waitingFor.size === 0) {
        // Nobody known yet: wait out discovery (bounded by queryWaitMs all the same).
        clearTimeout(q.timer);
        q.timer = setTimeout(done, Math.min(this.opts.queryWaitMs, Math.max(0, this.discoveryUntil - now)));
      }
    });
  }

  /** A fresh queue: rebind every room still served, tell the others everything, ask them everything. */
  private connected(): void {
    const a = this.bus.address;
    if (!a) return;
    this.discoveryUntil = Date.now() + this.opts.queryWaitMs;
    const served = [...this.rooms.keys()];
    for (const room of served) this.bus.bind(room);
    this.bus.toAll({ k: 'hello', n: this.node, a, s: this.book.localSnapshot(), ask: served, id: `${this.node}.hello` });
    this.log.debug({ rooms: served.length }, 'signals connected');
  }

  private receive(m: unknown): void {
    if (typeof m !== 'object' || m === null) return;
    const s = m as Signal;
    if (!str(s.n) || s.n === this.node) return; // our own, echoed by a binding
    const now = Date.now();
    switch (s.k) {
      case 'alive':
        return this.book.seen(s.n, now);
      case 'hello':
        if (!str(s.a) || !roomsOf(s.s) || !strings(s.ask)) return;
        this.book.remoteFullState(s.n, s.s, now);
        return this.answer(s.a, s.ask, s.id);
      case 'query':
        if (!str(s.a) || !strings(s.ask)) return;
        this.book.seen(s.n, now);
        return this.answer(s.a, s.ask, s.id);
      case 'state': {
        if (!roomsOf(s.s) || !strings(s.ask)) return;
        for (const room of s.ask) this.book.remoteState(s.n, room, s.s[room] ?? [], now);
        const q = this.queries.get(s.id);
        if (!q) return;
        q.onState?.(s.s);
        q.waitingFor.delete(s.n);
        if (q.waitingFor.size === 0 && now >= q.notBefore) q.done();
        return;
      }
      case 'join':
        if (str(s.r) && str(s.u)) this.book.remoteJoin(s.n, s.r, s.u, now);
        return;
      case 'leave':
        if (str(s.r) && str(s.u)) this.book.remoteLeave(s.n, s.r, s.u, now);
        return;
      case 'typing':
        if (!str(s.r) || !str(s.u)) return;
        this.book.seen(s.n, now);
        this.deliverTyping(s.r, s.u, now);
        return;
      case 'bye':
        return this.book.dropNode(s.n);
    }
  }

  /** Tells the asking node this node's users of the rooms it asked about (it also learns this node is alive). */
  private answer(to: string, ask: string[], id: unknown): void {
    const s: Record<string, string[]> = {};
    for (const room of ask) {
      const users = this.book.localUsers(room);
      if (users.length > 0) s[room] = users;
    }
    this.bus.toNode(to, { k: 'state', n: this.node, s, ask, id });
  }
}
