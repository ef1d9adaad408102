import { encodeRecord } from '../../src/domain/records.ts';
import { publishWindow } from './ceilings-broker.ts';
import { nowMs, waitFor } from './clock.ts';
import { processTicks, TICK_MS } from './cpu-usage.ts';
import { drain } from './drain.ts';
import { serverCpu } from './fanout-measure.ts';
import { OffsetWatch } from './offset-watch.ts';
import type { BenchOptions } from './options.ts';
import { say } from './progress.ts';
import { connectRabbit } from './rabbit.ts';
import { logRecord, roomName } from './records.ts';
import type { Scope } from './scope.ts';
import type { ServerProcess } from './server-process.ts';
import { distribution, perSecond, type Distribution } from './stats.ts';
import type { VerifyResult } from './ws-clients.ts';
import type { WsFleet } from './ws-fleet.ts';

export interface FanoutFromLogResult {
  sockets: number;
  rooms: number;
  /** publishes in flight (confirm mode) */
  window: number;
  published: number;
  /** confirmed publishes / publishing time */
  publishedPerSec: number | null;
  publishMs: number;
  /** published / (time the server had stored the last one - first publish): its ingest rate */
  storedPerSec: number | null;
  /** when the server had stored the last published record, ms after the first publish */
  storedAfterMs: number | null;
  framesExpected: number;
  framesDelivered: number;
  /** frames received by all clients / (last frame received - first publish) */
  deliveredFramesPerSec: number | null;
  /** last frame received, ms after the first publish */
  lastFrameAfterMs: number | null;
  /** every expected frame arrived before the timeout (false: the figures cover the timeout window) */
  drainComplete: boolean;
  drainTimeoutMs: number;
  verify: VerifyResult;
  outOfOrder: number;
  unexpectedCloses: Record<string, number>;
  errorFrames: number;
  /** record creation -> socket receive; includes the wait behind the publishes in flight (window / rate) */
  latencyMs: Distribution;
  /**
   * CPU, percent of one core, from the first publish to the end of the drain: the server process,
   * the client processes, and the runner (which publishes).
   */
  cpu: { server: number | null; clients: number | null; runner: number | null; ms: number };
  /** frames delivered / CPU seconds the server process used meanwhile (comparable with the peer's and bare ws's) */
  framesPerServerCpuSec: number | null;
}

/**
 * Publishes in flight. As in the catch-up fill: with the server consuming at the tail and pushing
 * to the sockets on the same two cores, 64 in flight (the closed loops' --concurrency) got about
 * 3,600 confirmed publishes/s, 256 about 5,800/s and 1000 about 7,300/s (4000 no better), and the
 * server kept up every time: the smaller windows measured the publisher, not the fan-out.
 */
export const FANOUT_WINDOW = 1000;

/**
 * 2b. Fan-out from the log: the bench publishes records straight to the server's stream (as the
 * server's own POST handler would, confirms and all), round-robin over the rooms, for `seconds`
 * with a window of publishes in flight; the server consumes, stores and pushes them to the same
 * sockets as phase 1. No HTTP intake: what is measured is the consume -> store -> push path,
 * which is what the bare ws and Socket.IO phases measure for their servers (push only).
 */
