import type { WebSocket } from 'ws';
import type { Accept } from '../accept.ts';
import type { Principal } from '../auth/tokens.ts';
import { isRoom, ROOM_RULE } from '../domain/message.ts';
import { AppError, CLOSE, forbiddenRoom, type ErrorCode } from '../errors.ts';
import type { Authenticate } from '../http/auth.ts';
import type { Logger } from '../log.ts';
import type { Hub, Peer } from './hub.ts';

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
  accept: Accept;
  authenticate: Authenticate | undefined;
  /** Counts a user's open sockets; false when the user has no room for another. */
  admit(sub: string): boolean;
  release(sub: string): void;
  log: Logger;
}

const NON_NEGATIVE_SAFE_INT = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
// setTimeout's ceiling; a token valid for longer is checked again when this fires.
const MAX_TIMER_MS = 2 ** 31 - 1;
// Frames a client may send while its auth frame is being verified.
const MAX_EARLY_FRAMES = 32;

type AuthState = { kind: 'open' } | { kind: 'waiting' } | { kind: 'verifying'; early: Buffer[] } | { kind: 'authorized'; principal: Principal };

/**
 * One client socket: speaks the JSON frame protocol (auth, subscribe, unsubscribe, publish,
 * ping) and is the hub's Peer. Bounded in what it may cost: buffered bytes, subscriptions, frame
 * rate, and (with auth) sockets per user.
 */
export class SocketPeer implements Peer {
  private readonly ws: WebSocket;
  private readonly s: SocketServices;
  private readonly limits: SocketLimits;
  private tokens: number;
  private refilledAt = Date.now();
  private dropped = 0;
  private auth: AuthState;
  private authTimer: NodeJS.Timeout | undefined;
  /** The user this socket counts against (sockets per user), from its first accepted token. */
  private admitted: string | undefined;
  alive = true;

  constructor(ws: WebSocket, services: SocketServices, limits: SocketLimits) {
    this.ws = ws;
    this.s = services;
    this.limits = limits;
    this.tokens = limits.frameBurst;
    this.auth = services.authenticate ? { kind: 'waiting' } : { kind: 'open' };
    ws.on('message', (data, isBinary) => this.onFrame(data as Buffer, isBinary));
    ws.on('pong', () => (this.alive = true));
    ws.on('close', () => this.onClose());
    ws.on('error', (err) => services.log.debug({ err: err.message }, 'socket error'));
  }

  get open(): boolean {
    return this.ws.readyState === 1;
  }

  /** Starts the auth handshake: with the upgrade's token if there was one, else waits for an `auth` frame. */
  begin(upgradeToken: string | undefined): void {
    if (this.auth.kind !== 'waiting') return;
    if (upgradeToken !== undefined) return void this.verify(upgradeToken);
    this.authTimer = setTimeout(() => this.close(CLOSE.unauthorized, 'no auth frame in time'), this.limits.authTimeoutMs);
  }

  send(frame: string | Buffer, onFlushed?: (err?: Error) => void): void {
    if (!this.open) {
      onFlushed?.(new Error('socket closed'));
      return;
    }
    this.ws.send(frame, { binary: false }, onFlushed);
    if (this.ws.bufferedAmount > this.limits.maxBufferedBytes) this.closeSlow();
  }

  close(code: number, reason: string): void {
    this.s.hub.remove(this);
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
    this.s.hub.remove(this);
    this.ws.terminate();
  }

  private onClose(): void {
    clearTimeout(this.authTimer);
    this.s.hub.remove(this);
    if (this.admitted !== undefined) this.s.release(this.admitted);
    this.admitted = undefined;
    this.auth = { kind: 'waiting' };
  }

