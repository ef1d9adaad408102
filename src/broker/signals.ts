import type { AsyncMessage, Channel, Consumer } from 'rabbitmq-client';
import type { Logger } from '../log.ts';
import type { Broker } from './connection.ts';

/**
 * Live signals (typing, presence) between nodes, beside the log and never in it: one direct
 * exchange `<stream>.signals` (not durable: nothing in it outlives a broker restart, nor needs
 * to), the room as routing key, and per node one exclusive, auto-delete, server-named queue that
 * is bound to a room only while the node has a subscriber there. The queue dies with the node's
 * connection, so a stopped or killed node leaves nothing behind on the broker.
 *
 * Everything here is best effort and fire-and-forget: while the broker is away signals are
 * dropped (the caller re-announces on `onConnected`), and nothing here shares a channel with the
 * log's publisher or consumer, so a failing signal can never hold a message back.
 */
export interface SignalBus {
  /** This node's queue (where direct replies go) while connected; undefined while not. */
  readonly address: string | undefined;
  ready(): boolean;
  /** Starts receiving `room`'s signals. Ordered with `unbind` and publishes. */
  bind(room: string): void;
  unbind(room: string): void;
  /** To every node bound to `room`. */
  toRoom(room: string, msg: object): void;
  /** To every node on the exchange. */
  toAll(msg: object): void;
  /** To one node, by its `address`. */
  toNode(address: string, msg: object): void;
  /** Each signal received (this node's own included, when it is bound to the key). */
  onMessage(handler: (msg: unknown) => void): void;
  /**
   * The node has a fresh queue (first connect, or after the connection was lost): every binding
   * is gone and signals were missed meanwhile.
   */
  onConnected(handler: () => void): void;
  stop(): Promise<void>;
}

/** Routing key every node binds for node-wide signals; no room can be named this (see ROOM). */
export const ALL_NODES_KEY = '~nodes';

/** Signals a slow node may have waiting on the broker before the oldest are dropped: they are stale by then anyway. */
const MAX_QUEUED = 10_000;

export function connectSignalBus(broker: Broker, stream: string, log: Logger): SignalBus {
  const exchange = `${stream}.signals`;
  const { conn } = broker;
  let handler: (msg: unknown) => void = () => {};
  let connected: () => void = () => {};
  let address: string | undefined;
  let stopping = false;

  // One channel of our own for binds and publishes, so their order is kept.
  let channel: Channel | undefined;
  let opening: Promise<Channel> | undefined;
  const useChannel = (): Promise<Channel> => {
    if (channel?.active) return Promise.resolve(channel);
    return (opening ??= conn
      .acquire()
      .then((ch) => {
        ch.on('error', (err) => log.debug({ err: err?.message }, 'signals channel error'));
        channel = ch;
        return ch;
      })
      .finally(() => (opening = undefined)));
  };
  const run = (what: string, op: (ch: Channel) => Promise<unknown>) => {
    if (stopping || !conn.ready || address === undefined) return; // the reconnect re-does what matters
    useChannel()
      .then(op)
      .catch((err) => log.debug({ err: (err as Error)?.message, what }, 'signal dropped'));
  };

  const consumer: Consumer = conn.createConsumer(
    {
      queue: '',
      queueOptions: { exclusive: true, autoDelete: true, durable: false, arguments: { 'x-max-length': MAX_QUEUED } },
      exchanges: [{ exchange, type: 'direct', durable: false }],
      noAck: true,
      exclusive: true,
    },
    (msg: AsyncMessage) => {
      let body: unknown = msg.body;
      if (Buffer.isBuffer(body)) {
        try {
          body = JSON.parse(body.toString('utf8'));
        } catch {
          return;
        }
      }
      try {
        handler(body);
      } catch (err) {
        log.error({ err }, 'signal handler failed');
      }
    },
  );
  consumer.on('error', (err) => log.debug({ err: err?.message }, 'signals consumer error'));
  consumer.on('ready', () => {
    address = consumer.queue;
    run('bind', (ch) => ch.queueBind({ exchange, queue: address!, routingKey: ALL_NODES_KEY }));
    connected();
  });

  const publish = (routingKey: string, msg: object, toExchange = exchange) =>
    run('publish', (ch) => ch.basicPublish({ exchange: toExchange, routingKey, contentType: 'application/json' }, Buffer.from(JSON.stringify(msg))));

  return {
    get address() {
      return conn.ready ? address : undefined;
    },
    ready: () => conn.ready && address !== undefined,
    bind: (room) => run('bind', (ch) => ch.queueBind({ exchange, queue: address!, routingKey: room })),
    unbind: (room) => run('unbind', (ch) => ch.queueUnbind({ exchange, queue: address!, routingKey: room })),
    toRoom: (room, msg) => publish(room, msg),
    toAll: (msg) => publish(ALL_NODES_KEY, msg),
    toNode: (to, msg) => publish(to, msg, ''),
    onMessage: (h) => void (handler = h),
    onConnected: (h) => void (connected = h),
    async stop() {
      stopping = true;
      await consumer.close().catch(() => {});
      await channel?.close().catch(() => {});
      address = undefined;
    },
  };
}
