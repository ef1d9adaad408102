import type { Accepted, BeforePage, ClientFrame, ErrorFrame, SubscribedFrame, WireMessage } from '../protocol.ts';
import { LIMITS } from '../protocol.ts';
import { Emitter } from './emitter.ts';
import { ChatError } from './errors.ts';
import { newKey } from './key.ts';
import { CoalescedWriter, parseCursor, type Cursor, type CursorStorage } from './storage.ts';

export interface RoomOptions {
  /**
   * With no stored cursor, replay the room's last N messages (1-1000) before live ones.
   * Without it (and without a cursor) the room starts live.
   */
  last?: number;
}

/** A message being sent: shown at once, then confirmed by `accepted` (or `failed`). */
export interface PendingMessage {
  key: string;
  room: string;
  body: string;
  sender: string | undefined;
}

export interface RoomEvents {
  /** A stored message: every id once, in ascending seq, across reconnects and node switches. */
  message: (m: WireMessage) => void;
  /** The log was re-created: every cached message and cursor of this room means nothing now. */
  reset: () => void;
  /** This user's read marker moved (from this or another device). */
  read: (e: { room: string; seq: number }) => void;
  /** Another user is typing (at most one signal per user per 2 s; show it for ~3 s). */
  typing: (e: { room: string; user: string }) => void;
  /** The users with at least one socket in the room, after any change. */
  presence: (users: string[]) => void;
  /** The server answered `subscribed` (after every (re)connect). */
  subscribed: (e: { head: number; epoch: string | null }) => void;
  pending: (p: PendingMessage) => void;
  accepted: (a: Accepted) => void;
  failed: (e: { key: string; error: ChatError }) => void;
  /** A server error about this room (e.g. `forbidden`), or a storage failure. */
  error: (err: ChatError) => void;
}

/** What a room needs from its client: a narrow interface, so a room can be tested alone. */
export interface RoomHost {
  readonly user: string | undefined;
  readonly storage: CursorStorage;
  storageKey(room: string): string;
  /** Sends a frame if the socket is up and ready; false otherwise. */
  sendFrame(frame: ClientFrame): boolean;
  /** Whether the socket may send signals (`read`, `typing`): open mode needs `user`. */
  canSignal(): boolean;
  post(body: { room: string; body: string; key: string; sender?: string }): Promise<Accepted>;
  get<T>(path: string, query: Record<string, string | number | undefined>): Promise<T>;
  forget(room: string): void;
}

/**
 * One room on a ChatClient: its cursor (persisted), the replay-then-live subscription it asks
 * for on every connect, and the dedupe that makes delivery exactly-once across reconnects.
 */
export class Room extends Emitter<RoomEvents> {
  readonly name: string;
  private readonly host: RoomHost;
  private readonly opts: RoomOptions;
  private readonly writer: CoalescedWriter;
  private cursorValue: Cursor | undefined;
  /** The cursor from storage has been read (subscribing before that would lose the resume point). */
  readonly loaded: Promise<void>;
  private isLoaded = false;
  /** Subscribed on the current socket (the server answered `subscribed`). */
  private live = false;
  /** The epoch the current subscription announced (a cursor made from its messages belongs to it). */
  private epoch: string | null = null;
  private users = new Set<string>();
  private readWanted = 0;
  private readSent = 0;
  private lastTyping = 0;
  private closed = false;

  constructor(name: string, host: RoomHost, opts: RoomOptions = {}) {
    super();
    if (!LIMITS.room.test(name)) throw new ChatError('validation_failed', `room "${name}" must be 1-64 characters of A-Z a-z 0-9 _ . : -`);
    if (opts.last !== undefined && !(Number.isInteger(opts.last) && opts.last >= 1 && opts.last <= LIMITS.maxLast)) {
      throw new ChatError('validation_failed', `last must be a whole number from 1 to ${LIMITS.maxLast}`);
    }
    this.name = name;
    this.host = host;
    this.opts = opts;
    const key = host.storageKey(name);
    this.writer = new CoalescedWriter(host.storage, key, (err) => this.storageError(err));
    this.loaded = (async () => {
      try {
        this.cursorValue ??= parseCursor(await host.storage.getItem(key));
      } catch (err) {
        this.storageError(err);
      }
      this.isLoaded = true;
    })();
  }

  /** The highest seq delivered (and its epoch), or undefined before the first. */
  get cursor(): Cursor | undefined {
    return this.cursorValue;
  }

  /** Users present in the room (from `presence`, `join` and `leave`). */
  get presence(): string[] {
    return [...this.users];
  }

  /** Sends a message. Resolves with the accepted message; retries with the same key until then. */
  async send(body: string, opts: { key?: string } = {}): Promise<Accepted> {
    const key = opts.key ?? newKey();
    if (!LIMITS.key.test(key)) throw new ChatError('validation_failed', 'key must be 1-64 characters of A-Z a-z 0-9 _ -');
    this.emit('pending', { key, room: this.name, body, sender: this.host.user });
    try {
      const answer = await this.host.post({ room: this.name, body, key, ...(this.host.user !== undefined ? { sender: this.host.user } : {}) });
      const accepted = { ...answer, key: answer.key ?? key };
      this.emit('accepted', accepted);
      return accepted;
    } catch (err) {
      const error = err instanceof ChatError ? err : new ChatError('internal', String(err));
      this.emit('failed', { key, error });
      throw error;
    }
  }

