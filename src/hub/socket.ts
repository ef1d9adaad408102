import type { WebSocket } from 'ws';
import type { Accept } from '../accept.ts';
import type { Authenticate, Principal } from '../auth/tokens.ts';
import { isRoom, ROOM_RULE } from '../domain/message.ts';
import { AppError, CLOSE, forbiddenRoom, toAppError, type ErrorCode } from '../errors.ts';
import { describeValue, runGuarded } from '../guard.ts';
import type { Logger } from '../log.ts';
import { FrameBudget } from './frame-budget.ts';
import type { MarkRead } from '../mark-read.ts';
import type { Hub, Peer } from './hub.ts';
import type { PreparedFrame } from './prepared-frame.ts';
import { LIMITS } from '../protocol.ts';
import type { LiveSignals, SignalPeer } from './live-signals.ts';

export interface SocketLimits {
  /** Close a socket whose unsent data stays above this many bytes (a reader that does not keep up). */
  maxBufferedBytes: number;
  /** Rooms one socket may be subscribed to at once. */
  maxSubscriptions: number;
  /** Frames a socket may send in a burst, refilled at `framesPerSecond`. */
  frameBurst: number;
  framesPerSecond: number;
  /** How long a socket without an upgrade token has to send its `auth` frame. */
  authTimeoutMs: number;
}

/** What a socket needs besides its limits: the hub, the way in for messages, and auth (absent in open mode). */
export interface SocketServices {
  hub: Hub;
  /** Typing and presence across nodes; absent, the socket has neither (unit tests). */
  live?: LiveSignals | undefined;
  accept: Accept;
  /** Read markers (the `read` frame); through the log like a message. */
  markRead: MarkRead;
  authenticate: Authenticate | undefined;
  /** Counts a user's open sockets; false when the user has no room for another. */
  admit(sub: string): boolean;
  release(sub: string): void;
  /** Told once a socket has closed and left everything (the endpoint's count of sockets, its log line). */
  closed?(peer: SocketPeer, code: number): void;
  log: Logger;
}

/** ws send options of every frame this server sends (text). */
const TEXT = { binary: false } as const;
const NON_NEGATIVE_SAFE_INT = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
// setTimeout's ceiling; a token valid for longer is checked again when this fires.
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Largest `last` on subscribe. */
// Frames a client may send while its auth frame is being verified.
const MAX_EARLY_FRAMES = 32;

type AuthState = { kind: 'open' } | { kind: 'waiting' } | { kind: 'verifying'; early: Buffer[] } | { kind: 'authorized'; principal: Principal };
// The two states without data, one object each for every socket.
const OPEN: AuthState = { kind: 'open' };
const WAITING: AuthState = { kind: 'waiting' };

/** A socket's own part of a handler shared by every socket: `fn(peer, ...args)`. */
type Handler<A extends unknown[]> = (peer: SocketPeer, ...args: A) => unknown;

/** The ws socket carries its peer, so that one listener per event serves every socket (see SocketPeer.listen). */
const PEER = Symbol('peer');
type Carrier = WebSocket & { [PEER]: SocketPeer };

/**
 * One client socket: speaks the JSON frame protocol (auth, subscribe, unsubscribe, publish,
 * ping) and is the hub's Peer. Bounded in what it may cost: buffered bytes, subscriptions, frame
 * rate, and (with auth) sockets per user.
 */
export class SocketPeer implements Peer, SignalPeer {
  private readonly ws: WebSocket;
  private readonly services: SocketServices;
  private readonly limits: SocketLimits;
  private readonly budget: FrameBudget;
  private auth: AuthState;
  private authTimer: NodeJS.Timeout | undefined;
  /** The user this socket counts against (sockets per user), from its first accepted token. */
  private admitted: string | undefined;
  /** Open mode: the user named by `?user=` on the upgrade URL (validated there), if any. */
  private readonly openUser: string | undefined;
  /**
   * Rooms whose subscribe waits for the room's presence (first socket of a room on this node), by
   * attempt. Made on the first such wait: most sockets never wait, and a Map is ~250 bytes.
   */
  private pending: Map<string, object> | undefined;
  alive = true;
  readonly batched: boolean;
  /** The remote address (open mode: the client whose replay budget this socket spends). */
  readonly remote: string | undefined;
  /** When the socket opened (Date.now()). */
  readonly openedAt = Date.now();

