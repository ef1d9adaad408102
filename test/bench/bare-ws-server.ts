/**
 * Child process: the fan-out ceiling. A bare `ws` server that speaks just enough of the chat
 * protocol (subscribe -> subscribed) and, on command, broadcasts pre-serialised message frames
 * to rooms as fast as the clients keep up.
 */
import { createServer } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';
import { fanOut } from './fanout-loop.ts';
import { listenOnLoopback, serve } from './ipc.ts';
import { bodyText, messageFrame, roomName, senderName } from './records.ts';
import { randomUUID } from 'node:crypto';

const http = createServer();
const wss = new WebSocketServer({ server: http, path: '/ws', perMessageDeflate: false, clientTracking: true, maxPayload: 16 * 1024 });
const rooms = new Map<string, Set<WebSocket>>();

wss.on('connection', (ws) => {
  const mine = new Set<string>();
  ws.on('message', (data) => {
    let f: { type?: string; room?: string };
    try {
      f = JSON.parse(data.toString());
    } catch {
      return;
    }
    if (f.type === 'subscribe' && typeof f.room === 'string') {
      let set = rooms.get(f.room);
      if (!set) rooms.set(f.room, (set = new Set()));
      set.add(ws);
      mine.add(f.room);
      ws.send(JSON.stringify({ type: 'subscribed', room: f.room, head: 0 }));
    }
  });
  ws.on('close', () => {
    for (const r of mine) rooms.get(r)?.delete(ws);
  });
  ws.on('error', () => {});
});

async function run(a: { seconds: number; rooms: number; bodyBytes: number; maxPendingBytes: number }) {
  const createdAt = new Date().toISOString();
  let frames = 0;
  const result = await fanOut({
    seconds: a.seconds,
    rooms: a.rooms,
    maxMessages: a.seconds * 10_000_000,
    maxPendingBytes: a.maxPendingBytes,
    sendOne: (seq, r) => {
      const room = roomName(r);
      const set = rooms.get(room);
      if (!set) return;
      const frame = Buffer.from(messageFrame({ id: randomUUID(), room, sender: senderName(seq), body: bodyText(Date.now(), a.bodyBytes), createdAt, seq }));
      for (const ws of set) {
        ws.send(frame, { binary: false });
        frames++;
      }
    },
    pendingBytes: () => {
      let max = 0;
      for (const ws of wss.clients) if (ws.bufferedAmount > max) max = ws.bufferedAmount;
      return max;
    },
  });
  return { ...result, framesSent: frames };
}

serve({
  listen: () => listenOnLoopback(http),
  run,
});
