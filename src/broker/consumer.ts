import type { AsyncMessage, Channel, Connection } from 'rabbitmq-client';
import type { Logger } from '../log.ts';
import type { Broker } from './connection.ts';
import { ensureStream, type StreamSpec } from './stream.ts';

/** One record as the stream delivered it. */
export interface Delivery {
  offset: number;
  body: Buffer;
}

/**
 * What the consumer hands the log to. It knows nothing of storage; the owner (the node's
 * Replica) decides what a batch means and how the log's continuity is checked.
 */
export interface LogHandler<T> {
  /** The offset to (re)start from: the one after the last stored. Read at every (re)subscribe. */
  startOffset(): number;
  /** Commits a batch (synchronously, one transaction). Throwing means nothing was stored. */
  persist(batch: Delivery[]): T;
  /** Runs after the commit and the ack, with what `persist` returned. */
  deliver(result: T): void;
  /**
   * Called at each (re)subscribe of a node that has stored something, with the stream's first
   * record (undefined when none arrived in time): lets the owner notice a re-created stream
   * before reading on from its stored offset.
   */
  checkFirst(first: Delivery | undefined): void;
  /**
   * The record at the last stored offset (startOffset() - 1), which every subscribe reads again:
   * false when it is not the one stored (the stream was re-created; the owner has reset).
   */
  checkAnchor(anchor: Delivery): boolean;
  /**
   * The stream delivered an offset below the one asked for: it is shorter than the stored
   * position, so it was re-created. The owner resets its position; the consumer resubscribes.
   */
  onRewind(requested: number, got: number): void;
  /** The stream no longer held offsets from..to (retention removed them before this node read them). */
  onGap(from: number, to: number): void;
}

export interface StreamConsumerOptions<T> {
  broker: Broker;
  stream: StreamSpec;
  /** Unacked deliveries the broker may have in flight to this node (basic.qos); also the largest batch. */
  prefetch: number;
  log: Logger;
  handler: LogHandler<T>;
}

/** How long to wait for the first record of the stream when checking which log it is. */
const PEEK_TIMEOUT_MS = 1000;

export type ConsumerState = 'starting' | 'consuming' | 'retrying' | 'stopped';

const backoffMs = (attempt: number) => Math.min(250 * 2 ** attempt, 5000);

/**
 * The node's reader of the log. Subscribes with manual acks, an explicit prefetch and
 * `x-stream-offset` = the stored position; groups deliveries that arrive together into one
 * batch; persists, acks (once per batch) and then hands the batch on. Any failure — lost
 * connection, cancelled consumer, failed commit — closes the subscription and starts a new one
 * from the stored offset after a backoff, so nothing past a failure is acked or pushed and
 * nothing is skipped.
 */
export class StreamConsumer<T> {
  private readonly o: StreamConsumerOptions<T>;
  private state: ConsumerState = 'starting';
  private lastError: string | undefined;
  private running: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private current: Subscription<T> | undefined;
  private stopping = false;
  /** Counts (re)connections; `attachedOn` is the one on which a subscription last got going. */
  private connections = 0;
  private attachedOn = -1;

  constructor(options: StreamConsumerOptions<T>) {
    this.o = options;
    options.broker.conn.on('connection', () => this.connections++);
  }

  /**
   * True once a subscription got going on the current broker connection: the stream's writer is
   * up. After a broker restart RabbitMQ 3.10 can route to (and confirm for) a stream whose writer
   * is not up yet and then drop the message, so publishing waits for this.
   */
  attached(): boolean {
    return this.o.broker.ready() && this.attachedOn === this.connections;
  }

  start(): void {
    this.running ??= this.supervise();
  }

  status(): { state: ConsumerState; error?: string } {
    return this.lastError && this.state !== 'consuming' ? { state: this.state, error: this.lastError } : { state: this.state };
  }

  ready(): boolean {
    return this.state === 'consuming' && this.o.broker.ready();
  }

  /** Finishes the batch in flight, then closes the subscription. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.state = 'stopped';
    this.wake?.();
    await this.current?.close(true);
    await this.running;
  }

  private async supervise(): Promise<void> {
    let attempt = 0;
    while (!this.stopping) {
      const sub = new Subscription(this.o, () => {
        this.attachedOn = this.connections;
        attempt = 0;
        this.lastError = undefined;
        if (!this.stopping) this.state = 'consuming';
      });
      this.current = sub;
      try {
        await sub.run();
      } catch (err) {
        if (this.stopping) break;
        this.lastError = (err as Error)?.message ?? String(err);
        const msg = this.o.broker.ready() ? 'stream consumer stopped; resubscribing from the stored offset' : 'broker unreachable; retrying';
        this.o.log.warn({ err: this.lastError, attempt: attempt + 1 }, msg);
      }
      this.current = undefined;
      if (this.stopping) break;
      this.state = 'retrying';
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, backoffMs(attempt++));
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }
}

/** One subscription on one channel; it ends (its `run` settles) when anything goes wrong. */
class Subscription<T> {
  private readonly o: StreamConsumerOptions<T>;
  private readonly onAttached: () => void;
  private ch: Channel | undefined;
  private active = true;
  private buffer: AsyncMessage[] = [];
  private scheduled = false;
  private expected = 0;
  /** Offset of the already-stored record read again to prove the log is the same; -1 when none. */
  private anchor = -1;
  private fail: ((err: Error) => void) | undefined;
  private abort: (() => void) | undefined;
  private readonly aborted = new Promise<never>((_, reject) => {
    this.abort = () => reject(new Error('subscription closed'));
  });