  /**
   * `openUser`: open mode's `?user=` (validated by the caller). `batched`: the upgrade URL had
   * `?batch=1` (several frames per WebSocket message, `\n` separated). `remote`: the client's address.
   */
  constructor(ws: WebSocket, services: SocketServices, limits: SocketLimits, openUser?: string, batched = false, remote?: string) {
    this.ws = ws;
    this.remote = remote;
    this.openUser = openUser;
    this.batched = batched;
    this.services = services;
    this.limits = limits;
    this.budget = new FrameBudget(limits.frameBurst, limits.framesPerSecond);
    this.auth = services.authenticate ? WAITING : OPEN;
    (ws as Carrier)[PEER] = this;
    ws.on('message', SocketPeer.listen.message);
    ws.on('pong', SocketPeer.listen.pong);
    ws.on('close', SocketPeer.listen.close);
    ws.on('error', SocketPeer.listen.error);
  }

  /**
   * ws listeners shared by every socket (`this` is the ws, which carries its peer). Closures per
   * socket and event (with guard's) were a third of an idle socket's heap: ~3 KiB of 9 (issue 14).
   */
  private static readonly listen = {
    message(this: WebSocket, data: Buffer, isBinary: boolean): void {
      (this as Carrier)[PEER].contained('socket message', SocketPeer.run.frame, data, isBinary);
    },
    pong(this: WebSocket): void {
      (this as Carrier)[PEER].alive = true;
    },
    close(this: WebSocket, code: number): void {
      const peer = (this as Carrier)[PEER];
      // A failure while closing still takes the socket out of the hub (there is nobody to answer).
      runGuarded(peer.services.log, 'socket close', SocketPeer.run.close, SocketPeer.leaveHub, [peer]);
      // Apart, so that the endpoint forgets the socket even if leaving failed.
      if (peer.services.closed) runGuarded(peer.services.log, 'socket closed', SocketPeer.run.closed, undefined, [peer, code]);
    },
    error(this: WebSocket, err: Error): void {
      (this as Carrier)[PEER].contained('socket error', SocketPeer.run.error, err);
    },
  };

  /** What the shared listeners and timers run for one socket (one function each, not one per call). */
  private static readonly run = {
    frame: (p: SocketPeer, data: Buffer, isBinary: boolean) => p.onFrame(data, isBinary),
    early: (p: SocketPeer, data: Buffer) => p.handle(data),
    close: (p: SocketPeer) => p.onClose(),
    closed: (p: SocketPeer, code: number) => p.services.closed?.(p, code),
    error: (p: SocketPeer, err: Error) => p.services.log.debug({ err }, 'socket error'),
    verify: (p: SocketPeer, token: string) => p.verify(token),
    noAuth: (p: SocketPeer) => p.close(CLOSE.unauthorized, 'no auth frame in time'),
    expiry: (p: SocketPeer, exp: number) => {
      if (p.auth.kind !== 'authorized') return;
      if (Date.now() >= exp * 1000) p.close(CLOSE.unauthorized, 'token expired');
      else p.scheduleExpiry(exp);
    },
  };

  /**
   * Every way into an open socket goes through here (guard's rule): a failure answers `internal`
   * and goes no further. (Closing has its own rule: see listen.close.)
   */
  private contained<A extends unknown[]>(where: string, fn: Handler<A>, ...args: A): void {
    runGuarded(this.services.log, where, fn, SocketPeer.answerInternal, [this, ...args]);
  }

  private static readonly leaveHub = (_err: unknown, peer: SocketPeer, ..._args: unknown[]): void => peer.services.hub.remove(peer);
  private static readonly answerInternal = (_err: unknown, peer: SocketPeer, ..._args: unknown[]): void => peer.sendError(new AppError('internal'));

