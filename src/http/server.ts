import { createServer, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import { getRequestListener } from '@hono/node-server';
import type { Socket } from 'node:net';
import { AppError } from '../errors.ts';
import { guard } from '../guard.ts';
import type { Logger } from '../log.ts';
import { writeRawError } from './raw-error.ts';

export interface ServerLimits {
  /** A client must have sent its request headers within this long (slowloris). */
  headersTimeoutMs: number;
  /** ... and its whole request, body included, within this long. */
  requestTimeoutMs: number;
  /** TCP connections (HTTP and WebSocket) served at once; more are answered 503 and closed. */
  maxConnections: number;
}

/**
 * The node's HTTP server around a fetch handler (the Hono app), hardened (see hardenServer): a
 * request that cannot even become a Request, or a handler that throws past the app, still gets
 * the JSON error body every other refusal has.
 */
export function createHttpServer(
  fetch: (req: Request, env: unknown) => Response | Promise<Response>,
  limits: ServerLimits,
  log: Logger,
  /** Serves some requests itself (returns true) before the app: the POST /message path (post-message.ts). */
  direct?: (req: IncomingMessage, res: ServerResponse) => boolean,
): Server {
  const app = getRequestListener(fetch, {
    // A request the adaptor cannot even turn into a Request (bad Host, bad URL): JSON like the rest.
    errorHandler: (err) => {
      log.debug({ err }, 'request could not be read');
      return Response.json(new AppError('bad_request').toJSON(), { status: 400 });
    },
  });
  const listener = direct ? (req: IncomingMessage, res: ServerResponse) => (direct(req, res) ? undefined : app(req, res)) : app;
  const server = createServer(
    serverOptions(limits),
    guard(log, 'request', listener, (_err, _req, res) => {
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'application/json', Connection: 'close' });
      res.end(JSON.stringify(new AppError('internal').toJSON()));
    }),
  );
  hardenServer(server, limits, log);
  return server;
}

/** Options for http.createServer: Node checks the two timeouts every `connectionsCheckingInterval`. */
export function serverOptions(limits: ServerLimits): ServerOptions {
  return {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    // Node's default (30 s) would let a slow client overstay a 15 s deadline by up to 30 s.
    connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs),
  };
}

/**
 * What Node's HTTP server does for slow, malformed and too many clients, made to answer in JSON
 * and never to stop the process:
 * - parser errors (431 headers too large, 400 malformed, 408 too slow) get a JSON body;
 * - past `maxConnections` a new connection gets `503 too_many_connections` and is closed, so
 *   descriptors stay for the clients already served (SQLite, the broker, their sockets);
 * - a server-level error (EMFILE on accept) is logged, not thrown.
 */
export function hardenServer(server: Server, limits: ServerLimits, log: Logger): { readonly connections: number } {
  let open = 0;
  // One listener for every connection ('close' comes once): a `once` per connection costs a closure and its wrapper.
  const closed = () => {
    open--;
  };
  server.on(
    'connection',
    guard(log, 'connection', (socket: Socket) => {
      if (open >= limits.maxConnections) {
        log.warn({ open, max: limits.maxConnections }, 'connection ceiling reached; refusing a connection');
        writeRawError(socket, new AppError('too_many_connections', undefined, { headers: { 'Retry-After': '5' } }));
        return;
      }
      open++;
      socket.on('close', closed);
    }),
  );
  server.on(
    'clientError',
    guard(
      log,
      'clientError',
      (err: NodeJS.ErrnoException, socket: Socket) => {
        if (err.code === 'ECONNRESET' || !socket.writable) return void socket.destroy();
        writeRawError(socket, clientErrorToAppError(err));
      },
      (_err, _e, socket) => socket.destroy(),
    ),
  );
  server.on('error', (err) => log.error({ err }, 'HTTP server error'));
  return {
    get connections() {
      return open;
    },
  };
}

function clientErrorToAppError(err: NodeJS.ErrnoException): AppError {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return new AppError('headers_too_large');
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new AppError('request_timeout');
    default:
      return new AppError('bad_request', `The request is malformed HTTP (${err.code ?? 'parse error'}).`);
  }
}