export async function runFanoutFromLog(scope: Scope, opts: BenchOptions, server: ServerProcess, fleet: WsFleet, stream: string): Promise<FanoutFromLogResult> {
  const conn = await connectRabbit(opts.rabbitmqUrl, 'bench fanout');
  scope.defer(() => conn.close());
  const startOffset = (await server.checks()).lastOffset;
  await fleet.reset(true);
  const watch = new OffsetWatch(server, 100);
  scope.defer(() => watch.stop());

  const window = FANOUT_WINDOW;
  const acceptedByRoom: Record<string, string[]> = {};
  const record = (i: number): Buffer => {
    const room = roomName(i % opts.rooms);
    const r = logRecord(room, i, opts.bodyBytes);
    (acceptedByRoom[room] ??= []).push(r.id);
    return encodeRecord(r);
  };

  say(`fanout: publishing straight to stream ${stream}, ${window} in flight for ${opts.seconds} s, ${fleet.subscribed} sockets in ${opts.rooms} rooms`);
  const pids = { server: server.pid, clients: fleet.children.map((c) => c.pid), runner: process.pid };
  const ticks0 = { server: processTicks(pids.server), clients: sumTicks(pids.clients), runner: processTicks(pids.runner) };
  const t0 = nowMs();
  const pub = await publishWindow(conn, stream, {
    concurrency: window,
    count: opts.seconds * 1_000_000,
    seconds: opts.seconds,
    record,
    signal: scope.signal,
  });
  const perRoom = Object.fromEntries(Object.entries(acceptedByRoom).map(([r, ids]) => [r, ids.length]));
  const framesExpected = fleet.expectedFrames(perRoom);
  const target = startOffset + pub.published;
  say(`fanout: published ${pub.published} (${pub.perSec}/s); waiting for ${framesExpected} frames (server stored ${Math.max(0, watch.latest - startOffset)} so far)`);

  // The server may still be working through a backlog: give it time in proportion to the load.
  const drainTimeoutMs = Math.max(10_000, opts.seconds * 3000);
  const drained = await drain(fleet, watch, { minOffset: target, expectedFrames: framesExpected, quietMs: 3000, timeoutMs: drainTimeoutMs, signal: scope.signal });
  const t1 = nowMs();
  const ticks1 = { server: processTicks(pids.server), clients: sumTicks(pids.clients), runner: processTicks(pids.runner) };
  watch.stop();
  const cpuMs = t1 - t0;
  const pct = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? null : Math.round((((b - a) * TICK_MS) / cpuMs) * 1000) / 10);

  const stats = drained.stats;
  const storedAt = watch.reachedAt(target);
  const verify = await fleet.verify(acceptedByRoom);
  const latencies = await fleet.latencies();
  if (!drained.complete) {
    // Not measured: let a server still working through the backlog finish, so the next phase starts on a quiet one.
    await waitFor(`the server to store offset ${target}`, async () => ((await server.checks()).lastOffset >= target ? true : undefined), {
      timeoutMs: 30_000,
      intervalMs: 200,
      signal: scope.signal,
    }).catch((err) => say(`fanout: ${(err as Error).message}`));
  }
  const result: FanoutFromLogResult = {
    sockets: fleet.subscribed,
    rooms: opts.rooms,
    window,
    published: pub.published,
    publishedPerSec: pub.perSec,
    publishMs: pub.ms,
    storedPerSec: storedAt === undefined ? null : perSecond(pub.published, storedAt - t0),
    storedAfterMs: storedAt === undefined ? null : Math.round(storedAt - t0),
    framesExpected,
    framesDelivered: stats.frames,
    deliveredFramesPerSec: stats.lastAt > 0 ? perSecond(stats.frames, stats.lastAt - t0) : null,
    lastFrameAfterMs: stats.lastAt > 0 ? Math.round(stats.lastAt - t0) : null,
    drainComplete: drained.complete,
    drainTimeoutMs,
    verify,
    outOfOrder: stats.outOfOrder,
    unexpectedCloses: stats.unexpectedCloses,
    errorFrames: stats.errorFrames,
    latencyMs: distribution(latencies),
    cpu: {
      server: pct(ticks0.server, ticks1.server),
      clients: pct(ticks0.clients, ticks1.clients),
      runner: pct(ticks0.runner, ticks1.runner),
      ms: Math.round(cpuMs),
    },
    framesPerServerCpuSec: serverCpu(ticks0.server, ticks1.server, cpuMs, stats.frames).framesPerServerCpuSec,
  };
  say(
    `fanout: ${stats.frames}/${framesExpected} frames (${result.deliveredFramesPerSec} frames/s${drained.complete ? '' : `, INCOMPLETE after ${drainTimeoutMs} ms`}), ` +
      `stored ${result.storedPerSec}/s, lost ${verify.lost}, duplicates ${verify.duplicates}; server cpu ${result.cpu.server}% of a core`,
  );
  return result;
}

function sumTicks(pids: number[]): number | undefined {
  let sum = 0;
  for (const pid of pids) {
    const t = processTicks(pid);
    if (t === undefined) return undefined;
    sum += t;
  }
  return sum;
}
