import { EventEmitter, once } from 'node:events';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { RoomAccess } from '../../src/auth/rooms.ts';
import type { Principal } from '../../src/auth/tokens.ts';
import { CLOSE } from '../../src/errors.ts';
import { Hub } from '../../src/hub/hub.ts';
import { SocketPeer, type SocketLimits, type SocketServices } from '../../src/hub/socket.ts';
import { attachWebSocket } from '../../src/hub/websocket.ts';
import type { Logger } from '../../src/log.ts';

/**
 * SocketPeer's listeners and timers are shared by every socket (a closure per socket and event
 * was most of an idle socket's heap); what each does for its own socket must not change.
 */

/** The server side of a ws socket, as much of it as SocketPeer uses. */
class FakeWs extends EventEmitter {
  readyState = 1;
  bufferedAmount = 0;
  readonly sent: string[] = [];
  closedWith: { code: number; reason: string } | undefined;
  send(frame: string | Buffer, _opts: unknown, cb?: (err?: Error) => void): void {
    this.sent.push(String(frame));
    cb?.();
  }
  close(code: number, reason: string): void {
    this.closedWith = { code, reason };
    this.readyState = 2;
  }
  ping(): void {}
  terminate(): void {
    this.readyState = 3;
  }
  frames(): Record<string, unknown>[] {
    return this.sent.map((f) => JSON.parse(f));
  }
}

const limits: SocketLimits = { maxBufferedBytes: 1 << 20, maxSubscriptions: 10, frameBurst: 100, framesPerSecond: 100, authTimeoutMs: 5000 };
const hub = () => new Hub({ roomPage: () => ({ messages: [], more: false }), roomHead: () => 0, lastCursor: () => 0, epoch: () => 'e' });
const fakeLog = () => ({ error: vi.fn(), warn: vi.fn(), info: vi.fn(), debug: vi.fn() });

function services(over: Partial<SocketServices> = {}): SocketServices & { log: ReturnType<typeof fakeLog> } {
  return {
    hub: hub(),
    accept: async () => ({ id: 'x', key: 'k', status: 'accepted' }) as never,
    markRead: async () => ({}) as never,
    authenticate: undefined,
    admit: () => true,
    release: () => {},
    closed: vi.fn(),
    log: fakeLog() as unknown as Logger,
    ...over,
  } as SocketServices & { log: ReturnType<typeof fakeLog> };
}

const open = (s: SocketServices, ws = new FakeWs()) => ({ ws, peer: new SocketPeer(ws as unknown as WebSocket, s, limits, undefined, false, '10.0.0.1') });
const frame = (ws: FakeWs, f: unknown) => ws.emit('message', Buffer.from(JSON.stringify(f)), false);
const principal = (exp: number): Principal => ({ sub: 'u', rooms: RoomAccess.everything, exp });
/** Lets an already-resolved authenticate() reach the socket (microtasks only; no timer runs). */
const settle = async () => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

afterEach(() => {
  vi.useRealTimers();
});

