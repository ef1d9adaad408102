import type { Message } from '../domain/message.ts';

/** What the hub needs from storage: committed history of one room, by cursor. */
export interface HistoryReader {
  /** Messages of `room` with seq > after, ascending, at most `limit`. */
  roomPage(room: string, after: number, limit: number): Message[];
  /** Latest seq of `room` on this node, 0 when empty. */
  roomHead(room: string): number;
  /** The log epoch seqs belong to (null while unknown). */
  epoch(): string | null;
}

/** The hub's view of one socket: how to send a frame and whether it is still worth sending to. */
export interface Peer {
  /** Sends one text frame; `onFlushed` runs once it has been handed to the OS. */
  send(frame: string | Buffer, onFlushed?: (err?: Error) => void): void;
  close(code: number, reason: string): void;
  /** Holds writes back until uncork(), so that a batch's frames leave in one system call. */
  cork(): void;
  uncork(): void;
  readonly open: boolean;
}

interface Subscription {
  peer: Peer;
  room: string;
  /** Highest seq sent (or known to be before the subscription began). */
  cursor: number;
  /** false while the replay from storage runs; live pushes are skipped then and read from storage instead. */
  live: boolean;
  closed: boolean;
}

/** Messages sent per replay step; the next step waits until this one reached the kernel. */
const REPLAY_PAGE = 500;

const messageFrame = (m: Message) => `{"type":"message",${JSON.stringify(m).slice(1)}`;

/**
 * Rooms -> subscriptions and peer -> subscriptions (leaving is O(rooms of that peer)).
 *
 * Exactly-once, gap-free delivery rests on one fact: storage commits and `publish` calls happen
 * on this one thread, and `publish` runs only after the commit. A subscription replays committed
 * history page by page while ignoring live pushes, and turns live in the same synchronous step
 * in which it read the last page, so every message is either in a page or pushed live, never
 * both, never neither.
 */
export class Hub {
  private readonly reader: HistoryReader;
  private readonly rooms = new Map<string, Set<Subscription>>();
  private readonly peers = new Map<Peer, Map<string, Subscription>>();

  constructor(reader: HistoryReader) {
    this.reader = reader;
  }

  /** Subscribes `peer` to `room`: answers `subscribed`, then replays seq > after (if given), then goes live. */
  subscribe(peer: Peer, room: string, after?: number): void {
    this.unsubscribe(peer, room);
    const head = this.reader.roomHead(room);
    peer.send(JSON.stringify({ type: 'subscribed', room, head, epoch: this.reader.epoch() }));
    const sub: Subscription = { peer, room, cursor: after ?? head, live: after === undefined, closed: false };
    let set = this.rooms.get(room);
    if (!set) this.rooms.set(room, (set = new Set()));
    set.add(sub);
    let mine = this.peers.get(peer);
    if (!mine) this.peers.set(peer, (mine = new Map()));
    mine.set(room, sub);
    if (!sub.live) this.replay(sub);
  }

  epoch(): string | null {
    return this.reader.epoch();
  }

  unsubscribe(peer: Peer, room: string): boolean {
    const mine = this.peers.get(peer);
    const sub = mine?.get(room);
    if (!sub) return false;
    sub.closed = true;
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
   * batch instead of one per frame.
   */
  publish(messages: readonly Message[]): void {
    const touched = new Set<Peer>();
    for (const m of messages) {
      const set = this.rooms.get(m.room);
      if (!set) continue;
      let frame: Buffer | undefined;
      for (const sub of set) {
        if (!sub.live || m.seq <= sub.cursor || !sub.peer.open) continue;
        frame ??= Buffer.from(messageFrame(m));
        sub.cursor = m.seq;
        if (!touched.has(sub.peer)) {
          touched.add(sub.peer);
          sub.peer.cork();
        }
        sub.peer.send(frame);
      }
    }
    for (const peer of touched) peer.uncork();
  }

  get stats(): { rooms: number; peers: number } {
    return { rooms: this.rooms.size, peers: this.peers.size };
  }

  private replay(sub: Subscription): void {
    if (sub.closed || !sub.peer.open) return;
    const page = this.reader.roomPage(sub.room, sub.cursor, REPLAY_PAGE);
    const full = page.length === REPLAY_PAGE;
    sub.peer.cork(); // the whole page in one write
    for (let i = 0; i < page.length; i++) {
      const last = full && i === page.length - 1;
      // Flow control: the next page is read only once this one has left the process, so a
      // slow reader holds at most one page in memory and others are not starved meanwhile.
      sub.peer.send(messageFrame(page[i]!), last ? (err) => err || setImmediate(() => this.replay(sub)) : undefined);
    }
    sub.peer.uncork();
    if (page.length > 0) sub.cursor = page[page.length - 1]!.seq;
    if (!full) sub.live = true;
  }
}