  constructor(o: StreamConsumerOptions<T>, onAttached: () => void) {
    this.o = o;
    this.onAttached = onAttached;
  }

  async run(): Promise<void> {
    const { broker, stream, prefetch } = this.o;
    const connection = broker.conn;
    this.aborted.catch(() => {});
    // While the broker is down these wait for it; a stop must not wait with them.
    await Promise.race([ensureStream(connection, stream), this.aborted]);
    const acquiring = connection.acquire();
    const ch = await Promise.race([acquiring, this.aborted]).catch((err) => {
      acquiring.then((late) => late.close()).catch(() => {});
      throw err;
    });
    this.ch = ch;
    const ended = new Promise<void>((resolve, reject) => {
      this.fail = reject;
      ch.once('close', () => (this.active ? reject(new Error('channel closed')) : resolve()));
      ch.on('basic.cancel', () => reject(new Error('consumer cancelled by the broker (stream deleted?)')));
    });
    ended.catch(() => {}); // observed below; avoid an unhandled rejection while setting up
    try {
      // A cheap write proves the database takes commits before anything is read (after a failed
      // commit this is what keeps the node unready until the fault clears).
      this.o.handler.persist([]);
      if (this.o.handler.startOffset() > 0) this.o.handler.checkFirst(await Promise.race([peekFirst(connection, stream.name), this.aborted]));
      await ch.basicQos({ prefetchCount: prefetch });
      this.expected = this.o.handler.startOffset();
      // Start one record early: the last stored one comes back first and must be the same record.
      // (A stream re-created shorter than our position would otherwise make the broker wait,
      // silently, until the new log reaches it.)
      this.anchor = this.expected - 1;
      await ch.basicConsume(
        { queue: stream.name, noAck: false, arguments: { 'x-stream-offset': BigInt(Math.max(this.anchor, 0)) } },
        (msg) => this.onMessage(msg),
      );
      this.o.log.info({ stream: stream.name, offset: this.expected }, 'consuming stream');
      this.onAttached();
      await ended;
    } finally {
      this.active = false;
      if (ch.active) await ch.close().catch(() => {});
    }
  }

  /** Ends the subscription; with `flush`, commits what has already arrived first. */
  async close(flush: boolean): Promise<void> {
    if (flush && this.active) this.flush();
    this.active = false;
    this.abort?.();
    if (this.ch?.active) await this.ch.close().catch(() => {});
  }

  private onMessage(msg: AsyncMessage): void {
    if (!this.active) return;
    this.buffer.push(msg);
    if (this.buffer.length >= this.o.prefetch) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      // Deliveries decoded from one socket read are each dispatched with setImmediate; this
      // one is queued behind them, so everything that arrived together is one batch.
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.scheduled = false;
    if (!this.active || this.buffer.length === 0) return;
    const msgs = this.buffer;
    this.buffer = [];
    const batch: Delivery[] = new Array(msgs.length);
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i]!;
      batch[i] = { offset: Number(m.headers?.['x-stream-offset']), body: toBuffer(m.body) };
    }
    const lastTag = msgs[msgs.length - 1]!.deliveryTag;
    if (this.anchor >= 0) {
      const anchor = this.anchor;
      this.anchor = -1;
      if (batch[0]!.offset === anchor) {
        if (!this.o.handler.checkAnchor(batch[0]!)) {
          this.active = false;
          this.fail?.(new Error(`the record at offset ${anchor} changed: the stream was re-created`));
          return;
        }
        batch.shift();
        if (batch.length === 0) {
          this.ch!.basicAck({ deliveryTag: lastTag, multiple: true });
          return;
        }
      }
    }
    const first = batch[0]!.offset;
    if (first < this.expected) {
      this.o.handler.onRewind(this.expected, first);
      this.active = false;
      this.fail?.(new Error(`stream rewound from offset ${this.expected} to ${first}: re-created`));
      return;
    }
    if (first > this.expected) this.o.handler.onGap(this.expected, first - 1);
    this.expected = batch[batch.length - 1]!.offset + 1;
    let result: T;
    try {
      result = this.o.handler.persist(batch);
    } catch (err) {
      this.o.log.error({ err }, 'commit failed; nothing acked, will re-read from the stored offset');
      this.active = false;
      this.fail?.(err as Error);
      return;
    }
    this.ch!.basicAck({ deliveryTag: lastTag, multiple: true });
    this.o.handler.deliver(result);
  }
}

/** Reads the stream's first record on a channel of its own (prefetch 1), or undefined if none comes in time. */
async function peekFirst(connection: Connection, stream: string): Promise<Delivery | undefined> {
  const ch = await connection.acquire();
  try {
    await ch.basicQos({ prefetchCount: 1 });
    let timer: NodeJS.Timeout | undefined;
    const first = new Promise<Delivery | undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), PEEK_TIMEOUT_MS);
      ch.basicConsume({ queue: stream, noAck: false, arguments: { 'x-stream-offset': 'first' } }, (msg) =>
        resolve({ offset: Number(msg.headers?.['x-stream-offset']), body: toBuffer(msg.body) }),
      ).catch(() => resolve(undefined));
    });
    const got = await first;
    clearTimeout(timer);
    return got;
  } finally {
    await ch.close().catch(() => {});
  }
}

function toBuffer(body: unknown): Buffer {
  if (Buffer.isBuffer(body)) return body;
  // rabbitmq-client decodes text/plain and application/json bodies itself; re-encode so that
  // every record goes through the same decoder and validation.
  return Buffer.from(typeof body === 'string' ? body : JSON.stringify(body), 'utf8');
}
