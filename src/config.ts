import { readFileSync } from 'node:fs';
import { z } from 'zod';

/** Why a value was refused: the variable's name first, so the one start-up line names it. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

// Stream names become broker object names: keep them to what RabbitMQ accepts in a queue name
// and what is readable in the management UI.
const STREAM_NAME = /^[A-Za-z0-9_.:-]{1,200}$/;

/** A browser Origin: scheme://host[:port], exactly as browsers send it (no path, no trailing slash). */
function isOrigin(s: string): boolean {
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.origin === s;
  } catch {
    return false;
  }
}

const schema = z.object({
  PORT: int(0, 65535).default(3000),
  HOST: z.string().min(1).default('0.0.0.0'),
  RABBITMQ_URL: z
    .string()
    .default('amqp://guest:guest@127.0.0.1:5672')
    .transform((value, ctx) => {
      const urls = parseBrokerUrls(value);
      if (typeof urls === 'string') {
        ctx.addIssue({ code: 'custom', message: urls });
        return z.NEVER;
      }
      return urls;
    }),
  DATABASE_PATH: z.string().min(1).default('./data/chat.db'),
  STREAM_NAME: z.string().regex(STREAM_NAME, 'must be 1-200 chars of A-Z a-z 0-9 _ . : -').default('chat.messages'),
  LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
  MAX_MESSAGE_BYTES: int(1, 1024 * 1024).default(4096),
  AUTH_SECRET: z.string().min(1).optional(),
  RATE_LIMIT_PER_MINUTE: int(1, 1_000_000_000).default(600),
  CORS_ORIGINS: z
    .string()
    .transform((s) => s.split(',').map((o) => o.trim()).filter(Boolean))
    .refine((list) => list.length > 0 && (list.length === 1 && list[0] === '*' ? true : list.every(isOrigin)), {
      message: 'must be * or a comma-separated list of origins such as https://app.example.com (scheme://host[:port], no path)',
    })
    .optional(),
  METRICS_TOKEN: z.string().min(1).optional(),
  // Operational knobs beyond the contract; defaults suit a small deployment.
  PUBLISH_TIMEOUT_MS: int(100, 60_000).default(5000),
  RABBITMQ_HEARTBEAT_SECONDS: int(1, 600).default(10),
  CONSUMER_PREFETCH: int(1, 65_535).default(2000),
  WS_MAX_BUFFERED_BYTES: int(16 * 1024, 1024 * 1024 * 1024).default(4 * 1024 * 1024),
  WS_PING_INTERVAL_MS: int(1000, 3_600_000).default(30_000),
  // Replay (subscribe with a cursor) bytes one socket may receive at once, and its sustained rate.
  WS_REPLAY_BURST_BYTES: int(16 * 1024, 1024 * 1024 * 1024).default(4 * 1024 * 1024),
  WS_REPLAY_BYTES_PER_SECOND: int(1024, 1024 * 1024 * 1024).default(1024 * 1024),
  SHUTDOWN_TIMEOUT_MS: int(100, 120_000).default(10_000),
  WS_MAX_SUBSCRIPTIONS: int(1, 10_000).default(100),
  WS_MAX_SOCKETS_PER_USER: int(1, 100_000).default(20),
  DEMO_PAGE: z.enum(['on', 'off'], { message: 'must be on or off' }).default('on'),
  // Live signals (typing, presence). A dead node's users leave within TTL + 1 s (the contract: 15 s).
  PRESENCE_HEARTBEAT_MS: int(100, 60_000).default(4000),
  PRESENCE_TTL_MS: int(300, 300_000).default(12_000),
  PRESENCE_QUERY_WAIT_MS: int(0, 10_000).default(300),
  WS_MAX_SOCKETS_PER_IP: int(1, 1_000_000).default(200),
  // A socket's frame budget: a burst, refilled at a steady rate; past a burst of dropped frames it is closed.
  WS_FRAME_BURST: int(1, 100_000).default(200),
  WS_FRAMES_PER_SECOND: int(1, 100_000).default(50),
  WS_AUTH_TIMEOUT_MS: int(100, 600_000).default(5000),
  // Unset: wsMaxPayloadFloor(MAX_MESSAGE_BYTES).
  WS_MAX_PAYLOAD_BYTES: int(1024, 256 * 1024 * 1024).optional(),
  HTTP_HEADERS_TIMEOUT_MS: int(1000, 600_000).default(15_000),
  HTTP_REQUEST_TIMEOUT_MS: int(1000, 600_000).default(30_000),
  MAX_CONNECTIONS: int(1, 10_000_000).optional(),
  // x-initial-cluster-size when this node creates the stream; unset = the broker's default.
  STREAM_REPLICAS: int(1, 255).optional(),
  STREAM_MAX_AGE: z
    .string()
    .regex(/^\d+[YMDhms]$/, 'must be a RabbitMQ duration such as 7D, 12h or 30m')
    .default('7D'),
});

