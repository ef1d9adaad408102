import { readdirSync, readFileSync } from 'node:fs';
import { encodeRecord } from '../../src/domain/records.ts';
import { publishWindow } from './ceilings-broker.ts';
import { nowMs, waitFor } from './clock.ts';
import { processTicks, TICK_MS } from './cpu-usage.ts';
import { drain } from './drain.ts';
import { pageAll } from './http-pages.ts';
import { runPostLoad, type LoadGenerator, type MeasuredLoad } from './load-wrk.ts';
import type { BenchOptions } from './options.ts';
import { FANOUT_WINDOW } from './phase-fanout.ts';
import { say } from './progress.ts';
import { connectRabbit } from './rabbit.ts';
import { logRecord } from './records.ts';
import type { Scope } from './scope.ts';
import type { ServerProcess } from './server-process.ts';
import type { VerifyResult } from './ws-clients.ts';
import type { WsFleet } from './ws-fleet.ts';

/** Rooms nobody subscribes to: what is measured is intake and storage only. */
const QUIET_ROOMS = 'quiet-';

/** The machine's RabbitMQ (beam.smp started by init), whose CPU is reported beside the server's. */
export function brokerPid(): number | undefined {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      if (stat.slice(stat.indexOf('(') + 1, close) === 'beam.smp' && stat.slice(close + 2).split(' ')[1] === '1') return Number(name);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

/** CPU microseconds per item of the server, the broker and the load over one measured window. */
export interface CpuPerItem {
  items: number;
  ms: number;
  serverUs: number | null;
  brokerUs: number | null;
  loadUs: number | null;
  /** percent of one core over the window */
  serverPct: number | null;
  brokerPct: number | null;
  loadPct: number | null;
}

/** Starts a CPU window over the server and the broker; `end` turns it into per-item figures. */
function cpuWindow(server: ServerProcess) {
  const broker = brokerPid();
  const t0 = nowMs();
  const s0 = processTicks(server.pid);
  const b0 = broker === undefined ? undefined : processTicks(broker);
  return (items: number, loadCpuMs: number | null): CpuPerItem => {
    const ms = nowMs() - t0;
    const s1 = processTicks(server.pid);
    const b1 = broker === undefined ? undefined : processTicks(broker);
    const cpuMs = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? null : (b - a) * TICK_MS);
    const perItem = (c: number | null) => (c === null || items <= 0 ? null : Math.round(((c * 1000) / items) * 10) / 10);
    const pct = (c: number | null) => (c === null ? null : Math.round((c / ms) * 1000) / 10);
    const serverMs = cpuMs(s0, s1);
    const brokerMs = cpuMs(b0, b1);
    return {
      items,
      ms: Math.round(ms),
      serverUs: perItem(serverMs),
      brokerUs: perItem(brokerMs),
      loadUs: perItem(loadCpuMs),
      serverPct: pct(serverMs),
      brokerPct: pct(brokerMs),
      loadPct: pct(loadCpuMs),
    };
  };
}

const waitStored = (scope: Scope, server: ServerProcess, offset: number, timeoutMs: number) =>
  waitFor(`the server to store offset ${offset}`, async () => ((await server.checks()).lastOffset >= offset ? true : undefined), {
    timeoutMs,
    intervalMs: 50,
    signal: scope.signal,
  });

export interface IngestCostResult {
  loadGenerator: LoadGenerator;
  /** POST /message to rooms without subscribers, until all are stored */
  posts: { accepted: number; acceptedPerSec: number; statuses: Record<string, number>; answerP50Ms: number; answerP99Ms: number; cpu: CpuPerItem };
  /** records published straight to the stream (no HTTP), rooms without subscribers, until all are stored */
  records: { published: number; publishedPerSec: number | null; cpu: CpuPerItem };
}

/**
 * 2c. What one message costs the server before any socket: (a) POSTs from the load generator,
 * accepted, published, consumed and stored; (b) records put straight into the stream, consumed
 * and stored (the share of (a) after the broker; phase 2b's per-frame cost is what remains above it).
 */
export async function runIngestCost(scope: Scope, opts: BenchOptions, server: ServerProcess, stream: string, useWrk: boolean): Promise<IngestCostResult> {
  let start = (await server.checks()).lastOffset;
  say(`ingest: ${useWrk ? 'wrk' : 'JS load'} POSTing to ${opts.rooms} rooms without subscribers, ${opts.concurrency} connections, ${opts.seconds} s`);
  let end = cpuWindow(server);
  const load: MeasuredLoad = await runPostLoad(scope, {
    base: server.base,
    seconds: opts.seconds,
    concurrency: opts.concurrency,
    rooms: opts.rooms,
    roomPrefix: QUIET_ROOMS,
    bodyBytes: opts.bodyBytes,
    collectIds: false,
    useWrk,
  });
  const stored = await storedSince(scope, server, start, load.accepted);
  const postCpu = end(stored, load.loadCpuMs);
  say(`ingest: ${load.accepted} POSTs accepted (${load.acceptedPerSec}/s); server ${postCpu.serverUs} us, broker ${postCpu.brokerUs} us, load ${postCpu.loadUs} us per post`);

  const conn = await connectRabbit(opts.rabbitmqUrl, 'bench ingest');
  scope.defer(() => conn.close());
  start = (await server.checks()).lastOffset;
  end = cpuWindow(server);
  const publish = await publishWindow(conn, stream, {
    concurrency: FANOUT_WINDOW,
    count: opts.seconds * 1_000_000,
    seconds: opts.seconds,
    record: (i) => encodeRecord(logRecord(`${QUIET_ROOMS}${i % opts.rooms}`, i, opts.bodyBytes)),
    signal: scope.signal,
  });
  await storedSince(scope, server, start, publish.published);
  // The bench publishes from this process: its CPU is not the server's and is left out here.
  const recordCpu = end(publish.published, null);
  say(`ingest: ${publish.published} records straight to the stream; server ${recordCpu.serverUs} us per record`);
  return {
    loadGenerator: load.generator,
    posts: {
      accepted: load.accepted,
      acceptedPerSec: load.acceptedPerSec,
      statuses: load.statuses,
      answerP50Ms: load.answerMs.p50,
      answerP99Ms: load.answerMs.p99,
      cpu: postCpu,
    },
    records: { published: publish.published, publishedPerSec: publish.perSec, cpu: recordCpu },
  };
}

