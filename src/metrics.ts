import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Accept } from './accept.ts';
import { toAppError } from './errors.ts';
import { PlainCounter, PlainHistogram } from './plain-metrics.ts';

const NO_LABELS = () => ({});

/**
 * Every Prometheus metric this server exposes, in one place (GET /metrics). Modelled on
 * Centrifugo's set: connections, subscriptions, channels, messages sent by path, commands by
 * outcome, broker state. Names carry base units and counters end in `_total`. No label ever holds
 * a user, a room or a message: label values come from small fixed sets (error codes, close codes,
 * route patterns).
 *
 * The hot path stays cheap: parts keep plain number counters of their own (the hub counts frames
 * and bytes per batch) and pass narrow recorder functions; gauges and those counters are read
 * at scrape time in collect().
 */

/** What the scrape reads from the running parts; each returns current figures, none does I/O except streamLength. */
export interface MetricSources {
  sockets(): number;
  hub(): { rooms: number; subscriptions: number; delivered: Delivered; subscribes: { after: number; last: number; live: number } };
  brokerConnected(): boolean;
  /** Records this node has stored up to (its last offset + 1). */
  storedThrough(): number;
  /** Records the stream holds now (one passive declare); undefined when the broker cannot say. */
  streamLength(): Promise<number | undefined>;
  /** Records skipped as undecodable or of an unknown kind, since start. */
  skippedRecords(): number;
}

/** Counters the hub keeps as plain numbers (incremented per batch, read at scrape). */
export interface Delivered {
  liveFrames: number;
  liveBytes: number;
  replayFrames: number;
  replayBytes: number;
}

/** WebSocket close codes worth a label of their own; anything else is counted as "other". */
const CLOSE_CODES = new Set([1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1011, 1013, 4401, 4409, 4429]);

export type CatchUpKind = 'http_after' | 'http_since' | 'http_before' | 'ws_after' | 'ws_last' | 'ws_live';

export class Metrics {
  readonly registry = new Registry();
  private sources: MetricSources | undefined;

