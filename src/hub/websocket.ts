import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { bearerToken } from '../auth/tokens.ts';
import { userProblem } from '../domain/message.ts';
import { AppError, CLOSE, type ErrorCode } from '../errors.ts';
import { guard } from '../guard.ts';
import { writeRawError } from '../http/raw-error.ts';
import { withTimeout } from '../timeout.ts';
import { SocketPeer, type SocketLimits, type SocketServices } from './socket.ts';

export interface WebSocketOptions extends SocketLimits {
  pingIntervalMs: number;
  /** Largest frame a client may send; larger ones close the socket with 1009. */
  maxPayload: number;
  /** Open sockets one user (token `sub`) may hold at once. */
  maxSocketsPerUser: number;
  /** Open mode (no token): open sockets one remote address may hold at once; more are closed 4429. */
  maxSocketsPerIp?: number;
  /** Whether an upgrade's Origin header may connect (CORS_ORIGINS); absent: any. */
  originAllowed?: (origin: string | undefined) => boolean;
  /** Told of every socket opened and closed (metrics). */
  observe?: { opened(): void; closed(code: number): void };
}

export interface WebSocketEndpoint {
  readonly connections: number;
  /** Refuses new upgrades and closes every socket with `code`; resolves once all are closed. */
  close(code?: number, reason?: string, timeoutMs?: number): Promise<void>;
}

/**
 * Open mode names a socket's user with `?user=` on the upgrade URL, under the same rules as a
 * message's `sender`. Absent: an anonymous socket. Invalid or repeated: a 400 before the upgrade.
 * (Token mode ignores it: the token's `sub` is the user.)
 */
export function upgradeUser(url: string): string | undefined {
  const params = new URL(url, 'http://localhost').searchParams;
  const all = params.getAll('user');
  if (all.length === 0) return undefined;
  if (all.length > 1) throw new AppError('validation_failed', 'user is given more than once.', { details: { fields: [{ field: 'user', message: 'repeated' }] } });
  const problem = userProblem(all[0]!);
  if (problem) throw new AppError('validation_failed', `Invalid user: ${problem}.`, { details: { fields: [{ field: 'user', message: problem }] } });
  return all[0];
}

/** Serves `GET /ws` upgrades on the HTTP server and reaps peers that stop answering pings. */
export function attachWebSocket(
  server: Server,
  services: Omit<SocketServices, 'admit' | 'release' | 'closed'>,
  opts: WebSocketOptions,
): WebSocketEndpoint {
  const wss = new WebSocketServer({ noServer: true, maxPayload: opts.maxPayload, perMessageDeflate: false, clientTracking: false });
  const peers = new Set<SocketPeer>();
  const perUser = new Map<string, number>();
  // Open mode has no user to count, so one address is the unit: without this a single client
  // could hold every descriptor. Entries are deleted at zero, so the map holds only live addresses.
  const perIp = new Map<string, number>();
  const capIp = services.authenticate ? undefined : opts.maxSocketsPerIp;
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
    // One hook for every socket rather than close listeners per socket: theirs closed over the
    // upgrade request, which kept it (headers and all, ~1.5 KiB) for the socket's lifetime.
    closed: (peer, code) => {
      if (capIp !== undefined) {
        const ip = peer.remote ?? '';
        const left = (perIp.get(ip) ?? 1) - 1;
        if (left <= 0) perIp.delete(ip);
        else perIp.set(ip, left);
      }
      peers.delete(peer);
      opts.observe?.closed(code);
      services.log.info({ remote: peer.remote, user: peer.user, code, ms: Date.now() - peer.openedAt, sockets: peers.size }, 'socket closed');
    },
  };
  let closing = false;

  const refuse = (socket: Duplex, code: ErrorCode, message?: string, headers?: Record<string, string>) =>
    writeRawError(socket, new AppError(code, message, { headers }));

  // ws answers a malformed handshake (bad Sec-WebSocket-Key, version, method) in text/html; with a
  // listener here it leaves the answer to us, so it is JSON like every other error.
  wss.on('wsClientError', (err: Error, socket: Duplex) => {
    if (/method/i.test(err.message)) return refuse(socket, 'method_not_allowed', `${err.message}: use GET.`, { Allow: 'GET' });
    refuse(socket, 'bad_handshake', `${err.message}.`, /version/i.test(err.message) ? { 'Sec-WebSocket-Version': '13, 8' } : undefined);
  });

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/ws') return refuse(socket, 'not_found', `No WebSocket endpoint at ${url.pathname}; use /ws.`);
    const batched = url.searchParams.get('batch') === '1';
    if (closing) return refuse(socket, 'not_ready', 'This node is shutting down.');
    if (opts.originAllowed && !opts.originAllowed(req.headers.origin)) {
      return writeRawError(socket, new AppError('origin_not_allowed', `Origin ${JSON.stringify(req.headers.origin)} is not in CORS_ORIGINS.`));
    }
    let openUser: string | undefined;
    try {
      openUser = services.authenticate ? undefined : upgradeUser(req.url ?? '/');
    } catch (err) {
      return writeRawError(socket, err as AppError);
    }
    // What the socket needs of the request, read now: nothing that outlives the upgrade may hold `req`.
    const ip = req.socket.remoteAddress ?? '';
    const authorization = req.headers.authorization;
    wss.handleUpgrade(req, socket, head, (ws) => opened(ws, ip, openUser, batched, authorization));
  };

  const opened = (ws: WebSocket, ip: string, openUser: string | undefined, batched: boolean, authorization: string | undefined) => {
    if (capIp !== undefined) {
      const n = perIp.get(ip) ?? 0;
      if (n >= capIp) {
        // Accepted then closed (not an HTTP 429) so browsers and the SDK see the contract's code.
        opts.observe?.opened();
        ws.on('close', (code) => opts.observe?.closed(code));
        return ws.close(CLOSE.tooManySockets, 'too many sockets from this address');
      }
      perIp.set(ip, n + 1);
    }
    const peer = new SocketPeer(ws, full, opts, openUser, batched, ip);
    peers.add(peer);
    services.log.info({ remote: ip, user: peer.user, sockets: peers.size }, 'socket open');
    opts.observe?.opened();
    if (!services.authenticate) return; // open mode: any Authorization header is ignored, as over HTTP
    let token: string | undefined;
    try {
      token = bearerToken(authorization);
    } catch {
      return peer.close(CLOSE.unauthorized, 'Authorization must be "Bearer <token>"');
    }
    peer.begin(token);
  };
  // An exception here would escape to the process: contain it and drop that one connection.
  server.on(
    'upgrade',
    guard(services.log, 'upgrade', onUpgrade, (_err, _req, socket) => refuse(socket, 'internal')),
  );

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
      await withTimeout(closed, timeoutMs);
      for (const p of peers) p.terminate();
      wss.close();
    },
  };
}