export type Config = Readonly<{
  port: number;
  host: string;
  /** The nodes of one RabbitMQ cluster (one entry for a single broker), tried in turn. */
  rabbitmqUrls: readonly string[];
  databasePath: string;
  streamName: string;
  logLevel: (typeof LOG_LEVELS)[number];
  maxMessageBytes: number;
  authSecret: string | undefined;
  rateLimitPerMinute: number;
  /** Origins allowed to call from a browser: '*' for any, undefined when unset (no CORS, any WebSocket Origin). */
  corsOrigins: '*' | readonly string[] | undefined;
  metricsToken: string | undefined;
  publishTimeoutMs: number;
  rabbitmqHeartbeatSeconds: number;
  consumerPrefetch: number;
  wsMaxBufferedBytes: number;
  wsPingIntervalMs: number;
  /** Replay bytes a socket may receive at once (its byte bucket's size). */
  wsReplayBurstBytes: number;
  /** The bucket's refill: a socket's sustained replay bytes per second. */
  wsReplayBytesPerSecond: number;
  shutdownTimeoutMs: number;
  wsMaxSubscriptions: number;
  wsMaxSocketsPerUser: number;
  streamMaxAge: string;
  /** Serve the demo chat page at /demo. */
  demoPage: boolean;
  presenceHeartbeatMs: number;
  presenceTtlMs: number;
  presenceQueryWaitMs: number;
  wsMaxSocketsPerIp: number;
  /** Frames a socket may send at once, then `wsFramesPerSecond`; a burst of dropped frames more closes it. */
  wsFrameBurst: number;
  wsFramesPerSecond: number;
  /** Token mode: a socket that sent no `auth` frame (and no bearer header) within this long is closed 4401. */
  wsAuthTimeoutMs: number;
  /** Largest WebSocket frame a client may send; larger ones close the socket with 1009. */
  wsMaxPayloadBytes: number;
  httpHeadersTimeoutMs: number;
  httpRequestTimeoutMs: number;
  maxConnections: number;
  streamReplicas: number | undefined;
}>;

/**
 * The default connection ceiling: nine tenths of the descriptor limit, less a reserve for what
 * the node itself opens (SQLite and its WAL, the broker, logs), so that at the ceiling there are
 * still descriptors for the clients already connected.
 */
