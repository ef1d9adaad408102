import type { Accepted, ClientFrame, RoomsPage, ServerFrame } from '../protocol.ts';
import { BATCH_SEPARATOR, CLOSE, WS_QUERY } from '../protocol.ts';
import { fullJitter, retryAfterMs } from './backoff.ts';
import { Emitter } from './emitter.ts';
import { ChatError } from './errors.ts';
import { Room, type RoomHost, type RoomOptions } from './room.ts';
import { memoryStorage, type CursorStorage } from './storage.ts';
import { refreshDelayMs } from './token.ts';
import { OPEN, type FetchLike, type WebSocketConstructor, type WebSocketLike } from './transport.ts';

export interface ChatClientOptions {
  /** The server's base URL, `https://chat.example.com` (the socket is `wss://.../ws`). */
  url: string;
  /** Open mode: who this client is (`sender` of its posts, `?user=` on the socket for read markers, typing, presence). */
  user?: string;
  /** Token mode: returns a fresh token (called on connect, before `exp`, and after a 4401). */
  getToken?: () => string | Promise<string>;
  /**
   * How the socket carries the token: `frame` (an `auth` frame, works everywhere; the default) or
   * `header` (`Authorization` on the upgrade: React Native and Node, not browsers).
   */
  tokenTransport?: 'frame' | 'header';
  /** Where room cursors are kept: `localStorage`, AsyncStorage, ... Default: memory (lost on restart). */
  storage?: CursorStorage;
  /** Prefix of the storage keys. Default `chat-catchup|<url>|<user>`; set it per account in token mode. */
  storagePrefix?: string;
  /** Default: the global WebSocket. In Node < 22: `ws`. */
  WebSocket?: WebSocketConstructor;
  /** Default: the global fetch. */
  fetch?: FetchLike;
  /** App-level ping interval; a dead connection is noticed within two intervals. Default 20 000 ms. */
  pingIntervalMs?: number;
  /** Reconnect backoff: full jitter between 0 and min(maxMs, baseMs * 2^attempt). Default 500 ms / 30 000 ms. */
  backoff?: { baseMs?: number; maxMs?: number };
  /** Consecutive token failures (getToken throwing, 401, 4401) before giving up. Default 3. */
  maxAuthFailures?: number;
}

export type ConnectionState =
  | { state: 'connecting'; attempt: number }
  | { state: 'connected' }
  /** `reason`: why; `retryInMs`: when the next attempt starts (absent when none is planned: paused, gave up). */
  | { state: 'disconnected'; reason: string; code?: number; retryInMs?: number; error?: ChatError }
  | { state: 'closed' };

export interface ChatClientEvents {
  state: (s: ConnectionState) => void;
  /** Something the app should know about that is not tied to a room (e.g. giving up on tokens). */
  error: (err: ChatError) => void;
}

const DEFAULT_PING_MS = 20_000;
/** After a 4429 (too many sockets) wait at least this long: the server will not have changed its mind sooner. */
const TOO_MANY_SOCKETS_MIN_MS = 5000;

/**
 * A chat connection: one WebSocket (reconnected with backoff, checked with app-level pings,
 * re-authorized before its token expires) carrying any number of rooms, plus the HTTP calls
 * (send with retries, scrollback, conversation list).
 */
export class ChatClient extends Emitter<ChatClientEvents> {
  readonly user: string | undefined;
  private readonly base: string;
  private readonly wsUrl: string;
  private readonly opts: ChatClientOptions;
  private readonly WS: WebSocketConstructor;
  private readonly fetchFn: FetchLike;
  readonly storage: CursorStorage;
  private readonly prefix: string;
  private readonly pingMs: number;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly maxAuthFailures: number;
  private readonly rooms = new Map<string, Room>();
  private readonly host: RoomHost;

  private ws: WebSocketLike | undefined;
  /** The socket is open and (token mode) authorized: frames may be sent. */
  private ready = false;
  private attempt = 0;
  private authFailures = 0;
  private token: string | undefined;
  private current: ConnectionState = { state: 'disconnected', reason: 'not started' };
  private paused = false;
  private closed = false;
  private heard = false;
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  /** Waits (send retries) that a reconnect, `online` or resume() cuts short. */
  private readonly sleepers = new Set<() => void>();
  private readonly detach: () => void;
  /** The server predates the `key` field and takes the idempotency key as `id`. */
  private legacyKey = false;
  private opening = false;

