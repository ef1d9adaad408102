import type { AsyncMessage, Channel, Connection } from 'rabbitmq-client';
import { guard } from '../guard.ts';
import { withTimeout } from '../timeout.ts';
import type { Logger } from '../log.ts';
import type { Broker } from './connection.ts';
import { ensureStream, type StreamSpec } from './stream.ts';

/** One record as the stream delivered it. */
export interface Delivery {
  offset: number;
  body: Buffer;
}

/**
 * Where the consumer hands the log: batches, plus an explicit probe. It knows nothing of
 * storage or of the log's continuity; the owner (the node's Replica) decides what a batch means.
 */
export interface LogSink<T> {
  /**
   * Throws while the store cannot take a commit. Runs before every (re)subscribe, so after a
   * failed commit the node stays unready (and reads nothing) until the fault clears.
   */
  probe(): void;
  /**
   * Begins a subscription: where to ask the broker to start (`from`) and the first offset not
   * yet stored (`next`, for the log line). `peekFirst` reads the stream's first record
   * (undefined when none arrives in time) for a sink that wants to check which log it is.
   */
  open(peekFirst: () => Promise<Delivery | undefined>): Promise<{ from: number; next: number }>;
  /**
   * Commits one batch (synchronously, one transaction). Throwing means nothing was stored.
   * `resubscribe` means the stream is not the log the sink stored (it has reset itself):
   * nothing is acked and the consumer starts a new subscription, with `error` as the reason.
   */
  commit(batch: Delivery[]): Committed<T>;
  /** Runs after the commit and the ack, with what `commit` returned. */
  deliver(result: T): void;
}

export type Committed<T> = { resubscribe: false; result: T } | { resubscribe: true; error: string };

export interface StreamConsumerOptions<T> {
  broker: Broker;
  stream: StreamSpec;
  /** Unacked deliveries the broker may have in flight to this node (basic.qos); also the largest batch. */
  prefetch: number;
  log: Logger;
  sink: LogSink<T>;
}

/** How long to wait for the first record of the stream when checking which log it is. */
const PEEK_TIMEOUT_MS = 1000;

/**
 * How long attaching (declare, peek, qos, consume) may take before the subscription gives up and
 * starts again on a new channel. Each step is normally milliseconds; this bounds a broker RPC that
 * is never answered (as can happen while a cluster elects a new stream leader), which would
 * otherwise leave the node unattached, refusing every post with 503, until it restarts.
 */
const ATTACH_TIMEOUT_MS = 15_000;

export type ConsumerState = 'starting' | 'consuming' | 'retrying' | 'stopped';

const backoffMs = (attempt: number) => Math.min(250 * 2 ** attempt, 5000);

/**
 * In a cluster, a broker node that has just (re)joined refuses stream consumers for a few
 * seconds, until its replica of the stream is back: PRECONDITION_FAILED "... does not have a
 * replica on the local node". Transient, so it is retried at a short fixed pace; it is also
 * what a node without any replica answers (STREAM_REPLICAS below the cluster size), which the
 * log line names.
 */
const NO_LOCAL_REPLICA = /does not have a replica on the local node/;
const NO_LOCAL_REPLICA_RETRY_MS = 500;

/**
 * The node's reader of the log. Subscribes with manual acks, an explicit prefetch and
 * `x-stream-offset` where the sink says; groups deliveries that arrive together into one
 * batch; has the sink commit it, acks (once per batch) and then has the sink deliver it. Any failure — lost
 * connection, cancelled consumer, failed commit — closes the subscription and starts a new one
 * from the stored offset after a backoff, so nothing past a failure is acked or pushed and
 * nothing is skipped.
 */
export class StreamConsumer<T> {
  private readonly options: StreamConsumerOptions<T>;
  private state: ConsumerState = 'starting';
  private lastError: string | undefined;
  private running: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private current: StreamSubscription<T> | undefined;
  private stopping = false;
  /** Counts (re)connections; `attachedOn` is the one on which a subscription last got going. */
  private connections = 0;
  private attachedOn = -1;

  constructor(options: StreamConsumerOptions<T>) {
    this.options = options;
    options.broker.conn.on('connection', () => this.connections++);
  }

  /**
   * True once a subscription got going on the current broker connection: the stream's writer is
   * up. After a broker restart RabbitMQ 3.10 can route to (and confirm for) a stream whose writer
   * is not up yet and then drop the message, so publishing waits for this.
   */
  attached(): boolean {
    return this.options.broker.ready() && this.attachedOn === this.connections;
  }

  start(): void {
    this.running ??= this.supervise();
  }

