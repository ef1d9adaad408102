import { Child } from './children.ts';
import { drain } from './drain.ts';
import { pageAll } from './http-pages.ts';
import type { LoadArgs, LoadResult } from './load-http.ts';
import { RssSampler } from './memory.ts';
import { OffsetWatch } from './offset-watch.ts';
import type { BenchOptions } from './options.ts';
import { say } from './progress.ts';
import type { Scope } from './scope.ts';
import type { ServerProcess } from './server-process.ts';
import { distribution, perSecond, type Distribution } from './stats.ts';
import type { VerifyResult } from './ws-clients.ts';
import type { WsFleet } from './ws-fleet.ts';

export interface EndToEndResult {
  concurrency: number;
  sockets: number;
  rooms: number;
  load: Omit<LoadResult, 'acceptedByRoom'>;
  acceptedPerSec: number;
  persisted: number;
  /** persisted messages / (time the last was stored - load start) */
  persistedPerSec: number | null;
  /** time the last accepted message was stored after the load ended, ms */
  persistLagMs: number | null;
  framesDelivered: number;
  framesExpected: number;
  /** frames / (last frame received - load start) */
  deliveredFramesPerSec: number | null;
  verify: VerifyResult;
  /** accepted ids missing from GET /messages/since */
  missingFromStore: number;
  storedByHttp: number;
  outOfOrder: number;
  unexpectedCloses: Record<string, number>;
  errorFrames: number;
  serverPeakRssBytes: number;
  serverHwmBytes: number;
  /** send -> receive while saturated, ms */
  latencyUnderLoadMs: Distribution;
  drainComplete: boolean;
}

/** Runs one POST load against the server while the fleet listens, then checks every accepted id reached every subscriber once. */
export async function measureDelivery(
  scope: Scope,
  server: ServerProcess,
  fleet: WsFleet,
  args: Omit<LoadArgs, 'base' | 'collectIds'>,
  drainTimeoutMs: number,
  /** Called as the load starts (its process is up). */
  onLoadStart?: () => void,
) {
  const startOffset = (await server.checks()).lastOffset;
  await fleet.reset(true);
  const watch = new OffsetWatch(server);
  scope.defer(() => watch.stop());
  const load = await Child.start(scope, 'load-http', 'load-http.ts');
  onLoadStart?.();
  const result = await load.request<LoadResult>('run', { ...args, base: server.base, collectIds: true }, args.seconds * 1000 + 30_000);
  const { acceptedByRoom = {}, ...loadSummary } = result;
  const perRoom = Object.fromEntries(Object.entries(acceptedByRoom).map(([r, ids]) => [r, ids.length]));
  const expectedFrames = fleet.expectedFrames(perRoom);
  const drained = await drain(fleet, watch, {
    minOffset: startOffset + result.accepted,
    expectedFrames,
    quietMs: 3000,
    timeoutMs: drainTimeoutMs,
    signal: scope.signal,
  });
  watch.stop();
  const verify = await fleet.verify(acceptedByRoom);
  const latencies = await fleet.latencies();
  const sentTimes = await fleet.sentTimes();
  return { startOffset, result: loadSummary, acceptedByRoom, expectedFrames, drained, watch, verify, latencies, sentTimes };
}

export async function runEndToEnd(scope: Scope, opts: BenchOptions, server: ServerProcess, fleet: WsFleet): Promise<EndToEndResult> {
  const rss = new RssSampler(server.pid);
  scope.defer(() => rss.stop());
  say(`e2e: closed loop, ${opts.concurrency} POSTs in flight for ${opts.seconds} s, ${fleet.subscribed} sockets in ${opts.rooms} rooms`);
  const m = await measureDelivery(
    scope,
    server,
    fleet,
    { mode: 'closed', seconds: opts.seconds, concurrency: opts.concurrency, rooms: opts.rooms, bodyBytes: opts.bodyBytes, maxRequests: opts.seconds * 100_000 },
    30_000,
  );
  const peakRss = rss.stop();
  const { result, drained, watch, verify } = m;
  const finalOffset = watch.latest;
  const persisted = Math.max(0, finalOffset - m.startOffset);
  const persistedAt = watch.reachedAt(finalOffset);
  say(`e2e: ${result.accepted} accepted (${result.acceptedPerSec}/s), ${persisted} persisted, ${drained.stats.frames}/${m.expectedFrames} frames, lost ${verify.lost}, duplicates ${verify.duplicates}`);

  // The store must hold every accepted id too (GET /messages/since from where the phase began).
  const accepted = new Set(Object.values(m.acceptedByRoom).flat());
  const pages = await pageAll(server.base, {
    after: m.startOffset + 1,
    limit: 1000,
    maxPages: Math.ceil(result.sent / 1000) + 1000,
    signal: scope.signal,
    onPage: (msgs) => {
      for (const x of msgs) accepted.delete(x.id);
    },
  });
  const { hwm } = server.memory();
  return {
    concurrency: opts.concurrency,
    sockets: fleet.subscribed,
    rooms: opts.rooms,
    load: result,
    acceptedPerSec: result.acceptedPerSec,
    persisted,
    persistedPerSec: persistedAt === undefined ? null : perSecond(persisted, persistedAt - result.startAt),
    persistLagMs: persistedAt === undefined ? null : Math.round(persistedAt - result.endAt),
    framesDelivered: drained.stats.frames,
    framesExpected: m.expectedFrames,
    deliveredFramesPerSec: perSecond(drained.stats.frames, drained.stats.lastAt - result.startAt),
    verify,
    missingFromStore: accepted.size,
    storedByHttp: pages.count,
    outOfOrder: drained.stats.outOfOrder,
    unexpectedCloses: drained.stats.unexpectedCloses,
    errorFrames: drained.stats.errorFrames,
    serverPeakRssBytes: peakRss,
    serverHwmBytes: hwm,
    latencyUnderLoadMs: distribution(m.latencies),
    drainComplete: drained.complete,
  };
}