  private closeSlow(): void {
    this.s.log.warn({ buffered: this.ws.bufferedAmount }, 'closing a socket that does not read fast enough');
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
      principal = await this.s.authenticate!(token);
    } catch (err) {
      return this.close(CLOSE.unauthorized, err instanceof AppError ? err.message : 'invalid token');
    }
    if (!this.open) return;
    if (this.admitted !== undefined) {
      // A refresh: same user, new expiry and rooms; subscriptions the new token does not allow end.
      if (principal.sub !== this.admitted) return this.close(CLOSE.unauthorized, 'a refreshed token must have the same sub');
    } else if (this.s.admit(principal.sub)) {
      this.admitted = principal.sub;
    } else {
      return this.close(CLOSE.tooManySockets, 'too many sockets for this user');
    }
    const early = (this.auth as { early?: Buffer[] }).early ?? [];
    this.auth = { kind: 'authorized', principal };
    clearTimeout(this.authTimer);
    this.scheduleExpiry(principal.exp);
    for (const room of this.s.hub.roomsOf(this)) {
      if (!principal.rooms.allows(room)) {
        this.s.hub.unsubscribe(this, room);
        this.send(JSON.stringify({ type: 'unsubscribed', room }));
      }
    }
    this.send(JSON.stringify({ type: 'authorized', sub: principal.sub, exp: principal.exp }));
    for (const frame of early) this.handle(frame);
  }

  private scheduleExpiry(exp: number): void {
    const ms = exp * 1000 - Date.now();
    this.authTimer = setTimeout(() => {
      if (this.auth.kind !== 'authorized') return;
      if (Date.now() >= exp * 1000) this.close(CLOSE.unauthorized, 'token expired');
      else this.scheduleExpiry(exp);
    }, Math.min(Math.max(ms, 0), MAX_TIMER_MS));
  }

  private allowFrame(): boolean {
    const now = Date.now();
    this.tokens = Math.min(this.limits.frameBurst, this.tokens + ((now - this.refilledAt) / 1000) * this.limits.framesPerSecond);
    this.refilledAt = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    return false;
  }

  private onFrame(data: Buffer, isBinary: boolean): void {
    if (!this.allowFrame()) {
      // One error frame per burst; a client that keeps flooding is cut off.
      if (this.dropped++ === 0) this.error('rate_limited', 'Too many frames; slow down.');
      if (this.dropped > this.limits.frameBurst) this.close(CLOSE.policy, 'too many frames');
      return;
    }
    this.dropped = 0;
    if (isBinary) return this.error('invalid_frame', 'Frames must be JSON text.');
    if (this.auth.kind === 'verifying') {
      if (this.auth.early.length >= MAX_EARLY_FRAMES) return this.close(CLOSE.policy, 'too many frames before auth');
      this.auth.early.push(data);
      return;
    }
    this.handle(data);
  }

  private handle(data: Buffer): void {
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
      if (this.auth.kind === 'open') return this.send('{"type":"authorized","sub":null,"exp":null}');
      if (typeof f.token !== 'string') return this.close(CLOSE.unauthorized, 'auth needs a token');
      return void this.verify(f.token);
    }
    if (this.auth.kind === 'waiting') return this.close(CLOSE.unauthorized, 'the first frame must be auth');
    if (frame !== f) return this.error('invalid_frame', 'A frame must be a JSON object with a "type".');
    switch (f.type) {
      case 'subscribe':
        return this.onSubscribe(f);
      case 'unsubscribe':
        return this.onUnsubscribe(f);
      case 'publish':
        return void this.onPublish(f);
      case 'ping':
        return this.send('{"type":"pong"}');
      default:
        return this.error('unknown_type', `Unknown frame type ${JSON.stringify(f.type ?? null)}; expected subscribe, unsubscribe, publish, auth or ping.`);
    }
  }

  private get principal(): Principal | undefined {
    return this.auth.kind === 'authorized' ? this.auth.principal : undefined;
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
    if (f.epoch !== undefined) {
      const current = this.s.hub.epoch();
      if (typeof f.epoch !== 'string') return this.error('validation_failed', 'epoch must be a string', { field: 'epoch', room });
      if (current !== null && f.epoch !== current) return this.error('epoch_mismatch', undefined, { room, epoch: current });
    }
    if (this.principal && !this.principal.rooms.allows(room)) {
      return this.sendError(forbiddenRoom(room));
    }
    if (!this.s.hub.isSubscribed(this, room) && this.s.hub.subscriptionCount(this) >= this.limits.maxSubscriptions) {
      return this.error('too_many_subscriptions', `At most ${this.limits.maxSubscriptions} rooms per socket.`, { room });
    }
    this.s.hub.subscribe(this, room, f.after as number | undefined);
  }

  private onUnsubscribe(f: Record<string, unknown>): void {
    const room = this.validRoom(f);
    if (room === undefined) return;
    this.s.hub.unsubscribe(this, room);
    this.send(JSON.stringify({ type: 'unsubscribed', room }));
  }

  private async onPublish(f: Record<string, unknown>): Promise<void> {
    const { type: _type, ...input } = f;
    try {
      const accepted = await this.s.accept(input, this.principal);
      this.send(JSON.stringify({ type: 'accepted', ...accepted }));
    } catch (err) {
      this.sendError(err instanceof AppError ? err : new AppError('internal'), typeof input.id === 'string' ? { id: input.id } : undefined);
    }
  }
}
