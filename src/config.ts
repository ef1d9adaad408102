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

const schema = z.object({
  PORT: int(0, 65535).default(3000),
  HOST: z.string().min(1).default('0.0.0.0'),
  RABBITMQ_URL: z
    .string()
    .regex(/^amqps?:\/\//, 'must start with amqp:// or amqps://')
    .default('amqp://guest:guest@127.0.0.1:5672'),
  DATABASE_PATH: z.string().min(1).default('./data/chat.db'),
  STREAM_NAME: z.string().regex(STREAM_NAME, 'must be 1-200 chars of A-Z a-z 0-9 _ . : -').default('chat.messages'),
  LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
  MAX_MESSAGE_BYTES: int(1, 1024 * 1024).default(4096),
  AUTH_SECRET: z.string().min(1).optional(),
  RATE_LIMIT_PER_MINUTE: int(1, 1_000_000_000).default(600),
  // Operational knobs beyond the contract; defaults suit a small deployment.
  PUBLISH_TIMEOUT_MS: int(100, 60_000).default(5000),
  RABBITMQ_HEARTBEAT_SECONDS: int(1, 600).default(10),
  CONSUMER_PREFETCH: int(1, 65_535).default(2000),
  WS_MAX_BUFFERED_BYTES: int(16 * 1024, 1024 * 1024 * 1024).default(4 * 1024 * 1024),
  WS_PING_INTERVAL_MS: int(1000, 3_600_000).default(30_000),
  SHUTDOWN_TIMEOUT_MS: int(100, 120_000).default(10_000),
  WS_MAX_SUBSCRIPTIONS: int(1, 10_000).default(100),
  WS_MAX_SOCKETS_PER_USER: int(1, 100_000).default(20),
  STREAM_MAX_AGE: z
    .string()
    .regex(/^\d+[YMDhms]$/, 'must be a RabbitMQ duration such as 7D, 12h or 30m')
    .default('7D'),
});

export type Config = Readonly<{
  port: number;
  host: string;
  rabbitmqUrl: string;
  databasePath: string;
  streamName: string;
  logLevel: (typeof LOG_LEVELS)[number];
  maxMessageBytes: number;
  authSecret: string | undefined;
  rateLimitPerMinute: number;
  publishTimeoutMs: number;
  rabbitmqHeartbeatSeconds: number;
  consumerPrefetch: number;
  wsMaxBufferedBytes: number;
  wsPingIntervalMs: number;
  shutdownTimeoutMs: number;
  wsMaxSubscriptions: number;
  wsMaxSocketsPerUser: number;
  streamMaxAge: string;
}>;

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
    const shown = raw[name] === undefined || name === 'AUTH_SECRET' ? '' : ` (got ${JSON.stringify(raw[name])})`;
    throw new ConfigError(`invalid ${name}: ${issue.message}${shown}`);
  }
  const c = parsed.data;
  return Object.freeze({
    port: c.PORT,
    host: c.HOST,
    rabbitmqUrl: c.RABBITMQ_URL,
    databasePath: c.DATABASE_PATH,
    streamName: c.STREAM_NAME,
    logLevel: c.LOG_LEVEL,
    maxMessageBytes: c.MAX_MESSAGE_BYTES,
    authSecret: c.AUTH_SECRET,
    rateLimitPerMinute: c.RATE_LIMIT_PER_MINUTE,
    publishTimeoutMs: c.PUBLISH_TIMEOUT_MS,
    rabbitmqHeartbeatSeconds: c.RABBITMQ_HEARTBEAT_SECONDS,
    consumerPrefetch: c.CONSUMER_PREFETCH,
    wsMaxBufferedBytes: c.WS_MAX_BUFFERED_BYTES,
    wsPingIntervalMs: c.WS_PING_INTERVAL_MS,
    shutdownTimeoutMs: c.SHUTDOWN_TIMEOUT_MS,
    wsMaxSubscriptions: c.WS_MAX_SUBSCRIPTIONS,
    wsMaxSocketsPerUser: c.WS_MAX_SOCKETS_PER_USER,
    streamMaxAge: c.STREAM_MAX_AGE,
  });
}
