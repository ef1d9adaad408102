/**
 * Child process: many Socket.IO clients (WebSocket transport only, no reconnection), each joined
 * to one room; counts the message events and checks seq only goes up. Same commands as ws-clients.ts.
 */
import { io, type Socket } from 'socket.io-client';
import { nowMs, sleep } from './clock.ts';
import { serve } from './ipc.ts';
import { roomName, sentAtOf } from './records.ts';
import { openMany } from './open-many.ts';
import type { ClientStats, OpenArgs, OpenResult } from './ws-clients.ts';

interface Client {
  socket: Socket;
  lastSeq: number;
  closing: boolean;
}

const clients: Client[] = [];
let frames = 0;
let firstAt = 0;
let lastAt = 0;
let outOfOrder = 0;
let measureLatency = true;
let latencies: number[] = [];
const unexpectedCloses: Record<string, number> = {};

function connect(url: string, index: number, rooms: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = io(url, { transports: ['websocket'], reconnection: false, forceNew: true, timeout: timeoutMs });
    const c: Client = { socket, lastSeq: 0, closing: false };
    const room = roomName(index % rooms);
    const timer = setTimeout(() => fail(new Error('not joined in time')), timeoutMs);
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.disconnect();
      reject(err);
    };
    socket.on('connect', () => {
      socket.emit('subscribe', { room }, () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        clients.push(c);
        resolve();
      });
    });
    socket.on('connect_error', (err) => fail(err));
    socket.on('disconnect', (reason) => {
      if (settled && !c.closing) unexpectedCloses[reason] = (unexpectedCloses[reason] ?? 0) + 1;
    });
    socket.on('message', (m: { seq: number; body: string }) => {
      const at = nowMs();
      frames++;
      if (firstAt === 0) firstAt = at;
      lastAt = at;
      if (!(m.seq > c.lastSeq)) outOfOrder++;
      c.lastSeq = m.seq;
      if (measureLatency) {
        const sent = sentAtOf(m.body);
        if (Number.isFinite(sent)) latencies.push(at - sent);
      }
    });
  });
}

async function open(a: OpenArgs): Promise<OpenResult> {
  return openMany(a, (i) => connect(a.url, i, a.rooms, a.timeoutMs ?? 20_000));
}

function reset(a: { latency?: boolean } = {}): void {
  frames = 0;
  firstAt = 0;
  lastAt = 0;
  outOfOrder = 0;
  latencies = [];
  measureLatency = a.latency ?? true;
}

function stats(): ClientStats {
  return {
    sockets: clients.length,
    open: clients.filter((c) => c.socket.connected).length,
    frames,
    firstAt,
    lastAt,
    outOfOrder,
    errorFrames: 0,
    unexpectedCloses,
  };
}

async function close(): Promise<{ closed: number }> {
  const n = clients.length;
  for (const c of clients) {
    c.closing = true;
    c.socket.disconnect();
  }
  clients.length = 0;
  await sleep(200);
  return { closed: n };
}

serve({ open, reset, stats, close, latencies: () => Float64Array.from(latencies) });
