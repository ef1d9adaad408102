import type { Message } from '../domain/message.ts';
import { CLOSE } from '../errors.ts';
import { BATCH_SEPARATOR } from '../protocol.ts';
import { PreparedFrame } from './prepared-frame.ts';
import { DEFAULT_REPLAY_BUDGET, OK, ReplayBucket, ReplayLane, realClock, type LaneClock, type ReplayBudget, type ReplayVerdict } from './replay-lane.ts';

/** What the hub needs from storage: committed history of one room, by cursor. */
export interface HistoryReader {
  /**
   * Messages of `room` with seq > after, ascending: at most `limit`, stopping once about
   * `maxBytes` were read (at least one message). `more` is false only when the page reached the
   * room's latest stored message.
   */
  roomPage(room: string, after: number, limit: number, maxBytes: number): { messages: Message[]; more: boolean };
  /** Latest seq of `room` on this node, 0 when empty. */
  roomHead(room: string): number;
  /** The cursor from which a replay yields the last `n` stored messages of `room`. */
  lastCursor(room: string, n: number): number;
  /** The log epoch seqs belong to (null while unknown). */
  epoch(): string | null;
}

/** The hub's view of one socket: how to send a frame and whether it is still worth sending to. */
export interface Peer {
  /** Sends one text frame; `onFlushed` runs once it has been handed to the OS. */
  send(frame: string | Buffer, onFlushed?: (err?: Error) => void): void;
  /** Sends a frame serialised once for many sockets (its wire bytes as they are); without it, `send(frame.payload)`. */
  sendPrepared?(frame: PreparedFrame): void;
  close(code: number, reason: string): void;
  /** Holds writes back until uncork(), so that a batch's frames leave in one system call. */
  cork(): void;
  uncork(): void;
  readonly open: boolean;
  /**
   * Who is on this socket: the token's `sub`, or in open mode the upgrade URL's `?user=`;
   * undefined for an anonymous open-mode socket (it may read and post, not mark read or type).
   */
  readonly user?: string | undefined;
  /**
   * The client asked for `?batch=1`: several frames may travel in one WebSocket message,
   * separated by `\n` (JSON.stringify never emits a raw newline, so a line is always one frame).
   */
  readonly batched: boolean;
  /**
   * The client whose replay budget this socket spends (its token's user, or in open mode its
   * remote address): its sockets share one, and a reconnect does not refill it. Undefined: the
   * socket has a budget of its own.
   */
  readonly replayKey?: string | undefined;
}

interface Subscription {
  peer: Peer;
  room: string;
  /** Highest seq sent (or known to be before the subscription began). */
  cursor: number;
  /** false while the replay from storage runs; live pushes are skipped then and read from storage instead. */
  live: boolean;
  closed: boolean;
  /** Only during push(): this subscription gets all of its room's frames of the batch, as the room's shared messages. */
  whole: boolean;
}

/** A room of the batch being pushed whose `?batch=1` single-room subscribers get all of its frames. */
interface WholeRoom {
  subs: Subscription[];
  texts: string[];
  bytes: number;
  last: number;
}

/** Most messages in one replay page (its bytes are bounded by the lane's page size too). */
const REPLAY_PAGE = 500;


const messageFrame = (m: Message) => `{"type":"message",${JSON.stringify(m).slice(1)}`;

/** Above this many bytes a batched socket's frames of one batch go in more than one WebSocket message. */
const MAX_BATCH_BYTES = 1024 * 1024;

/** One batched peer's frames of the batch being pushed, in log order. */
interface Pending {
  frames: string[];
  bytes: number;
  /** The one room all of them came from, or null once they come from several. */
  room: string | null;
}