  get open(): boolean {
    return this.ws.readyState === 1;
  }

  /** Who is on this socket: the token's `sub`; in open mode `?user=`; undefined when anonymous (or not yet authorized). */
  get user(): string | undefined {
    if (this.auth.kind === 'authorized') return this.auth.principal.sub;
    return this.auth.kind === 'open' ? this.openUser : undefined;
  }

  /**
   * Whose replay budget this socket spends: the token's user (all their sockets, on this node),
   * else the remote address (open mode: `?user=` is the client's say-so, an address is not).
   */
  get replayKey(): string | undefined {
    if (this.auth.kind === 'authorized') return `sub:${this.auth.principal.sub}`;
    return this.remote === undefined ? undefined : `ip:${this.remote}`;
  }

  /** Starts the auth handshake: with the upgrade's token if there was one, else waits for an `auth` frame. */
  begin(upgradeToken: string | undefined): void {
    if (this.auth.kind !== 'waiting') return;
    if (upgradeToken !== undefined) return this.contained('socket verify', SocketPeer.run.verify, upgradeToken);
    this.authTimer = setTimeout(SocketPeer.timer.noAuth, this.limits.authTimeoutMs, this);
  }

  /** Timer callbacks shared by every socket (the peer is the timer's argument). */
  private static readonly timer = {
    noAuth: (peer: SocketPeer) => peer.contained('socket auth timer', SocketPeer.run.noAuth),
    expiry: (peer: SocketPeer, exp: number) => peer.contained('socket expiry timer', SocketPeer.run.expiry, exp),
  };

  send(frame: string | Buffer, onFlushed?: (err?: Error) => void): void {
    if (!this.open) {
      onFlushed?.(new Error('socket closed'));
      return;
    }
    this.writeSafely(() => this.ws.send(frame, TEXT, onFlushed));
  }

  /**
   * A frame the hub serialised once for many sockets: its wire bytes go straight to the socket.
   * Safe beside ws's own sends: without permessage-deflate (off on this server) ws never queues
   * a frame, it writes each one to the socket at once, so writes stay in order.
   */
  sendPrepared(frame: PreparedFrame): void {
    const socket = (this.ws as unknown as { _socket?: { write(b: Buffer): boolean } })._socket;
    if (!this.open || !socket) return;
    this.writeSafely(() => socket.write(frame.wire));
  }

  private writeSafely(write: () => unknown): void {
    try {
      write();
    } catch (err) {
      // The hub pushes a batch to many peers in one loop: one peer's failure must not end it
      // (the others would miss messages). This one closes and resumes with its cursor.
      this.services.log.error({ err }, 'socket send failed; closing it');
      this.close(CLOSE.internalError, 'internal error: resume with after');
      return;
    }
    if (this.ws.bufferedAmount > this.limits.maxBufferedBytes) this.closeSlow();
  }

  /** A frame that is worthless later (typing, presence): skipped while the socket is behind on reading. */
  sendVolatile(frame: Buffer): void {
    if (this.open && this.ws.bufferedAmount < this.limits.maxBufferedBytes / 4) this.ws.send(frame, TEXT);
  }

  close(code: number, reason: string): void {
    this.leaveAll();
    if (this.ws.readyState === 0 || this.ws.readyState === 1) this.ws.close(code, reason);
  }

  ping(): void {
    this.ws.ping();
  }

  // ws has no public cork; its socket is the one place to batch writes.
  cork(): void {
    (this.ws as unknown as { _socket?: { cork(): void } })._socket?.cork();
  }

  uncork(): void {
    (this.ws as unknown as { _socket?: { uncork(): void } })._socket?.uncork();
  }

  onClosed(cb: () => void): void {
    if (this.ws.readyState === 3) cb();
    else this.ws.once('close', cb);
  }

  /** Terminates without the closing handshake (dead peers: nothing would answer it). */
  terminate(): void {
    this.leaveAll();
    this.ws.terminate();
  }

