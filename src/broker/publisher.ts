import type { Broker } from './connection.ts';
import { withTimeout } from '../timeout.ts';
import { BrokerUnavailableError } from './errors.ts';

export type Publish = (record: Buffer) => Promise<void>;

export interface PublisherHandle {
  publish: Publish;
  close(): Promise<void>;
}

/**
 * Publishes to the stream with publisher confirms, persistent delivery and `mandatory`, and
 * resolves only once the broker confirmed. Never waits longer than `timeoutMs`: a down, blocked
 * or slow broker turns into a BrokerUnavailableError (the edges answer 503 + Retry-After) instead
 * of a hang.
 *
 * `mandatory` matters: without it a message published while the stream does not exist is
 * dropped by the broker and still confirmed.
 */
export function createPublisher(broker: Broker, stream: string, timeoutMs: number, streamReady: () => boolean): PublisherHandle {
  const conn = broker.conn;
  const returned = new Set<string>();
  let counter = 0;
  const pub = conn.createPublisher({ confirm: true, maxAttempts: 1 });
  pub.on('basic.return', (msg) => {
    if (msg.messageId) returned.add(msg.messageId);
  });

  const publish: Publish = async (record) => {
    if (!broker.ready()) throw new BrokerUnavailableError('not connected');
    // See StreamConsumer.attached(): right after a broker restart RabbitMQ 3.10 can confirm a
    // message for a stream whose writer is not up yet, and drop it.
    if (!streamReady()) throw new BrokerUnavailableError('stream not attached yet');
    const tag = `p${++counter}`;
    broker.corkForThisTurn();
    const sent = pub.send({ routingKey: stream, durable: true, mandatory: true, messageId: tag }, record);
    try {
      await withTimeout(sent, timeoutMs, () => {
        throw new BrokerUnavailableError('publish timed out');
      });
    } catch (err) {
      // A send abandoned at the deadline may still complete later; forget its return then.
      sent.then(
        () => returned.delete(tag),
        () => returned.delete(tag),
      );
      if (err instanceof BrokerUnavailableError) throw err;
      throw new BrokerUnavailableError((err as Error)?.message ?? 'publish failed');
    }
    // The broker sends basic.return before the confirm, so it has been seen by now.
    if (returned.delete(tag)) throw new BrokerUnavailableError('stream does not exist');
  };

  return { publish, close: () => pub.close() };
}
