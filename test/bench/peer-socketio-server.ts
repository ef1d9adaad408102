/**
 * Child process: the peer. A Socket.IO 4 server with connection state recovery enabled (as its
 * docs recommend for chats), rooms joined on request, and on command a broadcast to rooms as fast
 * as the clients keep up, the same way as the bare ws ceiling.
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Server } from 'socket.io';
import { fanOut } from './fanout-loop.ts';
import { listenOnLoopback, serve } from './ipc.ts';
import { bodyText, roomName, senderName } from './records.ts';

const http = createServer();
const io = new Server(http, {
  connectionStateRecovery: { maxDisconnectionDuration: 2 * 60 * 1000, skipMiddlewares: true },
  maxHttpBufferSize: 16 * 1024,
});

io.on('connection', (socket) => {
  socket.on('subscribe', (f: { room?: unknown }, ack?: (a: unknown) => void) => {
    if (typeof f?.room !== 'string') return;
    void socket.join(f.room);
    ack?.({ type: 'subscribed', room: f.room, head: 0 });
  });
});

/** Bytes not yet handed to the kernel on the socket that has most: engine.io's write buffer plus ws's. */
function maxPendingBytes(approxPacketBytes: number): number {
  let max = 0;
  for (const s of io.of('/').sockets.values()) {
    const conn = s.conn as unknown as { writeBuffer: unknown[]; transport: { socket?: { bufferedAmount?: number } } };
    const pending = conn.writeBuffer.length * approxPacketBytes + (conn.transport.socket?.bufferedAmount ?? 0);
    if (pending > max) max = pending;
  }
  return max;
}

async function run(a: { seconds: number; rooms: number; bodyBytes: number; maxPendingBytes: number }) {
  const createdAt = new Date().toISOString();
  const approx = a.bodyBytes + 200;
  return fanOut({
    seconds: a.seconds,
    rooms: a.rooms,
    maxMessages: a.seconds * 10_000_000,
    maxPendingBytes: a.maxPendingBytes,
    sendOne: (seq, r) => {
      const room = roomName(r);
      io.to(room).emit('message', { id: randomUUID(), room, sender: senderName(seq), body: bodyText(Date.now(), a.bodyBytes), createdAt, seq });
    },
    pendingBytes: () => maxPendingBytes(approx),
  });
}

/** `global.gc` without starting the process with --expose-gc (a context made after the flag has it); the heap in use after it. */
function collectGarbage(): number {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
  return process.memoryUsage().heapUsed;
}

serve({
  listen: () => listenOnLoopback(http),
  run,
  sockets: () => io.of('/').sockets.size,
  // A full collection before each RSS reading, as the inspector does for our server.
  gc: () => collectGarbage(),
});
