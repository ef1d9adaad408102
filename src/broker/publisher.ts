import type { Broker } from './connection.ts';
import { BrokerUnavailableError } from './errors.ts';

export type Publish = (record: Buffer) => Promise<void>;

export interface PublisherHandle {
  publish: Publish;
  close(): Promise<void>;
}

/** A publish waiting for its confirm, oldest first (every one has the same timeout, so deadlines are in order). */
interface Pending {
  deadline: number;
  /** performance.now() at send, when observed */
  start: number;
  resolve: () => void;
  reject: (err: BrokerUnavailableError) => void;
  settled: boolean;
}

/**
 * Publishes to the stream with publisher confirms, persistent delivery and `mandatory`, and
 * resolves only once the broker confirmed. Never waits longer than `timeoutMs`: a down, blocked
 * or slow broker turns into a BrokerUnavailableError (the edges answer 503 + Retry-After) instead
 * of a hang.
 *
 * `mandatory` matters: without it a message published while the stream does not exist is
 * dropped by the broker and still confirmed.
 *
 * Deadlines cost no timer per publish: publishes wait in one FIFO (equal timeouts, so it is in
 * deadline order) and one timer, armed for the oldest, expires what is overdue (withTimeout, one
 * timer and a race per call, is for the rare waits). `observe`, when
 * given, gets each publish's seconds until its confirm, refusal or timeout.
 */
export function createPublisher(broker: Broker, stream: string, timeoutMs: number, streamReady: () => boolean, observe?: (seconds: number) => void): PublisherHandle {
  const conn = broker.conn;
  const returned = new Set<string>();
  let counter = 0;
  const pub = conn.createPublisher({ confirm: true, maxAttempts: 1 });
  pub.on('basic.return', (msg) => {
    if (msg.messageId) returned.add(msg.messageId);
  });

  let queue: Pending[] = [];
  let head = 0;
  let timer: NodeJS.Timeout | undefined;

  /** Rejects every overdue publish, drops settled ones from the front, re-arms for the next deadline. */
  const expire = () => {
    timer = undefined;
    const now = Date.now();
    while (head < queue.length) {
      const p = queue[head]!;
      if (!p.settled) {
        if (p.deadline > now) break;
        // A send abandoned at the deadline may still complete later; its return is forgotten then.
        p.settled = true;
        observe?.((performance.now() - p.start) / 1000);
        p.reject(new BrokerUnavailableError('publish timed out'));
      }
      head++;
    }
    if (head === queue.length) {
      queue = [];
      head = 0;
    } else {
      if (head > 1024 && head * 2 > queue.length) {
        queue = queue.slice(head);
        head = 0;
      }
      arm(queue[head]!.deadline - now);
    }
  };
  const arm = (ms: number) => {
    timer = setTimeout(expire, Math.max(ms, 1));
    timer.unref();
  };

  const publish: Publish = (record) => {
    if (!broker.ready()) return Promise.reject(new BrokerUnavailableError('not connected'));
    // See StreamConsumer.attached(): right after a broker restart RabbitMQ 3.10 can confirm a
    // message for a stream whose writer is not up yet, and drop it.
    if (!streamReady()) return Promise.reject(new BrokerUnavailableError('stream not attached yet'));
    const tag = `p${++counter}`;
    const start = observe ? performance.now() : 0;
    broker.corkForThisTurn();
    const sent = pub.send({ routingKey: stream, durable: true, mandatory: true, messageId: tag }, record);
    return new Promise<void>((resolve, reject) => {
      const p: Pending = { deadline: Date.now() + timeoutMs, start, resolve, reject, settled: false };
      queue.push(p);
      if (timer === undefined) arm(timeoutMs);
      const settle = (err: BrokerUnavailableError | undefined) => {
        // The broker sends basic.return before the confirm, so it has been seen by now.
        const wasReturned = returned.delete(tag);
        if (p.settled) return;
        p.settled = true;
        if (observe) observe((performance.now() - start) / 1000);
        if (err) reject(err);
        else if (wasReturned) reject(new BrokerUnavailableError('stream does not exist'));
        else resolve();
      };
      sent.then(
        () => settle(undefined),
        (err: unknown) => settle(err instanceof BrokerUnavailableError ? err : new BrokerUnavailableError((err as Error)?.message ?? 'publish failed')),
      );
    });
  };

  // Publishes still waiting keep their deadline (the timer is unref'd and stops once they are settled).
  return { publish, close: () => pub.close() };
}