/** `frames` joined by `\n` into as few messages as keep each under `maxBytes` (as a batched socket's frames are split). */
function joinedUpTo(frames: readonly string[], maxBytes: number): PreparedFrame[] {
  const out: PreparedFrame[] = [];
  let start = 0;
  let size = 0;
  for (let i = 0; i < frames.length; i++) {
    if (i > start && size + frames[i]!.length > maxBytes) {
      out.push(new PreparedFrame(Buffer.from(frames.slice(start, i).join(BATCH_SEPARATOR))));
      start = i;
      size = 0;
    }
    size += frames[i]!.length + (i > start ? 1 : 0);
  }
  if (frames.length > start) out.push(new PreparedFrame(Buffer.from(frames.slice(start).join(BATCH_SEPARATOR))));
  return out;
}

const sendLines = (peer: Peer, frames: string[]) => {
  if (frames.length > 0) peer.send(frames.length === 1 ? frames[0]! : frames.join(BATCH_SEPARATOR));
};

/** One room's frames of the batch being pushed, in log order, and their joined form once built. */
interface RoomFrames {
  frames: string[];
  joined?: PreparedFrame;
}

const sendPrepared = (peer: Peer, frame: PreparedFrame) => {
  if (peer.sendPrepared) peer.sendPrepared(frame);
  else peer.send(frame.payload);
};

/**
 * Rooms -> subscriptions and peer -> subscriptions (leaving is O(rooms of that peer)).
 *
 * Exactly-once, gap-free delivery rests on one fact: storage commits and `push` calls happen
 * on this one thread, and `push` runs only after the commit. A subscription replays committed
 * history page by page while ignoring live pushes, and turns live in the same synchronous step
 * in which it read the last page, so every message is either in a page or pushed live, never
 * both, never neither. The pages of a peer's replays go through its ReplayLane (one page in
 * flight per peer, charged by bytes); pacing only delays the next page, the rule is unchanged.
 */
export class Hub {
  private readonly reader: HistoryReader;
  private readonly rooms = new Map<string, Set<Subscription>>();
  private readonly peers = new Map<Peer, Map<string, Subscription>>();
  /** Each peer's replay lane, from its first replay until it is removed (its budget outlives unsubscribes). */
  private readonly lanes = new Map<Peer, { lane: ReplayLane; key: string | undefined }>();
  /** Replay buckets by client (Peer.replayKey), with how many lanes use each; kept after the last one closes until full again. */
  private readonly buckets = new Map<string, { bucket: ReplayBucket; lanes: number }>();
  private sweptAt = 0;
  private readonly budget: Readonly<ReplayBudget>;
  private readonly clock: LaneClock;
  /** Message frames and bytes handed to sockets, by path; plain numbers read by the metrics at scrape. */
  readonly delivered = { liveFrames: 0, liveBytes: 0, replayFrames: 0, replayBytes: 0 };
  /** Subscribes by how they start (metrics: catch-up requests by kind). */
  readonly subscribes = { after: 0, last: 0, live: 0 };

  constructor(reader: HistoryReader, budget: Readonly<ReplayBudget> = DEFAULT_REPLAY_BUDGET, clock: LaneClock = realClock) {
    this.reader = reader;
    this.budget = budget;
    this.clock = clock;
  }

  /**
   * Whether `peer` may (re)start a replay of `room` now. Ask before a subscribe with a cursor; a
   * refusal means do not subscribe (the pending replay goes on), `flood` means close the peer.
   */
  admitReplay(peer: Peer, room: string): ReplayVerdict {
    return this.lanes.get(peer)?.lane.admit(room) ?? OK;
  }