/**
 * Waits until at least `atLeast` records after `start` are stored and the offset has stopped
 * moving; returns how many were stored. A load generator stopped at its deadline does not see
 * the answers of the requests still in flight (wrk: one per connection), but the server stored
 * them: CPU is divided by what was stored.
 */
async function storedSince(scope: Scope, server: ServerProcess, start: number, atLeast: number): Promise<number> {
  await waitStored(scope, server, start + atLeast, 60_000);
  let last = (await server.checks()).lastOffset;
  for (;;) {
    await new Promise((r) => setTimeout(r, 300));
    const now = (await server.checks()).lastOffset;
    if (now === last) return now - start;
    last = now;
  }
}

export interface NativeEndToEndResult {
  loadGenerator: LoadGenerator;
  sockets: number;
  rooms: number;
  batched: boolean;
  accepted: number;
  acceptedPerSec: number;
  statuses: Record<string, number>;
  /** stored in the window: the 202s plus the requests in flight when the load stopped */
  stored: number;
  /** 202-answered ids not in the store (must be 0) */
  missingFromStore: number;
  framesExpected: number;
  framesDelivered: number;
  /** frames / (last frame received - load start) */
  deliveredFramesPerSec: number | null;
  verify: VerifyResult;
  outOfOrder: number;
  drainComplete: boolean;
  /** per accepted message, from the load's start to the last frame: every delivery included */
  cpuPerPost: CpuPerItem;
}

/**
 * 2e. End to end with the native load generator: POSTs to the rooms the (`?batch=1`) fleet
 * subscribes to; then every accepted id must have reached every subscriber of its room once.
 */
export async function runNativeEndToEnd(scope: Scope, opts: BenchOptions, server: ServerProcess, fleet: WsFleet, useWrk: boolean, batched: boolean): Promise<NativeEndToEndResult> {
  const start = (await server.checks()).lastOffset;
  await fleet.reset(false); // wrk's bodies carry no send time
  say(`e2e native: ${useWrk ? 'wrk' : 'JS load'}, ${opts.concurrency} connections for ${opts.seconds} s, ${fleet.subscribed} ${batched ? '?batch=1 ' : ''}sockets in ${opts.rooms} rooms`);
  const end = cpuWindow(server);
  const load = await runPostLoad(scope, {
    base: server.base,
    seconds: opts.seconds,
    concurrency: opts.concurrency,
    rooms: opts.rooms,
    bodyBytes: opts.bodyBytes,
    collectIds: true,
    useWrk,
  });
  // Every message stored in the window must reach every subscriber of its room once; that
  // includes the requests still in flight when the load stopped (their 202 went unread).
  const stored = await storedSince(scope, server, start, load.accepted);
  // The CPU window ends once the frames are in (estimated: the same subscribers in every room),
  // before the store is paged for the check below.
  const estimate = Math.floor((stored * fleet.subscribed) / opts.rooms);
  await drain(fleet, undefined, { minOffset: 0, expectedFrames: estimate, quietMs: 1000, timeoutMs: 60_000, signal: scope.signal });
  const cpu = end(stored, load.loadCpuMs);
  const storedByRoom: Record<string, string[]> = {};
  const answered = new Set(Object.values(load.acceptedByRoom ?? {}).flat());
  await pageAll(server.base, {
    after: start + 1,
    limit: 1000,
    maxPages: Math.ceil(stored / 1000) + 10,
    signal: scope.signal,
    onPage: (msgs) => {
      for (const m of msgs) {
        (storedByRoom[m.room] ??= []).push(m.id);
        answered.delete(m.id);
      }
    },
  });
  const perRoom = Object.fromEntries(Object.entries(storedByRoom).map(([r, ids]) => [r, ids.length]));
  const framesExpected = fleet.expectedFrames(perRoom);
  const drained = await drain(fleet, undefined, { minOffset: 0, expectedFrames: framesExpected, quietMs: 3000, timeoutMs: 60_000, signal: scope.signal });
  const verify = await fleet.verify(storedByRoom);
  const stats = drained.stats;
  const result: NativeEndToEndResult = {
    loadGenerator: load.generator,
    sockets: fleet.subscribed,
    rooms: opts.rooms,
    batched,
    accepted: load.accepted,
    acceptedPerSec: load.acceptedPerSec,
    statuses: load.statuses,
    stored,
    missingFromStore: answered.size,
    framesExpected,
    framesDelivered: stats.frames,
    deliveredFramesPerSec: stats.lastAt > 0 ? Math.round((stats.frames / (stats.lastAt - load.startAt)) * 1000) : null,
    verify,
    outOfOrder: stats.outOfOrder,
    drainComplete: drained.complete,
    cpuPerPost: cpu,
  };
  say(
    `e2e native: ${load.accepted} accepted (${load.acceptedPerSec}/s), ${stats.frames}/${framesExpected} frames, lost ${verify.lost}, duplicates ${verify.duplicates}; ` +
      `server ${cpu.serverUs} us per message (${cpu.serverPct}% of a core), load ${cpu.loadPct}%, broker ${cpu.brokerPct}%`,
  );
  return result;
}