export function defaultMaxConnections(limitsFile = '/proc/self/limits'): number {
  let fds = 0;
  try {
    const line = readFileSync(limitsFile, 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    fds = Number(line?.split(/\s{2,}/)[1]);
  } catch {
    // not Linux: fall through
  }
  if (!Number.isSafeInteger(fds) || fds <= 0) return 10_000;
  return Math.max(32, Math.floor(fds * 0.9) - 64);
}

/**
 * The smallest WS_MAX_PAYLOAD_BYTES that still carries every valid publish: a body of
 * MAX_MESSAGE_BYTES written entirely as JSON \u escapes (6 bytes per byte), plus 16 KiB for the
 * frame's other fields. It is also the default.
 */
export const wsMaxPayloadFloor = (maxMessageBytes: number): number => 16 * 1024 + maxMessageBytes * 6;

/**
 * RABBITMQ_URL: one URL, or a comma-separated list naming the nodes of one cluster. The
 * connection moves between them with one set of credentials and one vhost, so the list must
 * agree on those (a list that does not is almost certainly a mistake). Returns the reason when
 * refused.
 */
function parseBrokerUrls(value: string): string[] | string {
  const urls = value.split(',').map((u) => u.trim());
  const parsed: URL[] = [];
  for (const u of urls) {
    const which = urls.length > 1 ? `every URL in the list must start with amqp:// or amqps:// (entry ${parsed.length + 1} does not)` : 'must start with amqp:// or amqps://';
    if (!/^amqps?:\/\/./.test(u)) return which;
    try {
      parsed.push(new URL(u));
    } catch {
      return urls.length > 1 ? `entry ${parsed.length + 1} is not a valid URL` : 'is not a valid URL';
    }
  }
  const key = (x: URL) => `${x.protocol}//${x.username}:${x.password}@${x.pathname}${x.search}`;
  if (parsed.some((x) => key(x) !== key(parsed[0]!))) return 'the URLs of a cluster must share scheme, user, password, vhost and options; only host:port may differ';
  return urls;
}

/** Reads and validates the environment once. Empty strings count as unset, as in most shells' `VAR=`. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const raw: Record<string, string> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== '') raw[key] = value;
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const name = String(issue.path[0] ?? 'environment');
    const value = name === 'RABBITMQ_URL' ? raw[name]?.replace(/\/\/([^:@/,]+):[^@/,]*@/g, '//$1:***@') : raw[name];
    const shown = value === undefined || name === 'AUTH_SECRET' || name === 'METRICS_TOKEN' ? '' : ` (got ${JSON.stringify(value)})`;
    throw new ConfigError(`invalid ${name}: ${issue.message}${shown}`);
  }
  const c = parsed.data;
  if (c.PRESENCE_TTL_MS <= c.PRESENCE_HEARTBEAT_MS) {
    throw new ConfigError(`invalid PRESENCE_TTL_MS: must be longer than PRESENCE_HEARTBEAT_MS (${c.PRESENCE_HEARTBEAT_MS}) (got "${c.PRESENCE_TTL_MS}")`);
  }
  const wsPayloadFloor = wsMaxPayloadFloor(c.MAX_MESSAGE_BYTES);
  if (c.WS_MAX_PAYLOAD_BYTES !== undefined && c.WS_MAX_PAYLOAD_BYTES < wsPayloadFloor) {
    throw new ConfigError(
      `invalid WS_MAX_PAYLOAD_BYTES: must be at least ${wsPayloadFloor} (16384 + 6 x MAX_MESSAGE_BYTES), or a valid message could not be sent over WebSocket (got "${c.WS_MAX_PAYLOAD_BYTES}")`,
    );
  }
  return Object.freeze({
    port: c.PORT,
    host: c.HOST,
    rabbitmqUrls: Object.freeze(c.RABBITMQ_URL),
    databasePath: c.DATABASE_PATH,
    streamName: c.STREAM_NAME,
    logLevel: c.LOG_LEVEL,
    maxMessageBytes: c.MAX_MESSAGE_BYTES,
    authSecret: c.AUTH_SECRET,
    rateLimitPerMinute: c.RATE_LIMIT_PER_MINUTE,
    corsOrigins: c.CORS_ORIGINS === undefined ? undefined : c.CORS_ORIGINS[0] === '*' ? '*' : Object.freeze(c.CORS_ORIGINS),
    metricsToken: c.METRICS_TOKEN,
    publishTimeoutMs: c.PUBLISH_TIMEOUT_MS,
    rabbitmqHeartbeatSeconds: c.RABBITMQ_HEARTBEAT_SECONDS,
    consumerPrefetch: c.CONSUMER_PREFETCH,
    wsMaxBufferedBytes: c.WS_MAX_BUFFERED_BYTES,
    wsPingIntervalMs: c.WS_PING_INTERVAL_MS,
    wsReplayBurstBytes: c.WS_REPLAY_BURST_BYTES,
    wsReplayBytesPerSecond: c.WS_REPLAY_BYTES_PER_SECOND,
    shutdownTimeoutMs: c.SHUTDOWN_TIMEOUT_MS,
    wsMaxSubscriptions: c.WS_MAX_SUBSCRIPTIONS,
    wsMaxSocketsPerUser: c.WS_MAX_SOCKETS_PER_USER,
    streamMaxAge: c.STREAM_MAX_AGE,
    demoPage: c.DEMO_PAGE === 'on',
    presenceHeartbeatMs: c.PRESENCE_HEARTBEAT_MS,
    presenceTtlMs: c.PRESENCE_TTL_MS,
    presenceQueryWaitMs: c.PRESENCE_QUERY_WAIT_MS,
    wsMaxSocketsPerIp: c.WS_MAX_SOCKETS_PER_IP,
    wsFrameBurst: c.WS_FRAME_BURST,
    wsFramesPerSecond: c.WS_FRAMES_PER_SECOND,
    wsAuthTimeoutMs: c.WS_AUTH_TIMEOUT_MS,
    wsMaxPayloadBytes: c.WS_MAX_PAYLOAD_BYTES ?? wsPayloadFloor,
    httpHeadersTimeoutMs: c.HTTP_HEADERS_TIMEOUT_MS,
    httpRequestTimeoutMs: c.HTTP_REQUEST_TIMEOUT_MS,
    maxConnections: c.MAX_CONNECTIONS ?? defaultMaxConnections(),
    streamReplicas: c.STREAM_REPLICAS,
  });
}