  /**
   * Subscribes `peer` to `room`: answers `subscribed` (then `afterSubscribed`, if given: the
   * room's presence), then replays seq > after (if given), then goes live.
   */
  subscribe(peer: Peer, room: string, after?: number, afterSubscribed?: string): void {
    this.unsubscribe(peer, room);
    const head = this.reader.roomHead(room);
    peer.send(JSON.stringify({ type: 'subscribed', room, head, epoch: this.reader.epoch() }));
    if (afterSubscribed !== undefined) peer.send(afterSubscribed);
    const sub: Subscription = { peer, room, cursor: after ?? head, live: after === undefined, closed: false, whole: false };
    if (after === undefined) this.subscribes.live++;
    else this.subscribes.after++;
    let set = this.rooms.get(room);
    if (!set) this.rooms.set(room, (set = new Set()));
    set.add(sub);
    let mine = this.peers.get(peer);
    if (!mine) this.peers.set(peer, (mine = new Map()));
    mine.set(room, sub);
    if (!sub.live) this.laneOf(peer).start(room, (maxBytes, onFlushed) => this.replayStep(sub, maxBytes, onFlushed));
  }

  private laneOf(peer: Peer): ReplayLane {
    const have = this.lanes.get(peer);
    if (have) return have.lane;
    const key = peer.replayKey;
    const lane = new ReplayLane(this.budget, this.clock, key === undefined ? undefined : this.bucketOf(key));
    this.lanes.set(peer, { lane, key });
    return lane;
  }

  /** The client's bucket, shared by its lanes; a reconnecting client finds the one it left. */
  private bucketOf(key: string): ReplayBucket {
    this.sweepBuckets();
    let entry = this.buckets.get(key);
    if (!entry) this.buckets.set(key, (entry = { bucket: new ReplayBucket(this.budget, this.clock), lanes: 0 }));
    entry.lanes++;
    return entry.bucket;
  }

  /** Forgets (at most once a second) the buckets no socket uses that are full again: a new one would be the same. */
  private sweepBuckets(): void {
    const now = this.clock.now();
    if (now - this.sweptAt < 1000) return;
    this.sweptAt = now;
    for (const [key, entry] of this.buckets) if (entry.lanes === 0 && entry.bucket.full) this.buckets.delete(key);
  }

  epoch(): string | null {
    return this.reader.epoch();
  }

  /** The `after` that replays the last `n` stored messages of `room` (read in the same turn as subscribe). */
  lastCursor(room: string, n: number): number {
    // Always followed, in the same turn, by subscribe(…, after) which counts an `after`: count it as `last` instead.
    this.subscribes.last++;
    this.subscribes.after--;
    return this.reader.lastCursor(room, n);
  }

  unsubscribe(peer: Peer, room: string): boolean {
    const mine = this.peers.get(peer);
    const sub = mine?.get(room);
    if (!sub) return false;
    sub.closed = true;
    this.lanes.get(peer)?.lane.cancel(room);
    mine!.delete(room);
    if (mine!.size === 0) this.peers.delete(peer);
    const set = this.rooms.get(room)!;
    set.delete(sub);
    if (set.size === 0) this.rooms.delete(room);
    return true;
  }

  roomsOf(peer: Peer): string[] {
    return [...(this.peers.get(peer)?.keys() ?? [])];
  }

  subscriptionCount(peer: Peer): number {
    return this.peers.get(peer)?.size ?? 0;
  }

  isSubscribed(peer: Peer, room: string): boolean {
    return this.peers.get(peer)?.has(room) ?? false;
  }

  /** Forgets a peer entirely (socket closed). */
  remove(peer: Peer): void {
    const own = this.lanes.get(peer);
    if (own) {
      own.lane.close();
      this.lanes.delete(peer);
      const entry = own.key === undefined ? undefined : this.buckets.get(own.key);
      if (entry) entry.lanes--;
    }
    const mine = this.peers.get(peer);
    if (!mine) return;
    for (const room of [...mine.keys()]) this.unsubscribe(peer, room);
  }

  /** Closes every subscribed peer (their cursors no longer mean anything, e.g. after a log reset). */
  disconnectAll(code: number, reason: string): void {
    for (const peer of [...this.peers.keys()]) {
      this.remove(peer);
      peer.close(code, reason);
    }
  }

