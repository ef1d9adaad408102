import { measureDelivery } from './phase-end-to-end.ts';
import type { LoadResult } from './load-http.ts';
import type { BenchOptions } from './options.ts';
import { say } from './progress.ts';
import type { Scope } from './scope.ts';
import type { ServerProcess } from './server-process.ts';
import { bySecond, distribution, type Distribution, type SecondOfRun } from './stats.ts';
import type { VerifyResult } from './ws-clients.ts';
import type { WsFleet } from './ws-fleet.ts';

export interface LatencyRun {
  rate: number;
  seconds: number;
  load: Omit<LoadResult, 'acceptedByRoom'>;
  /** POST send -> socket receive, over every frame received */
  latencyMs: Distribution;
  /** The same, second by second of the run (from its first send): the first seconds show a cold server's warm-up. */
  latencyBySecond: SecondOfRun[];
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

async function measureAt(scope: Scope, opts: BenchOptions, server: ServerProcess, fleet: WsFleet, rate: number): Promise<LatencyRun> {
  say(`latency: open loop at ${rate} msg/s for ${opts.latencySeconds} s`);
  const m = await measureDelivery(
    scope,
    server,
    fleet,
    {
      mode: 'open',
      rate,
      seconds: opts.latencySeconds,
      // Room for half a second of answers at that rate before sends are skipped (and counted).
      concurrency: Math.max(opts.concurrency, Math.min(1000, Math.ceil(rate / 2))),
      rooms: opts.rooms,
      bodyBytes: opts.bodyBytes,
      maxRequests: rate * opts.latencySeconds,
    },
    20_000,
  );
  const latencyMs = distribution(m.latencies);
  const saturated = m.result.skipped > 0 || m.result.acceptedPerSec < rate * 0.95;
  say(
    `latency: sent ${m.result.sent} (skipped ${m.result.skipped}), p50 ${latencyMs.p50} ms, p99 ${latencyMs.p99} ms, lost ${m.verify.lost}${saturated ? ' (the server did not keep up)' : ''}`,
  );
  return { rate, seconds: opts.latencySeconds, load: m.result, latencyMs, latencyBySecond: bySecond(m.sentTimes, m.latencies), verify: m.verify, saturated, drainComplete: m.drained.complete };
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