  private onClose(): void {
    clearTimeout(this.authTimer);
    this.leaveAll();
    if (this.admitted !== undefined) this.services.release(this.admitted);
    this.admitted = undefined;
    this.auth = WAITING;
  }

  /** Ends every subscription of this socket, live signals included (idempotent). */
  private leaveAll(): void {
    this.services.hub.remove(this);
    this.pending = undefined;
    this.services.live?.leaveAll(this);
  }

  private closeSlow(): void {
    this.services.log.warn({ buffered: this.ws.bufferedAmount }, 'closing a socket that does not read fast enough');
    this.close(CLOSE.tryAgainLater, 'slow consumer: reconnect and resume with after');
    // The close frame queues behind the unread data; do not wait for a reader that never reads.
    const ws = this.ws;
    setTimeout(() => ws.terminate(), 1000).unref();
  }

  private error(code: ErrorCode, message?: string, details?: Record<string, unknown>): void {
    this.sendError(new AppError(code, message, { details }));
  }

  /** An `error` frame carries what the HTTP error body carries (code, message, details). */
  private sendError(err: AppError, extra?: Record<string, unknown>): void {
    this.send(JSON.stringify({ type: 'error', ...err.toJSON().error, ...extra }));
  }

  private async verify(token: string): Promise<void> {
    this.auth = { kind: 'verifying', early: [] };
    let principal: Principal;
    try {
      principal = await this.services.authenticate!(token);
    } catch (err) {
      return this.close(CLOSE.unauthorized, err instanceof AppError ? err.message : 'invalid token');
    }
    if (!this.open) return;
    if (this.admitted !== undefined) {
      // A refresh: same user, new expiry and rooms; subscriptions the new token does not allow end.
      if (principal.sub !== this.admitted) return this.close(CLOSE.unauthorized, 'a refreshed token must have the same sub');
    } else if (this.services.admit(principal.sub)) {
      this.admitted = principal.sub;
    } else {
      return this.close(CLOSE.tooManySockets, 'too many sockets for this user');
    }
    const early = (this.auth as { early?: Buffer[] }).early ?? [];
    this.auth = { kind: 'authorized', principal };
    clearTimeout(this.authTimer);
    this.scheduleExpiry(principal.exp);
    for (const room of this.services.hub.roomsOf(this)) {
      if (!principal.rooms.allows(room)) {
        this.services.hub.unsubscribe(this, room);
        this.services.live?.leave(this, room);
        this.send(JSON.stringify({ type: 'unsubscribed', room }));
      }
    }
    for (const room of [...(this.pending?.keys() ?? [])]) {
      if (!principal.rooms.allows(room)) {
        this.pending!.delete(room);
        this.services.live?.leave(this, room);
      }
    }
    this.send(JSON.stringify({ type: 'authorized', sub: principal.sub, exp: principal.exp }));
    for (const frame of early) this.contained('socket frame', SocketPeer.run.early, frame);
  }

  private scheduleExpiry(exp: number): void {
    const ms = exp * 1000 - Date.now();
    this.authTimer = setTimeout(SocketPeer.timer.expiry, Math.min(Math.max(ms, 0), MAX_TIMER_MS), this, exp);
  }

  private onFrame(data: Buffer, isBinary: boolean): unknown {
    const verdict = this.budget.take();
    if (verdict !== 'ok') {
      // One error frame per episode; a client that keeps flooding is cut off.
      if (verdict === 'first-drop') this.error('rate_limited', 'Too many frames; slow down.');
      else if (verdict === 'flood') this.close(CLOSE.policy, 'too many frames');
      return;
    }
    if (isBinary) return this.error('invalid_frame', 'Frames must be JSON text.');
    if (this.auth.kind === 'verifying') {
      if (this.auth.early.length >= MAX_EARLY_FRAMES) return this.close(CLOSE.policy, 'too many frames before auth');
      this.auth.early.push(data);
      return;
    }
    return this.handle(data);
  }

