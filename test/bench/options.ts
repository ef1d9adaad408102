/** Command-line flags of `npm run bench` and the sizes they select. */

export const PHASES = ['e2e', 'latency', 'fanout', 'ingest', 'catchup', 'history', 'sockets', 'broker', 'sqlite', 'http', 'ws', 'peer'] as const;
export type PhaseName = (typeof PHASES)[number];

export interface BenchOptions {
  quick: boolean;
  /** WebSocket clients of the fan-out phases (end to end, fan-out from the log, bare ws, Socket.IO). */
  sockets: number;
  rooms: number;
  /** Length of every closed-loop load (end to end, broker publish, bare HTTP, fan-outs, publishing of the fan-out from the log). */
  seconds: number;
  /** Messages stored for the catch-up phase. */
  stored: number;
  /** Idle sockets of the memory phase (chat server and Socket.IO). */
  idle: number;
  /** Requests (or broker sends) in flight in every closed loop. */
  concurrency: number;
  /** Open-loop POST rate of the latency phase, messages per second. */
  latencyRate: number;
  latencySeconds: number;
  /** UTF-8 bytes of every message body. */
  bodyBytes: number;
  /** Client processes of the fan-out phases. */
  wsProcesses: number;
  /** At most this many sockets per client process in the idle-socket phases. */
  socketsPerProcess: number;
  rabbitmqUrl: string;
  /** Where the result JSON goes (outside the tracked tree). */
  outDir: string;
  only: Set<PhaseName>;
  /** run the server with --cpu-prof (profiles land in the output folder) */
  profile: boolean;
}

const FULL = { sockets: 1000, rooms: 100, seconds: 10, stored: 100_000, idle: 10_000, latencySeconds: 5 };
const QUICK = { sockets: 200, rooms: 20, seconds: 3, stored: 10_000, idle: 1000, latencySeconds: 2 };

const USAGE = `usage: npm run bench -- [--quick] [--sockets N] [--rooms N] [--seconds N] [--stored N] [--idle N]
       [--concurrency N] [--latency-rate N] [--latency-seconds N] [--body-bytes N] [--ws-processes N]
       [--only ${PHASES.join(',')}] [--out DIR] [--profile]`;

export class UsageError extends Error {
  override name = 'UsageError';
}

/** Parses `--flag value` and `--flag=value`; every size is a positive whole number. */
export function parseOptions(argv: readonly string[], env: Record<string, string | undefined> = process.env): BenchOptions {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') throw new UsageError(USAGE);
    if (!a.startsWith('--')) throw new UsageError(`unexpected argument ${JSON.stringify(a)}\n${USAGE}`);
    const eq = a.indexOf('=');
    if (eq > 0) flags.set(a.slice(2, eq), a.slice(eq + 1));
    else if (a === '--quick' || a === '--profile') flags.set(a.slice(2), 'true');
    else {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value\n${USAGE}`);
      flags.set(a.slice(2), v);
    }
  }
  const quick = flags.get('quick') === 'true';
  flags.delete('quick');
  const profile = flags.get('profile') === 'true';
  flags.delete('profile');
  const base = quick ? QUICK : FULL;
  const take = (name: string, fallback: number, max = 10_000_000): number => {
    const raw = flags.get(name);
    flags.delete(name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < 1 || n > max) throw new UsageError(`--${name} must be a whole number from 1 to ${max} (got ${JSON.stringify(raw)})`);
    return n;
  };
  const opts: BenchOptions = {
    quick,
    sockets: take('sockets', base.sockets, 50_000),
    rooms: take('rooms', base.rooms, 100_000),
    seconds: take('seconds', base.seconds, 600),
    stored: take('stored', base.stored),
    idle: take('idle', base.idle, 50_000),
    concurrency: take('concurrency', 64, 10_000),
    latencyRate: take('latency-rate', 2000, 100_000),
    latencySeconds: take('latency-seconds', base.latencySeconds, 600),
    bodyBytes: take('body-bytes', 100, 4000),
    wsProcesses: take('ws-processes', 2, 16),
    socketsPerProcess: 2500,
    rabbitmqUrl: env.RABBITMQ_URL || 'amqp://guest:guest@127.0.0.1:5672',
    outDir: flags.get('out') ?? '.bench',
    only: new Set(PHASES),
    profile,
  };
  flags.delete('out');
  const only = flags.get('only');
  flags.delete('only');
  if (only !== undefined) {
    const names = only.split(',').map((s) => s.trim()).filter(Boolean);
    const bad = names.filter((n) => !(PHASES as readonly string[]).includes(n));
    if (bad.length > 0 || names.length === 0) throw new UsageError(`--only takes a list of ${PHASES.join(',')} (got ${JSON.stringify(only)})`);
    opts.only = new Set(names as PhaseName[]);
  }
  if (flags.size > 0) throw new UsageError(`unknown flag --${[...flags.keys()][0]}\n${USAGE}`);
  if (opts.rooms > opts.sockets) throw new UsageError(`--rooms (${opts.rooms}) must not exceed --sockets (${opts.sockets}): every room needs a subscriber`);
  return opts;
}