  constructor(opts: ChatClientOptions) {
    super();
    this.opts = opts;
    this.user = opts.user;
    this.base = opts.url.replace(/\/+$/, '');
    // Built by hand: React Native's URL has no working searchParams.
    let q = `${WS_QUERY.batch}=1`;
    if (opts.user !== undefined && !opts.getToken) q += `&${WS_QUERY.user}=${encodeURIComponent(opts.user)}`;
    this.wsUrl = `${this.base.replace(/^http/, 'ws')}/ws?${q}`;
    const WS = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) throw new ChatError('no_websocket', 'No global WebSocket here: pass one, e.g. { WebSocket } from "ws".');
    this.WS = WS;
    const f = opts.fetch ?? (globalThis as { fetch?: FetchLike }).fetch;
    if (!f) throw new ChatError('no_fetch', 'No global fetch here: pass one.');
    this.fetchFn = (url, init) => f(url, init); // unbound: window.fetch refuses other `this`
    this.storage = opts.storage ?? memoryStorage();
    this.prefix = opts.storagePrefix ?? `chat-catchup|${this.base}|${opts.user ?? ''}`;
    this.pingMs = opts.pingIntervalMs ?? DEFAULT_PING_MS;
    this.baseMs = opts.backoff?.baseMs ?? 500;
    this.maxMs = opts.backoff?.maxMs ?? 30_000;
    this.maxAuthFailures = opts.maxAuthFailures ?? 3;
    this.host = {
      user: this.user,
      storage: this.storage,
      storageKey: (room) => `${this.prefix}|${room}`,
      sendFrame: (frame) => this.sendFrame(frame),
      canSignal: () => this.user !== undefined || this.opts.getToken !== undefined,
      post: (body) => this.post(body),
      get: (path, query) => this.get(path, query),
      forget: (room) => this.rooms.delete(room),
    };
    this.detach = this.watchNetwork();
    this.connect();
  }

  get state(): ConnectionState {
    return this.current;
  }

  /** Opens a room (or returns the one already open): resumes from its stored cursor, else `last`, else live. */
  room(name: string, opts: RoomOptions = {}): Room {
    let room = this.rooms.get(name);
    if (room) return room;
    room = new Room(name, this.host, opts);
    this.rooms.set(name, room);
    const r = room;
    void r.loaded.then(() => {
      if (this.ready && this.rooms.get(name) === r) {
        const frame = r.subscribeFrame();
        if (frame) this.sendFrame(frame);
      }
    });
    return room;
  }

  /** The user's conversation list, newest activity first (`GET /rooms`). */
  conversations(opts: { rooms?: string[]; limit?: number } = {}): Promise<RoomsPage> {
    return this.get<RoomsPage>('/rooms', { user: this.opts.getToken ? undefined : this.user, rooms: opts.rooms?.join(','), limit: opts.limit });
  }

  /** The app went to the background: drop the socket and stop timers (cursors are kept). */
  pause(): void {
    if (this.closed || this.paused) return;
    this.paused = true;
    this.teardown(1000, 'paused');
    this.setState({ state: 'disconnected', reason: 'paused' });
  }

  /** Back in the foreground: reconnect now and resume every room from its cursor. */
  resume(): void {
    if (this.closed || !this.paused) return;
    this.paused = false;
    this.attempt = 0;
    this.connect();
  }

  /** Closes the socket for good; pending sends reject with `closed`. Resolves once cursors are stored. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.detach();
    this.teardown(1000, 'client closed');
    this.wake();
    this.setState({ state: 'closed' });
    await Promise.all([...this.rooms.values()].map((r) => r.flush()));
  }

  // ---- the socket ----

  private async connect(): Promise<void> {
    // `opening`: a getToken in flight; an `online` event or resume() meanwhile must not open a second socket.
    if (this.closed || this.paused || this.ws || this.opening) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.setState({ state: 'connecting', attempt: this.attempt });
    const header = this.opts.tokenTransport === 'header';
    if (this.opts.getToken) {
      this.opening = true;
      try {
        this.token = await this.opts.getToken();
      } catch (err) {
        this.opening = false;
        if (this.closed || this.paused) return;
        return this.authFailed(new ChatError('token_unavailable', `getToken failed: ${err instanceof Error ? err.message : String(err)}`));
      }
      this.opening = false;
      if (this.closed || this.paused || this.ws) return;
    }
    let ws: WebSocketLike;
    try {
      ws = header && this.token ? new this.WS(this.wsUrl, undefined, { headers: { Authorization: `Bearer ${this.token}` } }) : new this.WS(this.wsUrl);
    } catch (err) {
      return this.lost(0, `cannot open: ${err instanceof Error ? err.message : String(err)}`);
    }
    this.ws = ws;
    this.heard = false;
    // One timer is both the connect timeout and the dead-connection check: a tick with nothing
    // heard since the previous one ends the socket, so a dead link is noticed within two intervals.
    this.pingTimer = setInterval(() => {
      if (this.ws !== ws) return;
      if (!this.heard) return this.dropDead(ws);
      this.heard = false;
      if (ws.readyState === OPEN) ws.send('{"type":"ping"}');
    }, this.pingMs);
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.heard = true;
      if (this.opts.getToken && !header) ws.send(JSON.stringify({ type: 'auth', token: this.token }));
      else if (!this.opts.getToken) this.onReady();
      // header mode waits for `authorized` (the server sends it for an upgrade token too)
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      this.heard = true;
      const data = typeof ev.data === 'string' ? ev.data : String(ev.data);
      // ?batch=1: several frames per message, one per line (JSON text never holds a raw newline).
      for (const line of data.split(BATCH_SEPARATOR)) {
        if (line === '') continue;
        let frame: ServerFrame;
        try {
          frame = JSON.parse(line) as ServerFrame;
        } catch {
          continue;
        }
        this.onFrame(frame);
      }
    };
    ws.onerror = () => {};
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.lost(ev.code, ev.reason || `closed (${ev.code})`);
    };
  }

  private onReady(): void {
    if (this.ready) return;
    this.ready = true;
    this.setState({ state: 'connected' });
    for (const room of this.rooms.values()) {
      const frame = room.subscribeFrame();
      if (frame) this.sendFrame(frame);
    }
    this.wake();
  }

  private onFrame(f: ServerFrame): void {
    const room = 'room' in f && typeof f.room === 'string' ? this.rooms.get(f.room) : undefined;
    switch (f.type) {
      case 'message': {
        const { type: _t, ...m } = f;
        room?.onMessage(m);
        return;
      }
      case 'subscribed':
        // A connection that got this far works: the next failure starts the backoff afresh.
        this.attempt = 0;
        room?.onSubscribed(f);
        return;
      case 'authorized':
        this.authFailures = 0;
        this.attempt = 0;
        if (typeof f.exp === 'number') this.scheduleRefresh(f.exp);
        this.onReady();
        return;
      case 'error':
        if (room) room.onError(f);
        else this.emit('error', new ChatError(f.code, f.message));
        return;
      case 'read':
        room?.onRead(f.seq);
        return;
      case 'typing':
        room?.onTyping(f.user);
        return;
      case 'presence':
        room?.onPresence(f.users);
        return;
      case 'join':
      case 'leave':
        room?.onJoinLeave(f.type, f.user);
        return;
      case 'unsubscribed':
        room?.onUnsubscribed();
        return;
      default:
        return; // pong, accepted, and kinds newer than this SDK
    }
  }

  private sendFrame(frame: ClientFrame): boolean {
    const ws = this.ws;
    if (!ws || !this.ready || ws.readyState !== OPEN) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  private dropDead(ws: WebSocketLike): void {
    // No closing handshake with a peer that does not answer; `ws` in Node can terminate at once.
    const t = (ws as { terminate?: () => void }).terminate;
    this.ws = undefined;
    detachHandlers(ws);
    try {
      if (t) t.call(ws);
      else ws.close(4000, 'no answer to ping');
    } catch {
      // already closing
    }
    this.lost(0, 'no answer to ping');
  }

  /** The socket is gone: decide, by its close code, what to do next. */
  private lost(code: number, reason: string): void {
    const old = this.ws;
    this.ws = undefined;
    if (old) detachHandlers(old);
    this.ready = false;
    clearInterval(this.pingTimer);
    clearTimeout(this.refreshTimer);
    for (const room of this.rooms.values()) room.disconnected();
    if (this.closed || this.paused) return;
    if (code === CLOSE.logReset) {
      // The log was re-created: every cursor points into a log that no longer exists.
      for (const room of this.rooms.values()) room.onReset();
    }
    if (code === CLOSE.unauthorized && this.opts.getToken) {
      return this.authFailed(new ChatError('unauthorized', `the server refused the token: ${reason}`), code);
    }
    let delay = fullJitter(this.attempt++, this.baseMs, this.maxMs);
    if (code === CLOSE.tooManySockets) delay = Math.max(delay, TOO_MANY_SOCKETS_MIN_MS);
    this.scheduleConnect(delay, reason, code);
  }

  private authFailed(error: ChatError, code?: number): void {
    this.ws = undefined;
    this.ready = false;
    clearInterval(this.pingTimer);
    if (++this.authFailures >= this.maxAuthFailures) {
      const gaveUp = new ChatError(error.code, `gave up after ${this.authFailures} token failures: ${error.message}`);
      this.setState({ state: 'disconnected', reason: 'unauthorized', ...(code ? { code } : {}), error: gaveUp });
      this.emit('error', gaveUp);
      return;
    }
    this.scheduleConnect(fullJitter(this.attempt++, this.baseMs, this.maxMs), error.message, code);
  }

  private scheduleConnect(delay: number, reason: string, code?: number): void {
    this.setState({ state: 'disconnected', reason, ...(code ? { code } : {}), retryInMs: delay });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.connect(), delay);
  }

  private scheduleRefresh(exp: number): void {
    clearTimeout(this.refreshTimer);
    const ws = this.ws;
    this.refreshTimer = setTimeout(async () => {
      if (this.ws !== ws || !this.opts.getToken) return;
      try {
        const token = await this.opts.getToken();
        this.token = token;
        if (this.ws === ws && ws?.readyState === OPEN) ws.send(JSON.stringify({ type: 'auth', token }));
      } catch (err) {
        // Not fatal yet: the socket lives until `exp`; the 4401 then goes through the failure count.
        this.emit('error', new ChatError('token_unavailable', `token refresh failed: ${err instanceof Error ? err.message : String(err)}`));
      }
    }, refreshDelayMs(exp));
  }

  private teardown(code: number, reason: string): void {
    const ws = this.ws;
    this.ws = undefined;
    this.ready = false;
    clearInterval(this.pingTimer);
    clearTimeout(this.retryTimer);
    clearTimeout(this.refreshTimer);
    for (const room of this.rooms.values()) room.disconnected();
    if (ws) {
      detachHandlers(ws);
      try {
        ws.close(code, reason);
      } catch {
        // closing already
      }
    }
  }

  private setState(s: ConnectionState): void {
    this.current = s;
    this.emit('state', s);
  }

  /** Browsers say when the network comes back: retry then instead of waiting out the backoff. */
  private watchNetwork(): () => void {
    const g = globalThis as { addEventListener?: (t: string, h: () => void) => void; removeEventListener?: (t: string, h: () => void) => void };
    if (typeof g.addEventListener !== 'function' || typeof g.removeEventListener !== 'function') return () => {};
    const online = () => {
      if (this.closed || this.paused) return;
      this.wake();
      if (!this.ws) {
        this.attempt = 0;
        void this.connect();
      }
    };
    const offline = () => {
      // The socket may linger half-dead for a long time; drop it and wait for `online` or the backoff.
      if (this.closed || this.paused || !this.ws) return;
      this.teardown(1000, 'offline');
      this.scheduleConnect(fullJitter(this.attempt++, this.baseMs, this.maxMs), 'offline');
    };
    g.addEventListener('online', online);
    g.addEventListener('offline', offline);
    return () => {
      g.removeEventListener!('online', online);
      g.removeEventListener!('offline', offline);
    };
  }

  // ---- HTTP ----

  private async headers(json: boolean): Promise<Record<string, string>> {
    const h: Record<string, string> = {};
    if (json) h['content-type'] = 'application/json';
    if (this.opts.getToken) {
      this.token ??= await this.opts.getToken();
      h.authorization = `Bearer ${this.token}`;
    }
    return h;
  }

  /**
   * POST /message with the same key until the server gives a definite answer: `202`, or a
   * permanent refusal (a 4xx other than 429). 503, 429, 5xx and network failures wait
   * (Retry-After when given, else backoff with jitter) and try again.
   */
  private async post(input: { room: string; body: string; key: string; sender?: string }): Promise<Accepted> {
    let payload = JSON.stringify(this.legacyKey ? legacy(input) : input);
    let authFailures = 0;
    for (let attempt = 0; ; attempt++) {
      if (this.closed) throw new ChatError('closed', 'the client was closed before the message was accepted');
      let wait: number;
      try {
        const res = await this.fetchFn(`${this.base}/message`, { method: 'POST', headers: await this.headers(true), body: payload });
        if (res.status === 202) return (await res.json()) as Accepted;
        const err = await errorOf(res);
        if (res.status === 400 && !this.legacyKey && refusesKeyField(err)) {
          // A server from before `key` (0.1): its idempotency key was the message `id`.
          this.legacyKey = true;
          payload = JSON.stringify(legacy(input));
          continue;
        }
        if (res.status === 401 && this.opts.getToken && ++authFailures < this.maxAuthFailures) {
          this.token = undefined; // ask getToken again
          continue;
        }
        if (res.status >= 400 && res.status < 500 && res.status !== 429 && res.status !== 408) throw err;
        wait = retryAfterMs(res.headers.get('retry-after')) ?? fullJitter(attempt, this.baseMs, this.maxMs);
      } catch (err) {
        if (err instanceof ChatError) throw err;
        wait = fullJitter(attempt, this.baseMs, this.maxMs); // the network: the request may or may not have arrived; the key makes retrying safe
      }
      await this.sleep(Math.max(wait, 50));
    }
  }

  private async get<T>(path: string, query: Record<string, string | number | undefined>): Promise<T> {
    const q = Object.entries(query)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
      .join('&');
    let res = await this.fetchFn(`${this.base}${path}${q ? `?${q}` : ''}`, { headers: await this.headers(false) });
    if (res.status === 401 && this.opts.getToken) {
      this.token = undefined;
      res = await this.fetchFn(`${this.base}${path}${q ? `?${q}` : ''}`, { headers: await this.headers(false) });
    }
    if (res.status !== 200) throw await errorOf(res);
    return (await res.json()) as T;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.sleepers.add(done);
    });
  }

  private wake(): void {
    for (const s of [...this.sleepers]) s();
  }
}

const legacy = ({ key, ...rest }: { room: string; body: string; key: string; sender?: string }) => ({ ...rest, id: key });

const refusesKeyField = (err: ChatError): boolean =>
  err.code === 'validation_failed' &&
  Array.isArray(err.details.fields) &&
  err.details.fields.some((f: { message?: unknown }) => typeof f?.message === 'string' && f.message.includes('Unrecognized key: "key"'));

function detachHandlers(ws: WebSocketLike): void {
  ws.onopen = null;
  ws.onmessage = null;
  ws.onclose = null;
  ws.onerror = () => {};
}

async function errorOf(res: { status: number; json(): Promise<unknown>; text(): Promise<string> }): Promise<ChatError> {
  let body: { error?: { code?: string; message?: string; [k: string]: unknown } } = {};
  try {
    body = (await res.json()) as typeof body;
  } catch {
    // not JSON (a proxy's page): the status says enough
  }
  const { code, message, ...details } = body.error ?? {};
  return new ChatError(code ?? `http_${res.status}`, message ?? `HTTP ${res.status}`, res.status, details);
}