  /**
   * Pushes newly committed messages (ascending seq) to live subscribers. Each frame is serialised
   * once for all its sockets, and each socket is corked for the batch: one write per socket per
   * batch instead of one per frame. A batched socket gets its frames of the batch as one
   * WebSocket message; a socket in one room that gets all of that room's frames (the common
   * case) shares one joined buffer with every other such socket of the room.
   */
  push(messages: readonly Message[]): void {
    const touched = new Set<Peer>();
    let pending: Map<Peer, Pending> | undefined;
    let byRoom: Map<string, RoomFrames> | undefined;
    let frames = 0;
    let bytes = 0;
    const wholeRooms = this.wholeRooms(messages);
    for (const m of messages) {
      const set = this.rooms.get(m.room);
      if (!set) continue;
      let text: string | undefined;
      let textBytes = 0;
      let frame: PreparedFrame | undefined;
      let roomFrames: RoomFrames | undefined;
      const whole = wholeRooms?.get(m.room);
      if (whole) {
        text = messageFrame(m);
        textBytes = Buffer.byteLength(text);
        whole.texts.push(text);
        whole.bytes += textBytes;
        whole.last = m.seq;
      }
      for (const sub of set) {
        if (sub.whole || !sub.live || m.seq <= sub.cursor || !sub.peer.open) continue;
        if (text === undefined) {
          text = messageFrame(m);
          textBytes = Buffer.byteLength(text);
        }
        frames++;
        bytes += textBytes;
        sub.cursor = m.seq;
        const peer = sub.peer;
        if (peer.batched) {
          if (!roomFrames) {
            byRoom ??= new Map();
            roomFrames = byRoom.get(m.room);
            if (!roomFrames) byRoom.set(m.room, (roomFrames = { frames: [] }));
            roomFrames.frames.push(text);
          }
          pending ??= new Map();
          const p = pending.get(peer);
          if (!p) pending.set(peer, { frames: [text], bytes: text.length, room: m.room });
          else {
            if (p.bytes + text.length > MAX_BATCH_BYTES) {
              // Send what this socket has so far; the rest no longer matches the room's whole list.
              sendLines(peer, p.frames);
              p.frames = [];
              p.bytes = 0;
              p.room = null;
            }
            p.frames.push(text);
            p.bytes += text.length + 1;
            if (p.room !== m.room) p.room = null;
          }
          continue;
        }
        frame ??= new PreparedFrame(Buffer.from(text));
        if (!touched.has(peer)) {
          touched.add(peer);
          peer.cork();
        }
        sendPrepared(peer, frame);
      }
    }
    if (pending) {
      for (const [peer, p] of pending) {
        const room = p.room === null ? undefined : byRoom!.get(p.room)!;
        if (room && room.frames.length === p.frames.length) sendPrepared(peer, (room.joined ??= new PreparedFrame(Buffer.from(room.frames.join(BATCH_SEPARATOR)))));
        else sendLines(peer, p.frames);
      }
    }
    if (wholeRooms) {
      for (const w of wholeRooms.values()) {
        const messagesOfRoom = joinedUpTo(w.texts, MAX_BATCH_BYTES);
        for (const sub of w.subs) {
          sub.whole = false;
          for (const joined of messagesOfRoom) sendPrepared(sub.peer, joined);
          sub.cursor = w.last;
        }
        frames += w.texts.length * w.subs.length;
        bytes += w.bytes * w.subs.length;
      }
    }
    for (const peer of touched) peer.uncork();
    this.delivered.liveFrames += frames;
    this.delivered.liveBytes += bytes;
  }

