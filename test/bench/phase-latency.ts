import { measureDelivery } from './phase-end-to-end.ts';
import type { LoadResult } from './load-http.ts';
import type { BenchOptions } from './options.ts';
import { sleep } from './clock.ts';
import { say } from './progress.ts';
import type { Scope } from './scope.ts';
import type { ServerProcess } from './server-process.ts';
import { bySecond, distribution, sentFrom, type Distribution, type SecondOfRun } from './stats.ts';
import type { VerifyResult } from './ws-clients.ts';
import type { WsFleet } from './ws-fleet.ts';

export interface LatencyRun {
  rate: number;
  seconds: number;
  load: Omit<LoadResult, 'acceptedByRoom'>;
  /** POST send -> socket receive, over every frame received */
  /** Over the frames whose message was sent after the warm-up (the goal's figure). */
  latencyMs: Distribution;
  /** Seconds of sending at the rate before the measured window (its frames are verified, not timed). */
  warmupSeconds: number;
  /** Every frame, warm-up included, second by second of the run (from its first send). */
  latencyBySecond: SecondOfRun[];
  /**
   * The server's own part after the warm-up: its chat_delivery_delay_seconds histogram (acceptance
   * to pushed, per message) between a scrape at the end of the warm-up and one after the drain.
   * Bucket bounds: "p50 <= 5 ms" is what a histogram can say. Null when a scrape failed.
   */
  serverDelayMs: { count: number; p50AtMost: number | null; p99AtMost: number | null } | null;
  verify: VerifyResult;
  /** the server did not keep up with the rate (sends skipped, or fewer accepted per second than sent) */
  saturated: boolean;
  drainComplete: boolean;
}

export interface LatencyResult extends LatencyRun {
  /**
   * When the fixed rate is at or beyond what phase 1 measured, its latency is mostly queueing;
   * the same measurement at half the phase-1 rate shows the latency of a server that keeps up.
   */
  atHalfCapacity?: LatencyRun;
}

/**
 * The goal is latency after warm-up: the first seconds of a phase at a new rate are slower even
 * on a server that has run every phase before (p50 15-67 ms and p99 up to 1.3 s in the first
 * second, 5-13 ms and 13-60 ms by the fourth, in repeated runs here), and the load generator,
 * a new process, starts cold too. They are sent, delivered and checked, and shown second by second.
 */
const WARMUP_SECONDS = 2;

async function measureAt(scope: Scope, opts: BenchOptions, server: ServerProcess, fleet: WsFleet, rate: number): Promise<LatencyRun> {
  const seconds = WARMUP_SECONDS + opts.latencySeconds;
  say(`latency: open loop at ${rate} msg/s for ${seconds} s (the first ${WARMUP_SECONDS} s not timed)`);
  let warm: Promise<Buckets | null> = Promise.resolve(null);
  const m = await measureDelivery(
    scope,
    server,
    fleet,
    {
      mode: 'open',
      rate,
      seconds,
      // Room for half a second of answers at that rate before sends are skipped (and counted).
      concurrency: Math.max(opts.concurrency, Math.min(1000, Math.ceil(rate / 2))),
      rooms: opts.rooms,
      bodyBytes: opts.bodyBytes,
      maxRequests: rate * seconds,
    },
    20_000,
    () => (warm = sleep(WARMUP_SECONDS * 1000, scope.signal).then(() => deliveryDelay(server.base))),
  );
  const serverDelayMs = percentilesBetween(await warm, await deliveryDelay(server.base));
  const latencyMs = distribution(sentFrom(m.sentTimes, m.latencies, WARMUP_SECONDS * 1000));
  const saturated = m.result.skipped > 0 || m.result.acceptedPerSec < rate * 0.95;
  say(
    `latency: sent ${m.result.sent} (skipped ${m.result.skipped}), p50 ${latencyMs.p50} ms, p99 ${latencyMs.p99} ms, lost ${m.verify.lost}${saturated ? ' (the server did not keep up)' : ''}`,
  );
  return { rate, seconds: opts.latencySeconds, load: m.result, latencyMs, warmupSeconds: WARMUP_SECONDS, serverDelayMs, latencyBySecond: bySecond(m.sentTimes, m.latencies), verify: m.verify, saturated, drainComplete: m.drained.complete };
}

/** Open-loop POSTs at a fixed rate; the latency of each frame is its receive time minus the send time in its body. */
export async function runLatency(
  scope: Scope,
  opts: BenchOptions,
  server: ServerProcess,
  fleet: WsFleet,
  measuredCapacity: number | undefined,
): Promise<LatencyResult> {
  const fixed = await measureAt(scope, opts, server, fleet, opts.latencyRate);
  const half = measuredCapacity ? Math.floor(measuredCapacity / 2) : 0;
  if (!fixed.saturated || half < 10 || half >= opts.latencyRate) return fixed;
  return { ...fixed, atHalfCapacity: await measureAt(scope, opts, server, fleet, half) };
}

/** Cumulative counts of chat_delivery_delay_seconds by upper bound (seconds), as /metrics gives them. */
type Buckets = Map<number, number>;

async function deliveryDelay(base: string): Promise<Buckets | null> {
  try {
    const text = await (await fetch(`${base}/metrics`)).text();
    const out: Buckets = new Map();
    for (const m of text.matchAll(/^chat_delivery_delay_seconds_bucket\{le="([^"]+)"\} (\d+)/gm)) out.set(m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2]));
    return out.size > 0 ? out : null;
  } catch {
    return null;
  }
}

/** p50 and p99 of what was observed between two scrapes, as the upper bounds of their buckets (ms). */
function percentilesBetween(a: Buckets | null, b: Buckets | null): LatencyRun['serverDelayMs'] {
  if (!a || !b) return null;
  const bounds = [...b.keys()].sort((x, y) => x - y);
  const total = (b.get(Infinity) ?? 0) - (a.get(Infinity) ?? 0);
  const at = (p: number) => {
    for (const le of bounds) if ((b.get(le) ?? 0) - (a.get(le) ?? 0) >= total * p) return Number.isFinite(le) ? le * 1000 : null;
    return null;
  };
  return { count: total, p50AtMost: total > 0 ? at(0.5) : null, p99AtMost: total > 0 ? at(0.99) : null };
}