describe('SocketPeer: shared listeners and timers (no broker)', () => {
  it('every socket has the same one listener per event', () => {
    const s = services();
    const a = open(s).ws;
    const b = open(s).ws;
    for (const event of ['message', 'pong', 'close', 'error']) {
      expect(a.listeners(event), event).toHaveLength(1);
      expect(a.listeners(event)[0], event).toBe(b.listeners(event)[0]);
    }
  });

  it('each socket still gets its own frames, pongs and close', () => {
    const s = services();
    const one = open(s);
    const two = open(s);
    frame(one.ws, { type: 'ping' });
    frame(two.ws, { type: 'subscribe', room: 'r' });
    expect(one.ws.frames()).toEqual([{ type: 'pong' }]);
    expect(two.ws.frames()[0]).toMatchObject({ type: 'subscribed', room: 'r' });

    one.peer.alive = false;
    two.peer.alive = false;
    one.ws.emit('pong');
    expect([one.peer.alive, two.peer.alive]).toEqual([true, false]);

    expect(s.hub.isSubscribed(two.peer, 'r')).toBe(true);
    two.ws.emit('close', 1000);
    expect(s.hub.isSubscribed(two.peer, 'r')).toBe(false);
    expect(s.closed).toHaveBeenCalledTimes(1);
    expect(s.closed).toHaveBeenCalledWith(two.peer, 1000);
  });

  it('a handler that throws is contained: logged, answered `internal`, and the socket goes on', () => {
    const s = services();
    const { ws } = open(s);
    vi.spyOn(s.hub, 'subscribe').mockImplementation(() => {
      throw new Error('boom');
    });
    frame(ws, { type: 'subscribe', room: 'r' });
    expect(s.log.error).toHaveBeenCalledWith(expect.objectContaining({ where: 'socket message' }), 'handler failed; contained');
    expect(ws.frames()).toEqual([expect.objectContaining({ type: 'error', code: 'internal' })]);
    frame(ws, { type: 'ping' });
    expect(ws.frames().at(-1)).toEqual({ type: 'pong' });
  });

  it('a failure while leaving is contained and the endpoint still hears of the close', () => {
    const s = services();
    const { ws, peer } = open(s);
    vi.spyOn(s.hub, 'remove').mockImplementation(() => {
      throw new Error('boom');
    });
    ws.emit('close', 1006);
    expect(s.log.error).toHaveBeenCalledWith(expect.objectContaining({ where: 'socket close' }), 'handler failed; contained');
    expect(s.closed).toHaveBeenCalledWith(peer, 1006);
  });

  it('token mode: no auth frame within authTimeoutMs closes 4401 (and only that socket)', async () => {
    vi.useFakeTimers();
    const s = services({ authenticate: async () => principal(Date.now() / 1000 + 3600) });
    const a = open(s);
    const b = open(s);
    a.peer.begin(undefined);
    b.peer.begin(undefined);
    frame(b.ws, { type: 'auth', token: 't' });
    await settle();
    expect(b.ws.frames()).toEqual([expect.objectContaining({ type: 'authorized' })]);
    vi.advanceTimersByTime(limits.authTimeoutMs - 1);
    expect(a.ws.closedWith).toBeUndefined();
    vi.advanceTimersByTime(1);
    expect(a.ws.closedWith).toEqual({ code: CLOSE.unauthorized, reason: 'no auth frame in time' });
    expect(b.ws.closedWith).toBeUndefined();
  });

  it('token mode: the socket closes 4401 when its token expires, not before', async () => {
    vi.useFakeTimers();
    const exp = Math.floor(Date.now() / 1000) + 2;
    const s = services({ authenticate: async () => principal(exp) });
    const { ws, peer } = open(s);
    peer.begin('token');
    await settle();
    expect(ws.frames()).toEqual([{ type: 'authorized', sub: 'u', exp }]);
    vi.advanceTimersByTime(exp * 1000 - Date.now() - 1);
    expect(ws.closedWith).toBeUndefined();
    vi.advanceTimersByTime(1);
    expect(ws.closedWith).toEqual({ code: CLOSE.unauthorized, reason: 'token expired' });
  });
});


describe('attachWebSocket (no broker)', () => {
  it('keeps no upgrade request once the socket is open, and counts the socket out on close', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const server = createServer();
    let request: WeakRef<IncomingMessage> | undefined;
    server.on('upgrade', (req: IncomingMessage) => (request = new WeakRef(req)));
    const closed = vi.fn();
    const endpoint = attachWebSocket(
      server,
      { hub: hub(), accept: services().accept, markRead: services().markRead, authenticate: undefined, log: fakeLog() as unknown as Logger },
      { ...limits, pingIntervalMs: 60_000, maxPayload: 1 << 16, maxSocketsPerUser: 10, maxSocketsPerIp: 10, observe: { opened: () => {}, closed } },
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const client = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}/ws`);
    try {
      await once(client, 'open');
      client.send(JSON.stringify({ type: 'ping' }));
      await once(client, 'message');
      expect(endpoint.connections).toBe(1);
      // A WeakRef holds its target until the task that made or read it is over.
      await new Promise((resolve) => setImmediate(resolve));
      gc();
      expect(request).toBeDefined();
      expect(request!.deref()).toBeUndefined();

      const counted = new Promise((resolve) => closed.mockImplementation(resolve));
      client.close(1000);
      expect(await counted).toBe(1000);
      expect(endpoint.connections).toBe(0);
    } finally {
      client.terminate();
      await endpoint.close();
      server.close();
    }
  });
});