  status(): { state: ConsumerState; error?: string } {
    return this.lastError && this.state !== 'consuming' ? { state: this.state, error: this.lastError } : { state: this.state };
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
    let noReplicaSince: number | undefined;
    let noReplicaRetries = 0;
    while (!this.stopping) {
      const sub = new StreamSubscription(this.options, () => {
        this.attachedOn = this.connections;
        attempt = 0;
        noReplicaSince = undefined;
        noReplicaRetries = 0;
        this.lastError = undefined;
        if (!this.stopping) this.state = 'consuming';
      });
      this.current = sub;
      try {
        await sub.run();
      } catch (err) {
        if (this.stopping) break;
        this.lastError = (err as Error)?.message ?? String(err);
        if (NO_LOCAL_REPLICA.test(this.lastError)) {
          noReplicaSince ??= Date.now();
          // The first refusal and then one line every ~10 s, not one per retry.
          if (noReplicaRetries++ % 20 === 0) {
            this.options.log.warn(
              { err: this.lastError, waitedMs: Date.now() - noReplicaSince },
              'this broker node has no replica of the stream yet (it just rejoined, or STREAM_REPLICAS is below the cluster size); retrying',
            );
          }
        } else {
          noReplicaSince = undefined;
          noReplicaRetries = 0;
          const msg = this.options.broker.ready() ? 'stream consumer stopped; resubscribing from the stored offset' : 'broker unreachable; retrying';
          this.options.log.warn({ err: this.lastError, attempt: attempt + 1 }, msg);
        }
      }
      this.current = undefined;
      if (this.stopping) break;
      this.state = 'retrying';
      const delay = noReplicaSince !== undefined ? NO_LOCAL_REPLICA_RETRY_MS : backoffMs(attempt++);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delay);
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
class StreamSubscription<T> {
  private readonly options: StreamConsumerOptions<T>;
  private readonly onAttached: () => void;
  private ch: Channel | undefined;
  private active = true;
  private buffer: AsyncMessage[] = [];
  private scheduled = false;
  private fail: ((err: Error) => void) | undefined;
  private abort: ((why?: Error) => void) | undefined;
  private readonly aborted = new Promise<never>((_, reject) => {
    this.abort = (why = new Error('subscription closed')) => reject(why);
  });

  constructor(options: StreamConsumerOptions<T>, onAttached: () => void) {
    this.options = options;
    this.onAttached = onAttached;
  }

  async run(): Promise<void> {
    const { broker, stream, prefetch } = this.options;
    const connection = broker.conn;
    this.aborted.catch(() => {});
    const attachTimer = setTimeout(() => this.abort?.(new Error(`attaching to the stream took longer than ${ATTACH_TIMEOUT_MS / 1000} s`)), ATTACH_TIMEOUT_MS);
    // Every wait below also ends on a stop or at the attach deadline (a broker RPC may never be answered).
    const step = <R>(p: Promise<R>) => Promise.race([p, this.aborted]);
    try {
      // While the broker is down these wait for it.
      await step(ensureStream(connection, stream));
      const acquiring = connection.acquire();
      const ch = await step(acquiring).catch((err) => {
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
        this.options.sink.probe();
        const { from, next } = await this.options.sink.open(() => step(peekFirst(connection, stream.name)));
        await step(ch.basicQos({ prefetchCount: prefetch }));
        await step(ch.basicConsume({ queue: stream.name, noAck: false, arguments: { 'x-stream-offset': BigInt(from) } }, this.contain((msg: AsyncMessage) => this.onMessage(msg))));
        clearTimeout(attachTimer);
        this.options.log.info({ stream: stream.name, offset: next }, 'consuming stream');
        this.onAttached();
        await ended;
      } finally {
        this.active = false;
        if (ch.active) await ch.close().catch(() => {});
      }
    } finally {
      clearTimeout(attachTimer);
    }
  }

  /** Ends the subscription; with `flush`, commits what has already arrived first. */
  async close(flush: boolean): Promise<void> {
    if (flush && this.active) this.flush();
    this.active = false;
    this.abort?.();
    if (this.ch?.active) await this.ch.close().catch(() => {});
  }

  /**
   * A delivery callback that throws must not reach the process: the subscription ends and the
   * consumer re-reads from the stored offset, as after any failed commit.
   */
  private contain<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void {
    return guard(this.options.log, 'stream delivery', fn, (err: unknown, ..._args: A) => {
      this.active = false;
      this.fail?.(err instanceof Error ? err : new Error(String(err)));
    });
  }

  private onMessage(msg: AsyncMessage): void {
    if (!this.active) return;
    this.buffer.push(msg);
    if (this.buffer.length >= this.options.prefetch) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      // Deliveries decoded from one socket read are each dispatched with setImmediate; this
      // one is queued behind them, so everything that arrived together is one batch.
      setImmediate(this.contain(() => this.flush()));
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
    let committed: Committed<T>;
    try {
      committed = this.options.sink.commit(batch);
    } catch (err) {
      this.options.log.error({ err }, 'commit failed; nothing acked, will re-read from the stored offset');
      this.active = false;
      this.fail?.(err as Error);
      return;
    }
    if (committed.resubscribe) {
      this.active = false;
      this.fail?.(new Error(committed.error));
      return;
    }
    this.ch!.basicAck({ deliveryTag: lastTag, multiple: true });
    this.options.sink.deliver(committed.result);
  }
}

/** Reads the stream's first record on a channel of its own (prefetch 1), or undefined if none comes in time. */
async function peekFirst(connection: Connection, stream: string): Promise<Delivery | undefined> {
  const ch = await connection.acquire();
  try {
    await ch.basicQos({ prefetchCount: 1 });
    const first = new Promise<Delivery | undefined>((resolve) => {
      ch.basicConsume({ queue: stream, noAck: false, arguments: { 'x-stream-offset': 'first' } }, (msg) =>
        resolve({ offset: Number(msg.headers?.['x-stream-offset']), body: toBuffer(msg.body) }),
      ).catch(() => resolve(undefined));
    });
    return await withTimeout(first, PEEK_TIMEOUT_MS);
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