  /**
   * The batch's rooms whose `?batch=1` subscribers on a single room, live and behind the room's
   * first message of the batch, get every frame of the room in it: those are sent the room's
   * frames joined once for all of them (no per-socket gathering), and marked `whole` until then.
   */
  private wholeRooms(messages: readonly Message[]): Map<string, WholeRoom> | undefined {
    let first: Map<string, number> | undefined;
    for (const m of messages) {
      if (!this.rooms.has(m.room)) continue;
      first ??= new Map();
      if (!first.has(m.room)) first.set(m.room, m.seq);
    }
    if (!first) return undefined;
    let whole: Map<string, WholeRoom> | undefined;
    for (const [room, seq] of first) {
      for (const sub of this.rooms.get(room)!) {
        if (!sub.peer.batched || !sub.live || sub.cursor >= seq || !sub.peer.open || this.peers.get(sub.peer)?.size !== 1) continue;
        whole ??= new Map();
        let w = whole.get(room);
        if (!w) whole.set(room, (w = { subs: [], texts: [], bytes: 0, last: sub.cursor }));
        w.subs.push(sub);
        sub.whole = true;
      }
    }
    return whole;
  }

  /**
   * Read markers that moved (after their commit): each goes to the sockets of that same user
   * subscribed to that room (multi-device sync), on every node since every node applies the log.
   */
  publishReads(moves: readonly { user: string; room: string; seq: number }[]): void {
    for (const move of moves) {
      const set = this.rooms.get(move.room);
      if (!set) continue;
      let frame: string | undefined;
      for (const sub of set) {
        if (sub.peer.user !== move.user || !sub.peer.open) continue;
        frame ??= JSON.stringify({ type: 'read', room: move.room, seq: move.seq });
        sub.peer.send(frame);
      }
    }
  }

  get stats(): { rooms: number; peers: number; subscriptions: number; replaysPending: number; replayClients: number } {
    let subscriptions = 0;
    for (const set of this.rooms.values()) subscriptions += set.size;
    let replaysPending = 0;
    for (const { lane } of this.lanes.values()) replaysPending += lane.pending;
    return { rooms: this.rooms.size, peers: this.peers.size, subscriptions, replaysPending, replayClients: this.buckets.size };
  }

  /**
   * One page of `sub`'s replay, run by its peer's lane (at once or later, from a timer or a
   * write callback). If it fails (storage closed under it), only that peer is dropped; it
   * resumes with its cursor.
   */
  private replayStep(sub: Subscription, maxBytes: number, onFlushed: (err?: Error) => void): { bytes: number; done: boolean } {
    try {
      return this.replayPage(sub, maxBytes, onFlushed);
    } catch {
      this.remove(sub.peer);
      try {
        sub.peer.close(CLOSE.internalError, 'internal error: resume with after');
      } catch {
        // nothing more can be done for this peer
      }
      return { bytes: 0, done: true };
    }
  }

  private replayPage(sub: Subscription, maxBytes: number, onFlushed: (err?: Error) => void): { bytes: number; done: boolean } {
    if (sub.closed || !sub.peer.open) return { bytes: 0, done: true };
    const { messages: page, more } = this.reader.roomPage(sub.room, sub.cursor, REPLAY_PAGE, maxBytes);
    let bytes = 0;
    if (sub.peer.batched) {
      // The whole page in one WebSocket message.
      if (page.length > 0) {
        const joined = page.map(messageFrame).join(BATCH_SEPARATOR);
        bytes = Buffer.byteLength(joined);
        sub.peer.send(joined, onFlushed);
      }
    } else {
      sub.peer.cork(); // the whole page in one write
      for (let i = 0; i < page.length; i++) {
        const frame = messageFrame(page[i]!);
        bytes += Buffer.byteLength(frame);
        sub.peer.send(frame, i === page.length - 1 ? onFlushed : undefined);
      }
      sub.peer.uncork();
    }
    this.delivered.replayFrames += page.length;
    this.delivered.replayBytes += bytes;
    if (page.length > 0) sub.cursor = page[page.length - 1]!.seq;
    // Caught up in the same synchronous step as this read: live from here, nothing in between.
    if (!more) sub.live = true;
    return { bytes, done: !more };
  }
}
