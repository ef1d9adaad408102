import type { WebSocket } from 'ws';
import { roomSchema } from '../domain/message.ts';
import { ERRORS, type ErrorCode } from '../errors.ts';
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
}

/** WebSocket close codes this server uses. */
export const CLOSE = {
  goingAway: 1001,
  policy: 1008,
  tooBig: 1009,
  tryAgainLater: 1013,
} as const;

const NON_NEGATIVE_SAFE_INT = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * One client socket: speaks the JSON frame protocol (subscribe, unsubscribe, ping) and is the
 * hub's Peer. Bounded in what it may cost: buffered bytes, subscriptions and frame rate.
 */
export class SocketPeer implements Peer {
  private readonly ws: WebSocket;
  private readonly hub: Hub;
  private readonly limits: SocketLimits;
  private readonly log: Logger;
  private tokens: number;
  private refilledAt = Date.now();
  private dropped = 0;
  alive = true;

  constructor(ws: WebSocket, hub: Hub, limits: SocketLimits, log: Logger) {
    this.ws = ws;
    this.hub = hub;
    this.limits = limits;
    this.log = log;
    this.tokens = limits.frameBurst;
    ws.on('message', (data, isBinary) => this.onFrame(data as Buffer, isBinary));
    ws.on('pong', () => (this.alive = true));
    ws.on('close', () => hub.remove(this));
    ws.on('error', (err) => log.debug({ err: err.message }, 'socket error'));
  }

  get open(): boolean {
    return this.ws.readyState === 1;
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
    this.hub.remove(this);
    if (this.ws.readyState === 0 || this.ws.readyState === 1) this.ws.close(code, reason);
  }

  ping(): void {
    this.ws.ping();
  }

  onClosed(cb: () => void): void {
    if (this.ws.readyState === 3) cb();
    else this.ws.once('close', cb);
  }

  /** Terminates without the closing handshake (dead peers: nothing would answer it). */
  terminate(): void {
    this.hub.remove(this);
    this.ws.terminate();
  }

  private closeSlow(): void {
    this.log.warn({ buffered: this.ws.bufferedAmount }, 'closing a socket that does not read fast enough');
    this.close(CLOSE.tryAgainLater, 'slow consumer: reconnect and resume with after');
    // The close frame queues behind the unread data; do not wait for a reader that never reads.
    const ws = this.ws;
    setTimeout(() => ws.terminate(), 1000).unref();
  }

  private error(code: ErrorCode, message?: string, extra?: Record<string, unknown>): void {
    this.send(JSON.stringify({ type: 'error', code, message: message ?? ERRORS[code].message, ...extra }));
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
    let frame: unknown;
    try {
      frame = JSON.parse(data.toString('utf8'));
    } catch {
      return this.error('invalid_frame', 'The frame is not valid JSON.');
    }
    if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) {
      return this.error('invalid_frame', 'A frame must be a JSON object with a "type".');
    }
    const f = frame as Record<string, unknown>;
    switch (f.type) {
      case 'subscribe':
        return this.onSubscribe(f);
      case 'unsubscribe':
        return this.onUnsubscribe(f);
      case 'ping':
        return this.send('{"type":"pong"}');
      default:
        return this.error('unknown_type', `Unknown frame type ${JSON.stringify(f.type ?? null)}; expected subscribe, unsubscribe or ping.`);
    }
  }

  private validRoom(f: Record<string, unknown>): string | undefined {
    if (typeof f.room === 'string' && roomSchema.safeParse(f.room).success) return f.room;
    this.error('validation_failed', 'room must be 1-64 characters of A-Z a-z 0-9 _ . : -', { field: 'room' });
    return undefined;
  }

  private onSubscribe(f: Record<string, unknown>): void {
    const room = this.validRoom(f);
    if (room === undefined) return;
    if (f.after !== undefined && !NON_NEGATIVE_SAFE_INT(f.after)) {
      return this.error('validation_failed', 'after must be a seq: a whole number >= 0', { field: 'after', room });
    }
    if (!this.hub.isSubscribed(this, room) && this.hub.subscriptionCount(this) >= this.limits.maxSubscriptions) {
      return this.error('too_many_subscriptions', `At most ${this.limits.maxSubscriptions} rooms per socket.`, { room });
    }
    this.hub.subscribe(this, room, f.after as number | undefined);
  }

  private onUnsubscribe(f: Record<string, unknown>): void {
    const room = this.validRoom(f);
    if (room === undefined) return;
    this.hub.unsubscribe(this, room);
    this.send(JSON.stringify({ type: 'unsubscribed', room }));
  }
}
