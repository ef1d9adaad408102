import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { createAdaptorServer } from '@hono/node-server';
import { createAcceptor } from './accept.ts';
import { RateLimiter } from './auth/rate-limit.ts';
import { verifyToken } from './auth/tokens.ts';
import { connectBroker } from './broker/connection.ts';
import { StreamConsumer } from './broker/consumer.ts';
import { createPublisher } from './broker/publisher.ts';
import type { Config } from './config.ts';
import { createApp } from './http/app.ts';
import { Hub } from './hub/hub.ts';
import { attachWebSocket } from './hub/websocket.ts';
import type { Logger } from './log.ts';
import { startCheckpointer } from './store/checkpointer.ts';
import { openDb } from './store/db.ts';
import { Replica } from './replica.ts';
import { MessageStore } from './store/messages.ts';

export interface RunningNode {
  /** The port actually bound (useful with PORT=0). */
  port: number;
  /** Graceful stop: stop accepting, finish in-flight work, close sockets (1001), broker, database. */
  stop(): Promise<void>;
}

/**
 * The composition root: builds every part, wires them in the one direction data flows
 * (http -> broker -> consumer -> store -> hub), and stops them in reverse order.
 */
export async function startNode(config: Config, log: Logger): Promise<RunningNode> {
  const db = openDb(config.databasePath);
  const store = new MessageStore(db, config.streamName);
  const checkpointer = startCheckpointer(config.databasePath, (pages) => db.$client.pragma(`wal_autocheckpoint = ${pages}`), log);

  const hub = new Hub({
    roomPage: (room, after, limit) => store.page({ room, after, limit }).messages,
    roomHead: (room) => store.roomHead(room),
    epoch: () => store.epoch(),
  });

  const broker = connectBroker(config.rabbitmqUrl, log, `chat-node ${config.streamName} pid ${process.pid}`, config.rabbitmqHeartbeatSeconds);
  const replica = new Replica(store, hub, log, config.databasePath);
  const consumer = new StreamConsumer({
    broker,
    stream: { name: config.streamName, maxAge: config.streamMaxAge },
    prefetch: config.consumerPrefetch,
    log,
    handler: replica,
  });
  consumer.start();
  const publisher = createPublisher(broker, config.streamName, config.publishTimeoutMs, () => consumer.attached());

  // The app is built below; requests only arrive after listen().
  const server = createAdaptorServer({ fetch: (req, env) => app.fetch(req, env) }) as Server;
  const limiter = new RateLimiter(config.rateLimitPerMinute);
  const accept = createAcceptor({ publish: publisher.publish, limiter, maxMessageBytes: config.maxMessageBytes });
  const secret = config.authSecret;
  const authenticate = secret ? (token: string) => verifyToken(token, secret) : undefined;

  const sockets = attachWebSocket(
    server,
    { hub, accept, authenticate, log },
    {
      maxPayload: 16 * 1024 + config.maxMessageBytes * 6,
      pingIntervalMs: config.wsPingIntervalMs,
      maxBufferedBytes: config.wsMaxBufferedBytes,
      maxSubscriptions: config.wsMaxSubscriptions,
      maxSocketsPerUser: config.wsMaxSocketsPerUser,
      frameBurst: 200,
      framesPerSecond: 50,
      authTimeoutMs: 5000,
    },
  );
  const app = createApp({
    accept,
    authenticate,
    readPage: (q) => store.page(q),
    epoch: () => store.epoch(),
    maxMessageBytes: config.maxMessageBytes,
    log,
    readiness: () => {
      const consumerStatus = consumer.status();
      const checks = {
        database: db.$client.open ? 'open' : 'closed',
        broker: broker.ready() ? 'connected' : 'disconnected',
        consumer: consumerStatus,
        ...replica.status(),
        sockets: sockets.connections,
      };
      return { ok: db.$client.open && consumer.ready(), checks };
    },
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  log.info({ port, host: config.host, stream: config.streamName, database: config.databasePath }, 'listening');

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      log.info('shutting down');
      const httpClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      // In-flight POSTs finish (each is bounded by the publish deadline), then the rest is cut.
      const forced = setTimeout(() => server.closeAllConnections(), config.publishTimeoutMs + 500);
      await sockets.close();
      await httpClosed;
      clearTimeout(forced);
      await consumer.stop();
      await publisher.close().catch(() => {});
      await broker.conn.close().catch(() => {});
      await checkpointer.stop();
      db.$client.close();
      log.info('stopped');
    })());

  return { port, stop };
}
