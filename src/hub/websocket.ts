import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { bearerToken } from '../auth/tokens.ts';
import { CLOSE } from '../errors.ts';
import { SocketPeer, type SocketLimits, type SocketServices } from './socket.ts';

export interface WebSocketOptions extends SocketLimits {
  pingIntervalMs: number;
  /** Largest frame a client may send; larger ones close the socket with 1009. */
  maxPayload: number;
  /** Open sockets one user (token `sub`) may hold at once. */
  maxSocketsPerUser: number;
}

export interface WebSocketEndpoint {
  readonly connections: number;
  /** Refuses new upgrades and closes every socket with `code`; resolves once all are closed. */
  close(code?: number, reason?: string, timeoutMs?: number): Promise<void>;
}

/** Serves `GET /ws` upgrades on the HTTP server and reaps peers that stop answering pings. */
export function attachWebSocket(
  server: Server,
  services: Omit<SocketServices, 'admit' | 'release'>,
  opts: WebSocketOptions,
): WebSocketEndpoint {
  const wss = new WebSocketServer({ noServer: true, maxPayload: opts.maxPayload, perMessageDeflate: false, clientTracking: false });
  const peers = new Set<SocketPeer>();
  const perUser = new Map<string, number>();
  const full: SocketServices = {
    ...services,
    admit: (sub) => {
      const n = perUser.get(sub) ?? 0;
      if (n >= opts.maxSocketsPerUser) return false;
      perUser.set(sub, n + 1);
      return true;
    },
    release: (sub) => {
      const n = (perUser.get(sub) ?? 1) - 1;
      if (n <= 0) perUser.delete(sub);
      else perUser.set(sub, n);
    },
  };
  let closing = false;

  const refuse = (socket: Duplex, status: string) => {
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  };

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/ws') return refuse(socket, '404 Not Found');
    if (closing) return refuse(socket, '503 Service Unavailable');
    wss.handleUpgrade(req, socket, head, (ws) => {
      const peer = new SocketPeer(ws, full, opts);
      peers.add(peer);
      ws.on('close', () => peers.delete(peer));
      if (!services.authenticate) return; // open mode: any Authorization header is ignored, as over HTTP
      let token: string | undefined;
      try {
        token = bearerToken(req.headers.authorization);
      } catch {
        return peer.close(CLOSE.unauthorized, 'Authorization must be "Bearer <token>"');
      }
      peer.begin(token);
    });
  });

  const pinger = setInterval(() => {
    for (const peer of peers) {
      if (!peer.alive) {
        peer.terminate();
        continue;
      }
      peer.alive = false;
      peer.ping();
    }
  }, opts.pingIntervalMs);
  pinger.unref();

  return {
    get connections() {
      return peers.size;
    },
    async close(code = CLOSE.goingAway, reason = 'server shutting down', timeoutMs = 2000) {
      closing = true;
      clearInterval(pinger);
      const all = [...peers];
      const closed = Promise.all(all.map((p) => new Promise<void>((resolve) => p.onClosed(resolve))));
      for (const p of all) p.close(code, reason);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([closed, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
      clearTimeout(timer);
      for (const p of peers) p.terminate();
      wss.close();
    },
  };
}