  private readonly socketCloses = new Counter({
    name: 'chat_socket_closes_total',
    help: 'WebSocket connections closed, by close code (1001 shutdown, 1008 flooding, 1009 frame too large, 1013 slow reader, 4401 token, 4409 log reset, 4429 too many sockets; other = any other code).',
    labelNames: ['code'],
    registers: [this.registry],
  });
  private readonly socketOpens = new Counter({
    name: 'chat_socket_opens_total',
    help: 'WebSocket connections accepted.',
    registers: [this.registry],
  });
  private accepted = 0;
  private readonly postsAccepted = new Counter({
    name: 'chat_posts_accepted_total',
    help: 'Posts (HTTP POST /message and WebSocket publish) confirmed by the broker and answered accepted.',
    registers: [this.registry],
    collect: () => {
      this.postsAccepted.reset();
      this.postsAccepted.inc(this.accepted);
    },
  });
  private readonly postsRefused = new Counter({
    name: 'chat_posts_refused_total',
    help: 'Posts refused after their body was parsed, by error code (validation_failed, too_large, rate_limited, broker_unavailable, forbidden, ...).',
    labelNames: ['code'],
    registers: [this.registry],
  });
  private readonly recordsStored = new Counter({
    name: 'chat_records_stored_total',
    help: "Log records written to this node's SQLite.",
    registers: [this.registry],
  });
  private readonly commitSeconds = new Histogram({
    name: 'chat_commit_duration_seconds',
    help: "Time to commit one batch of log records to this node's SQLite.",
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [this.registry],
  });
  private readonly confirmSeconds = new PlainHistogram({
    name: 'chat_publish_confirm_duration_seconds',
    help: 'Time from publishing a record to the broker to its publisher confirm (refusals and timeouts included).',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  private readonly deliveryDelay = new PlainHistogram({
    name: 'chat_delivery_delay_seconds',
    help: "Time from a message's acceptance (its createdAt, on the accepting node's clock) until this node had pushed it to its sockets: publish, broker, consume, commit and push together. Across nodes it includes their clocks' skew.",
    buckets: [0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  /** WebSocket subscribes already added to chat_catchup_requests_total (the hub counts them as plain numbers). */
  private readonly wsSeen = { after: 0, last: 0, live: 0 };
  private readonly catchUps = new Counter({
    name: 'chat_catchup_requests_total',
    help: 'Catch-up requests by kind: http_after / http_since (GET /messages/since), http_before (scrollback), ws_after / ws_last / ws_live (WebSocket subscribe).',
    labelNames: ['kind'],
    registers: [this.registry],
    collect: () => {
      const now = this.sources?.hub().subscribes;
      if (!now) return;
      for (const k of ['after', 'last', 'live'] as const) {
        if (now[k] > this.wsSeen[k]) this.catchUps.inc({ kind: `ws_${k}` }, now[k] - this.wsSeen[k]);
        this.wsSeen[k] = now[k];
      }
    },
  });
  private readonly httpRequests = new PlainCounter({
    name: 'chat_http_requests_total',
    help: 'HTTP requests answered, by method, route pattern and status.',
    registers: [this.registry],
  });
  private readonly httpSeconds = new PlainHistogram({
    name: 'chat_http_request_duration_seconds',
    help: 'Time to answer an HTTP request, by route pattern.',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    const self = this;
    const read = () => self.sources;
    /** A gauge read from the running node at scrape (nothing until a node is attached). */
    const gauge = (name: string, help: string, value: (s: MetricSources) => number) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          const s = read();
          if (s) this.set(value(s));
        },
      });
    gauge('chat_sockets_open', 'WebSocket connections open on this node.', (s) => s.sockets());
    gauge('chat_subscriptions_open', 'Room subscriptions open on this node (a socket subscribed to 3 rooms counts 3).', (s) => s.hub().subscriptions);
    gauge('chat_rooms_with_subscribers', 'Rooms with at least one subscriber on this node.', (s) => s.hub().rooms);
    gauge('chat_broker_connected', '1 while the AMQP connection is up and not blocked, else 0.', (s) => (s.brokerConnected() ? 1 : 0));
    // Counters kept by the parts as plain numbers: set to their value at scrape.
    const delivered = (name: string, help: string, pick: (d: Delivered, path: 'live' | 'replay') => number) =>
      new Counter({
        name,
        help,
        labelNames: ['path'],
        registers: [this.registry],
        collect() {
          const s = read();
          if (!s) return;
          const d = s.hub().delivered;
          this.reset();
          this.inc({ path: 'live' }, pick(d, 'live'));
          this.inc({ path: 'replay' }, pick(d, 'replay'));
        },
      });
    delivered('chat_messages_delivered_total', 'Message frames handed to sockets: path=live (pushed as they were stored) or replay (catch-up from SQLite).', (d, p) =>
      p === 'live' ? d.liveFrames : d.replayFrames,
    );
    delivered('chat_delivered_bytes_total', 'Bytes of message frames handed to sockets, by path (live or replay).', (d, p) => (p === 'live' ? d.liveBytes : d.replayBytes));
    new Counter({
      name: 'chat_records_skipped_total',
      help: 'Log records skipped: not valid, or of a kind this node does not know.',
      registers: [this.registry],
      collect() {
        const s = read();
        if (!s) return;
        this.reset();
        this.inc(s.skippedRecords());
      },
    });
    new Gauge({
      name: 'chat_replica_lag_records',
      help: "Records in the stream that this node has not stored yet (exact while retention has not removed the stream's head; a lower bound after).",
      registers: [this.registry],
      async collect() {
        const s = read();
        if (!s) return;
        const length = await s.streamLength();
        if (length !== undefined) this.set(Math.max(0, length - s.storedThrough()));
      },
    });
  }

  /** The running node's figures, read at scrape. */
  attach(sources: MetricSources): void {
    this.sources = sources;
  }

  /** Counts every post through the one acceptor: accepted, or refused by its error code (one `then`, no wrapper function per post). */
  countPosts(accept: Accept): Accept {
    return (input, principal) => accept(input, principal).then(this.onAccepted, this.onRefused);
  }

  private readonly onAccepted = <T>(out: T): T => {
    this.accepted++;
    return out;
  };

  private readonly onRefused = (err: unknown): never => {
    this.postsRefused.inc({ code: toAppError(err)?.code ?? 'internal' });
    throw err;
  };

  /** One publish's time until its confirm (refusals and timeouts included); the publisher calls it. */
  readonly observeConfirm = (seconds: number): void => {
    this.confirmSeconds.observe('', NO_LABELS, seconds);
  };

  /** Times each batch commit and counts the records it stored (entries without a record are skipped ones). */
  timeCommits<E extends { record?: unknown }, R>(append: (entries: readonly E[]) => R): (entries: readonly E[]) => R {
    return (entries) => {
      const start = performance.now();
      const out = append(entries);
      this.commitSeconds.observe((performance.now() - start) / 1000);
      let stored = 0;
      for (let i = 0; i < entries.length; i++) if (entries[i]!.record !== undefined) stored++;
      if (stored > 0) this.recordsStored.inc(stored);
      return out;
    };
  }

  /** Observes, after each push, how long its messages took from acceptance to this node's sockets (the messages' createdAt to now). */
  timeDeliveries<M extends { createdAt: string }>(push: (messages: readonly M[]) => void): (messages: readonly M[]) => void {
    return (messages) => {
      push(messages);
      const now = Date.now();
      for (let i = 0; i < messages.length; i++) this.deliveryDelay.observe('', NO_LABELS, Math.max(0, now - Date.parse(messages[i]!.createdAt)) / 1000);
    };
  }

  socketOpened(): void {
    this.socketOpens.inc();
  }

  socketClosed(code: number): void {
    this.socketCloses.inc({ code: CLOSE_CODES.has(code) ? String(code) : 'other' });
  }

  catchUp(kind: CatchUpKind): void {
    this.catchUps.inc({ kind });
  }

  httpRequest(method: string, route: string, status: number, seconds: number): void {
    this.httpRequests.inc(`${method} ${route} ${status}`, () => ({ method, route, status: String(status) }));
    this.httpSeconds.observe(route, () => ({ route }), seconds);
  }

  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
