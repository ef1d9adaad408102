import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { createAcceptor } from './accept.ts';
import { createMarkRead } from './mark-read.ts';
import { listRooms } from './store/conversations.ts';
import { RateLimiter } from './auth/rate-limit.ts';
import { verifyToken } from './auth/tokens.ts';
import { connectBroker, streamLength } from './broker/connection.ts';
import { StreamConsumer } from './broker/consumer.ts';
import { createPublisher } from './broker/publisher.ts';
import { connectSignalBus } from './broker/signals.ts';
import { ConfigError, type Config } from './config.ts';
import { createApp } from './http/app.ts';
import { corsMiddleware, originAllowed } from './http/cors.ts';
import { createHttpServer } from './http/server.ts';
import { postMessagePath } from './http/post-message.ts';
import { metricsRoutes, observeRequests } from './http/operations.ts';
import { apiDocRoutes } from './http/api-docs.ts';
import { Metrics } from './metrics.ts';
import { Hub } from './hub/hub.ts';
import { LiveSignals } from './hub/live-signals.ts';
import { DEFAULT_REPLAY_BUDGET } from './hub/replay-lane.ts';
import { attachWebSocket, type WebSocketEndpoint, type WebSocketOptions } from './hub/websocket.ts';
import { startParts, type Part } from './lifecycle.ts';
import type { Logger } from './log.ts';
import { startCheckpointer } from './store/checkpointer.ts';
import { openDb } from './store/db.ts';
import { decideReadiness } from './readiness.ts';
import { Replica } from './replica.ts';
import { MessageStore } from './store/messages.ts';

export interface RunningNode {
  /** The port actually bound (useful with PORT=0). */
  port: number;
  /** Graceful stop: stop accepting, finish in-flight work, close sockets (1001), broker, database. */
  stop(): Promise<void>;
  /** The HTTP routes the app serves (method + Hono path), e.g. for checking the API documents cover them. */
  routes(): { method: string; path: string }[];
}

/**
 * The composition root: builds every part, wires them in the one direction data flows
 * (http -> broker -> consumer -> store -> hub), starts them in order and stops them in reverse.
 */
export async function startNode(config: Config, log: Logger, metrics = new Metrics()): Promise<RunningNode> {
  const db = openOrExplain(config.databasePath);
  const store = new MessageStore(db, config.streamName);
  store.apply = metrics.timeCommits(store.apply.bind(store));
  const checkpointer = startCheckpointer(config.databasePath, (pages) => db.$client.pragma(`wal_autocheckpoint = ${pages}`), log);

  const hub = new Hub(
    {
      roomPage: (room, after, limit, maxBytes) => store.roomReplayPage(room, after, limit, maxBytes),
      roomHead: (room) => store.roomHead(room),
      lastCursor: (room, n) => store.lastCursor(room, n),
      epoch: () => store.epoch(),
    },
    { ...DEFAULT_REPLAY_BUDGET, burstBytes: config.wsReplayBurstBytes, bytesPerSecond: config.wsReplayBytesPerSecond },
  );

  hub.push = metrics.timeDeliveries(hub.push.bind(hub));
  const broker = connectBroker(config.rabbitmqUrls, log, `chat-node ${config.streamName} pid ${process.pid}`, config.rabbitmqHeartbeatSeconds);
  const replica = new Replica(store, hub, log, config.databasePath);
  const consumer = new StreamConsumer({
    broker,
    stream: { name: config.streamName, maxAge: config.streamMaxAge, replicas: config.streamReplicas },
    prefetch: config.consumerPrefetch,
    log,
    sink: replica,
  });
  const publisher = createPublisher(broker, config.streamName, config.publishTimeoutMs, () => consumer.attached(), metrics.observeConfirm);
  const publish = publisher.publish;
  // Typing and presence: their own queue and channel, never the log's; a failure there only drops signals.
  const signalBus = connectSignalBus(broker, config.streamName, log);
  const live = new LiveSignals(signalBus, log, {
    heartbeatMs: config.presenceHeartbeatMs,
    ttlMs: config.presenceTtlMs,
    queryWaitMs: config.presenceQueryWaitMs,
  });

  const limits = { headersTimeoutMs: config.httpHeadersTimeoutMs, requestTimeoutMs: config.httpRequestTimeoutMs, maxConnections: config.maxConnections };
  const limiter = new RateLimiter(config.rateLimitPerMinute);
  const accept = metrics.countPosts(createAcceptor({ publish, limiter, maxMessageBytes: config.maxMessageBytes, stored: (id) => store.byId(id) }));
  const markRead = createMarkRead({ publish, limiter });
  const secret = config.authSecret;
  const authenticate = secret ? (token: string) => verifyToken(token, secret) : undefined;
  // The app is built below; requests only arrive after listen(). POST /message skips the app (its
  // hot path), except with CORS configured: then the app's middleware adds its headers to it too.
  const direct = config.corsOrigins === undefined ? postMessagePath({ accept, authenticate, maxMessageBytes: config.maxMessageBytes, log, observe: metrics.httpRequest.bind(metrics) }) : undefined;
  const server = createHttpServer((req, env) => app.fetch(req, env), limits, log, direct);

  const sockets = attachWebSocket(server, { hub, live, accept, markRead, authenticate, log }, socketOptions(config, metrics));
  const app = createApp({
    accept,
    authenticate,
    readPage: (q) => store.pageJson(q),
    readBefore: (room, before, limit) => store.beforeJson(room, before, limit),
    markRead,
    listRooms: (q) => listRooms(store.readState, q),
    epoch: () => store.epoch(),
    presence: (room) => live.presence(room),
    maxMessageBytes: config.maxMessageBytes,
    log,
    demo: config.demoPage,
    before: [observeRequests(log, metrics), corsMiddleware(config.corsOrigins)].filter((m) => m !== undefined),
    routes: [metricsRoutes(metrics, config.metricsToken), apiDocRoutes(config.maxMessageBytes)],
    metricsToken: config.metricsToken,
    readiness: () =>
      decideReadiness({
        database: { open: db.$client.open },
        broker: { connected: broker.ready() },
        consumer: consumer.status(),
        replica: replica.status(),
        sockets: sockets.connections,
      }),
  });
  metrics.attach({
    sockets: () => sockets.connections,
    hub: () => ({ ...hub.stats, delivered: hub.delivered, subscribes: hub.subscribes }),
    brokerConnected: () => broker.ready(),
    storedThrough: () => store.lastOffset() + 1,
    skippedRecords: () => replica.invalidRecords,
    streamLength: () => streamLength(broker, config.streamName),
  });

  // Stopped in reverse: HTTP and sockets first (in-flight posts finish), the database last.
  const stopAll = await startParts(
    [
      { name: 'database', stop: () => void db.$client.close() },
      { name: 'checkpointer', stop: () => checkpointer.stop() },
      { name: 'broker', stop: () => broker.conn.close().catch(() => {}) },
      { name: 'publisher', stop: () => publisher.close().catch(() => {}) },
      { name: 'consumer', start: () => consumer.start(), stop: () => consumer.stop() },
      { name: 'signals', stop: () => signalBus.stop() },
      // after the sockets (their leaves went out): now the goodbye
      { name: 'presence', stop: () => live.stop() },
      httpPart(server, sockets, config),
    ],
    log,
  );
  const port = (server.address() as AddressInfo).port;
  log.info({ port, host: config.host, stream: config.streamName, database: config.databasePath }, 'listening');

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      log.info('shutting down');
      await stopAll();
      log.info('stopped');
    })());

  return { port, stop, routes: () => app.routes.map(({ method, path }) => ({ method, path })) };
}