  /** Scrollback: older messages (ascending seq), before `before` (default: from the newest). */
  history(opts: { before?: number; limit?: number } = {}): Promise<BeforePage> {
    return this.host.get<BeforePage>('/messages/before', { room: this.name, before: opts.before, limit: opts.limit });
  }

  /** Marks the room read up to `seq` (sent now, or on the next connect; never backwards). */
  markRead(seq: number): void {
    if (!(Number.isSafeInteger(seq) && seq > 0) || seq <= this.readWanted) return;
    this.readWanted = seq;
    this.flushRead();
  }

  /** Tells the others this user is typing (throttled to one signal per 2 s). */
  typing(): void {
    const now = Date.now();
    if (now - this.lastTyping < LIMITS.typingIntervalMs || !this.live || !this.host.canSignal()) return;
    if (this.host.sendFrame({ type: 'typing', room: this.name })) this.lastTyping = now;
  }

  /** Stops receiving this room (the cursor stays stored for the next time it is opened). */
  leave(): Promise<void> {
    this.closed = true;
    if (this.live) this.host.sendFrame({ type: 'unsubscribe', room: this.name });
    this.live = false;
    this.host.forget(this.name);
    return this.writer.flush();
  }

  // ---- called by the client ----

  /** The subscribe frame for this connect: resume from the cursor, else `last`, else live. */
  subscribeFrame(): ClientFrame | undefined {
    if (this.closed || !this.isLoaded) return undefined;
    const c = this.cursorValue;
    if (c) return { type: 'subscribe', room: this.name, after: c.seq, ...(c.epoch ? { epoch: c.epoch } : {}) };
    if (this.opts.last !== undefined) return { type: 'subscribe', room: this.name, last: this.opts.last };
    return { type: 'subscribe', room: this.name };
  }

  disconnected(): void {
    this.live = false;
    if (this.users.size > 0) {
      this.users.clear();
      this.emit('presence', []);
    }
  }

  onSubscribed(f: SubscribedFrame): void {
    const c = this.cursorValue;
    if (c && c.epoch && f.epoch && c.epoch !== f.epoch) {
      // The server should have refused the cursor (epoch_mismatch); never apply it to another log.
      this.onReset();
      return;
    }
    this.epoch = f.epoch;
    if (c && !c.epoch && f.epoch) this.setCursor({ seq: c.seq, epoch: f.epoch });
    // Live start: remember where "now" was, so a reconnect before the first message misses nothing.
    // With `last` and an empty room the same holds from 0; otherwise the replay sets the cursor.
    if (!c && (this.opts.last === undefined || f.head === 0)) this.setCursor({ seq: this.opts.last === undefined ? f.head : 0, epoch: f.epoch });
    this.live = true;
    this.emit('subscribed', { head: f.head, epoch: f.epoch });
    this.flushRead();
  }

  onMessage(m: WireMessage): void {
    const c = this.cursorValue;
    // seq is the cursor: anything at or below it was delivered already (a replay overlapping a
    // live push, another node's copy after a switch). seq identifies the id, so this is by-id dedupe.
    if (c && m.seq <= c.seq) return;
    this.setCursor({ seq: m.seq, epoch: c?.epoch ?? this.epoch });
    this.emit('message', m);
  }

  /** The log was re-created: forget the cursor, tell the app, subscribe afresh. */
  onReset(): void {
    this.cursorValue = undefined;
    this.epoch = null;
    this.readWanted = 0;
    this.readSent = 0;
    this.writer.write('null');
    this.live = false;
    this.emit('reset');
    const frame = this.subscribeFrame();
    if (frame) this.host.sendFrame(frame);
  }

  onError(f: ErrorFrame): void {
    if (f.code === 'epoch_mismatch') return this.onReset();
    const { type: _t, code, message, ...details } = f;
    this.emit('error', new ChatError(code, message, undefined, details));
  }

  onRead(seq: number): void {
    if (seq > this.readSent) this.readSent = seq;
    if (seq > this.readWanted) this.readWanted = seq;
    this.emit('read', { room: this.name, seq });
  }

  onTyping(user: string): void {
    this.emit('typing', { room: this.name, user });
  }

  onPresence(users: string[]): void {
    this.users = new Set(users);
    this.emit('presence', this.presence);
  }

  onJoinLeave(kind: 'join' | 'leave', user: string): void {
    const had = this.users.has(user);
    if (kind === 'join' && !had) this.users.add(user);
    else if (kind === 'leave' && had) this.users.delete(user);
    else return;
    this.emit('presence', this.presence);
  }

  /** The server ended the subscription (e.g. a refreshed token no longer allows the room). */
  onUnsubscribed(): void {
    this.live = false;
  }

  flush(): Promise<void> {
    return this.writer.flush();
  }

  private flushRead(): void {
    if (this.readWanted <= this.readSent || !this.live || !this.host.canSignal()) return;
    if (this.host.sendFrame({ type: 'read', room: this.name, seq: this.readWanted })) this.readSent = this.readWanted;
  }

  private setCursor(c: Cursor): void {
    this.cursorValue = c;
    this.writer.write(JSON.stringify(c));
  }

  private storageError(err: unknown): void {
    this.emit('error', new ChatError('storage_failed', `cursor storage failed: ${err instanceof Error ? err.message : String(err)}`));
  }
}