  /** Returns the promise of the async frames (auth, publish) so that their failure is contained too. */
  private handle(data: Buffer): unknown {
    let frame: unknown;
    try {
      frame = JSON.parse(data.toString('utf8'));
    } catch {
      if (this.auth.kind === 'waiting') return this.close(CLOSE.unauthorized, 'the first frame must be auth');
      return this.error('invalid_frame', 'The frame is not valid JSON.');
    }
    const f = (typeof frame === 'object' && frame !== null && !Array.isArray(frame) ? frame : {}) as Record<string, unknown>;
    if (f.type === 'auth') {
      // Open mode: a client written for token mode still works; its token means nothing here.
      if (this.auth.kind === 'open') return this.send(JSON.stringify({ type: 'authorized', sub: this.openUser ?? null, exp: null }));
      if (typeof f.token !== 'string') return this.close(CLOSE.unauthorized, 'auth needs a token');
      return this.verify(f.token);
    }
    if (this.auth.kind === 'waiting') return this.close(CLOSE.unauthorized, 'the first frame must be auth');
    if (frame !== f) return this.error('invalid_frame', 'A frame must be a JSON object with a "type".');
    switch (f.type) {
      case 'subscribe':
        return this.onSubscribe(f);
      case 'unsubscribe':
        return this.onUnsubscribe(f);
      case 'publish':
        return this.onPublish(f);
      case 'read':
        return void this.onRead(f);
      case 'ping':
        return this.send('{"type":"pong"}');
      case 'typing':
        return this.onTyping(f);
      default:
        // Never serialise what the client sent: a value nested thousands deep makes JSON.stringify throw.
        return this.error('unknown_type', `Unknown frame type ${describeValue(f.type ?? null)}; expected subscribe, unsubscribe, publish, read, typing, auth or ping.`);
    }
  }

  private get principal(): Principal | undefined {
    return this.auth.kind === 'authorized' ? this.auth.principal : undefined;
  }

  /**
   * The socket's user for frames that act as someone (read, typing); an anonymous open-mode
   * socket gets an error frame instead (it may read and post only).
   */
  private requireUser(frameType: string): string | undefined {
    const user = this.user;
    if (user === undefined) {
      this.error('validation_failed', `A ${frameType} frame needs a socket with a user: connect to /ws?user=<name> (open mode) or with a token.`, { field: 'user' });
    }
    return user;
  }

  private validRoom(f: Record<string, unknown>): string | undefined {
    if (typeof f.room === 'string' && isRoom(f.room)) return f.room;
    this.error('validation_failed', `room ${ROOM_RULE}`, { field: 'room' });
    return undefined;
  }

  private onSubscribe(f: Record<string, unknown>): void {
    const room = this.validRoom(f);
    if (room === undefined) return;
    if (f.after !== undefined && !NON_NEGATIVE_SAFE_INT(f.after)) {
      return this.error('validation_failed', 'after must be a seq: a whole number >= 0', { field: 'after', room });
    }
    const last = this.validLast(f, room);
    if (last === null) return;
    if (f.epoch !== undefined) {
      const current = this.services.hub.epoch();
      if (typeof f.epoch !== 'string') return this.error('validation_failed', 'epoch must be a string', { field: 'epoch', room });
      if (current !== null && f.epoch !== current) return this.error('epoch_mismatch', undefined, { room, epoch: current });
    }
    if (this.principal && !this.principal.rooms.allows(room)) {
      return this.sendError(forbiddenRoom(room));
    }
    if (f.after !== undefined || last !== undefined) {
      // A replay costs the history it sends: restarting one still running past the socket's
      // replay budget is refused (the running one goes on), and a socket that keeps at it is cut.
      const verdict = this.services.hub.admitReplay(this, room);
      if (verdict.kind === 'flood') return this.close(CLOSE.policy, 'too many replays');
      if (verdict.kind === 'refused') {
        return this.error('rate_limited', `Replays on this socket are over their byte budget; this subscribe was ignored (the running replay of "${room}" goes on). Retry in ${verdict.retryAfterSeconds} s.`, { room, retryAfter: verdict.retryAfterSeconds });
      }
    }
    const known = this.services.hub.isSubscribed(this, room) || this.pending?.has(room) === true;
    if (!known && this.services.hub.subscriptionCount(this) + (this.pending?.size ?? 0) >= this.limits.maxSubscriptions) {
      return this.error('too_many_subscriptions', `At most ${this.limits.maxSubscriptions} rooms per socket.`, { room });
    }
    // `last` becomes a cursor in the same synchronous turn as the subscribe itself: nothing can
    // be committed between the two, so the hub's replay-then-live rule keeps it exact.
    const after = () => (last !== undefined ? this.services.hub.lastCursor(room, last) : (f.after as number | undefined));
    const live = this.services.live;
    if (!live) return this.services.hub.subscribe(this, room, after());
    // The first socket of a room on this node waits (bounded) for the other nodes' presence, so
    // that the `presence` frame right after `subscribed` is complete.
    const waiting = live.enter(this, room);
    if (!waiting) return this.services.hub.subscribe(this, room, after(), live.activate(this, room));
    const attempt = {};
    (this.pending ??= new Map()).set(room, attempt);
    void waiting.then(() => {
      if (this.pending?.get(room) !== attempt || !this.open) return;
      this.pending.delete(room);
      this.services.hub.subscribe(this, room, after(), live.activate(this, room));
    });
  }