/** The WebSocket endpoint's limits, all from the config, and its metrics. */
function socketOptions(config: Config, metrics: Metrics): WebSocketOptions {
  return {
    maxPayload: config.wsMaxPayloadBytes,
    pingIntervalMs: config.wsPingIntervalMs,
    maxBufferedBytes: config.wsMaxBufferedBytes,
    maxSubscriptions: config.wsMaxSubscriptions,
    maxSocketsPerUser: config.wsMaxSocketsPerUser,
    maxSocketsPerIp: config.wsMaxSocketsPerIp,
    frameBurst: config.wsFrameBurst,
    framesPerSecond: config.wsFramesPerSecond,
    authTimeoutMs: config.wsAuthTimeoutMs,
    originAllowed: (origin) => originAllowed(config.corsOrigins, origin),
    observe: { opened: () => metrics.socketOpened(), closed: (code) => metrics.socketClosed(code) },
  };
}

/** The HTTP server as a part: listens on start; on stop, in-flight requests finish and sockets close (1001). */
function httpPart(server: Server, sockets: WebSocketEndpoint, config: Config): Part {
  return {
    name: 'http',
    start: () =>
      new Promise<void>((resolve, reject) => {
        server.once('error', (err) => reject(listenProblem(err as NodeJS.ErrnoException, config)));
        server.listen(config.port, config.host, () => {
          server.removeAllListeners('error');
          resolve();
        });
      }),
    async stop() {
      const httpClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      // In-flight POSTs finish (each is bounded by the publish deadline), then the rest is cut.
      const forced = setTimeout(() => server.closeAllConnections(), config.publishTimeoutMs + 500);
      await sockets.close();
      await httpClosed;
      clearTimeout(forced);
    },
  };
}

/** The database file, or a ConfigError naming DATABASE_PATH (a folder not writable, a file not a database, ...). */
function openOrExplain(path: string) {
  try {
    return openDb(path);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new ConfigError(`DATABASE_PATH ${JSON.stringify(path)} cannot be opened for writing: ${e.code && !e.message.startsWith(e.code) ? `${e.code} ` : ''}${e.message}`);
  }
}

/** A listen failure as one line naming the setting to change. */
function listenProblem(err: NodeJS.ErrnoException, config: Config): Error {
  const where = `${config.host}:${config.port}`;
  if (err.code === 'EADDRINUSE') return new ConfigError(`PORT ${config.port} is already in use on HOST ${config.host}: stop the other process or set PORT to a free port`);
  if (err.code === 'EACCES') return new ConfigError(`PORT ${config.port} needs privileges this process lacks (${where}): use a port above 1023`);
  if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND') return new ConfigError(`HOST ${config.host} is not an address of this machine: ${err.message}`);
  return err;
}