  /** `last` (1-1000, not with `after`); undefined when absent, null when refused (error sent). */
  private validLast(f: Record<string, unknown>, room: string): number | undefined | null {
    if (f.last === undefined) return undefined;
    if (f.after !== undefined) {
      this.error('validation_failed', 'after and last cannot be used together', { field: 'after&last', room });
      return null;
    }
    if (typeof f.last !== 'number' || !Number.isInteger(f.last) || f.last < 1 || f.last > LIMITS.maxLast) {
      this.error('validation_failed', `last must be a whole number from 1 to ${LIMITS.maxLast}`, { field: 'last', room });
      return null;
    }
    return f.last;
  }

  /** `{"type":"read","room","seq"}`: as POST /rooms/{room}/read, as this socket's user. */
  private async onRead(f: Record<string, unknown>): Promise<void> {
    const user = this.requireUser('read');
    if (user === undefined) return;
    const { type: _type, ...input } = f;
    try {
      const accepted = await this.services.markRead({ ...input, user }, this.principal);
      this.send(JSON.stringify({ type: 'accepted', kind: 'read', ...accepted }));
    } catch (err) {
      this.sendError(toAppError(err) ?? new AppError('internal'), { kind: 'read', ...(typeof f.room === 'string' ? { room: f.room } : {}) });
    }
  }

  private onUnsubscribe(f: Record<string, unknown>): void {
    const room = this.validRoom(f);
    if (room === undefined) return;
    this.services.hub.unsubscribe(this, room);
    this.pending?.delete(room);
    this.services.live?.leave(this, room);
    this.send(JSON.stringify({ type: 'unsubscribed', room }));
  }

  /** `typing`: relayed (throttled) to the room's other users on every node; never stored. */
  private onTyping(f: Record<string, unknown>): void {
    const room = this.validRoom(f);
    if (room === undefined) return;
    if (this.principal && !this.principal.rooms.allows(room)) return this.sendError(forbiddenRoom(room));
    if (this.requireUser('typing') === undefined) return;
    if (!this.services.hub.isSubscribed(this, room)) {
      return this.error('not_subscribed', `Subscribe to room "${room}" before sending typing to it.`, { room });
    }
    this.services.live?.typing(this, room);
  }

  private async onPublish(f: Record<string, unknown>): Promise<void> {
    const { type: _type, ...input } = f;
    try {
      const accepted = await this.services.accept(input, this.principal);
      this.send(JSON.stringify({ type: 'accepted', ...accepted }));
    } catch (err) {
      this.sendError(toAppError(err) ?? new AppError('internal'), { ...(typeof input.id === 'string' ? { id: input.id } : {}), ...(typeof input.key === 'string' ? { key: input.key } : {}) });
    }
  }
}
