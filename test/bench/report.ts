import type { BrokerCeilings } from './ceilings-broker.ts';
import type { BareHttpCeiling } from './ceilings-bare.ts';
import type { SqliteCeilings } from './ceilings-sqlite.ts';
import type { ConcurrentRead } from './concurrent-pages.ts';
import type { FanOutResult } from './fanout-measure.ts';
import type { IdleSocketsResult } from './idle-sockets.ts';
import type { BenchOptions } from './options.ts';
import type { PeerResult } from './peer-socketio.ts';
import type { CatchUpResult } from './phase-catch-up.ts';
import type { EndToEndResult } from './phase-end-to-end.ts';
import type { HistoryResult, RequestCost } from './phase-history.ts';
import { FANOUT_WINDOW, type FanoutFromLogResult } from './phase-fanout.ts';
import type { LatencyResult } from './phase-latency.ts';
import type { IngestCostResult, NativeEndToEndResult } from './phase-native.ts';
import type { PhaseOutcome } from './scope.ts';

export interface Phases {
  serverStart?: PhaseOutcome<unknown>;
  connect?: PhaseOutcome<unknown>;
  endToEnd?: PhaseOutcome<EndToEndResult>;
  latency?: PhaseOutcome<LatencyResult>;
  fanoutFromLog?: PhaseOutcome<FanoutFromLogResult>;
  ingest?: PhaseOutcome<IngestCostResult>;
  connectBatched?: PhaseOutcome<unknown>;
  fanoutBatched?: PhaseOutcome<FanoutFromLogResult>;
  endToEndNative?: PhaseOutcome<NativeEndToEndResult>;
  catchUp?: PhaseOutcome<CatchUpResult>;
  history?: PhaseOutcome<HistoryResult>;
  sockets?: PhaseOutcome<IdleSocketsResult>;
  broker?: PhaseOutcome<BrokerCeilings>;
  sqlite?: PhaseOutcome<SqliteCeilings>;
  bareHttp?: PhaseOutcome<BareHttpCeiling>;
  bareWs?: PhaseOutcome<FanOutResult>;
  peer?: PhaseOutcome<PeerResult>;
}

export interface Results {
  runId: string;
  startedAt: string;
  finishedAt?: string;
  options: Omit<BenchOptions, 'only'> & { only: string[] };
  machine: Record<string, unknown>;
  server: Record<string, unknown>;
  phases: Phases;
  /** phase -> error, for every phase that failed */
  errors: Record<string, string>;
  derived?: Record<string, unknown>;
  summary?: Summary;
}

type N = number | null;

/** The final stdout line: exactly these keys. */
export interface Summary {
  acceptedPerSec: N;
  persistedPerSec: N;
  deliveredFramesPerSec: N;
  /** the same sockets fed straight from the stream (no HTTP intake): frames per second */
  fanoutFromLogFramesPerSec: N;
  lost: N;
  duplicates: N;
  p50Ms: N;
  p99Ms: N;
  replayHttpPerSec: N;
  replayWsPerSec: N;
  rssBytesPerSocket: N;
  ceilings: {
    brokerPublishPerSec: N;
    brokerConsumePerSec: N;
    sqliteInsertPerSec: N;
    sqlitePageReadPerSec: N;
    bareHttpPerSec: N;
    bareWsFramesPerSec: N;
  };
  ratios: {
    endToEndVsSlowestStage: N;
    persistedVsSlowestStage: N;
    deliveredVsBareWs: N;
    deliveredVsPeer: N;
    rssPerSocketVsPeer: N;
    fanoutVsPeer: N;
    fanoutVsBareWs: N;
  };
  peer: { deliveredFramesPerSec: N; rssBytesPerSocket: N };
  /** server CPU per POST accepted and stored, no subscribers (phase 2c), microseconds */
  serverUsPerPost: N;
  /** server CPU per delivered frame above the cost of storing the message (phase 2b), microseconds */
  serverUsPerFrame: N;
  /** the same with ?batch=1 sockets (phase 2d) */
  serverUsPerFrameBatched: N;
  /** end to end with the native load generator and ?batch=1 sockets (phase 2e) */
  e2eNativeAcceptedPerSec: N;
  e2eNativeLost: N;
  e2eNativeDuplicates: N;
  /** fan-out frames per server CPU second, ours (?batch=1 sockets) / Socket.IO's */
  fanoutPerCpuVsPeer: N;
  /** GET /messages/since pages of 1,000 by several readers at once (phase 3): server CPU per message read, microseconds (replayHttpPerSec is their msg/s) */
  replayHttpServerUsPerMessage: N;
  /** scrollback pages of 1,000 (older messages, newest first) by several readers at once, messages per second */
  scrollbackPerSec: N;
  /** the same: server CPU per message read, microseconds */
  scrollbackServerUsPerMessage: N;
  /** what generated the POST load: the native wrk, or the JavaScript fallback */
  loadGenerator: 'wrk' | 'js' | null;
}

/**
 * Server CPU per delivered frame of a fan-out-from-log phase, above what storing its records
 * costs (phase 2c's per-record figure): (server CPU - records x cost per record) / frames.
 */
export function usPerFrame(f: FanoutFromLogResult | undefined, usPerRecord: number | null | undefined): N {
  if (!f || f.cpu.server === null || f.framesDelivered <= 0) return null;
  const serverUs = (f.cpu.server / 100) * f.cpu.ms * 1000;
  return Math.round(((serverUs - f.published * (usPerRecord ?? 0)) / f.framesDelivered) * 100) / 100;
}

const ok = <T>(p: PhaseOutcome<T> | undefined): T | undefined => (p?.ok ? p.value : undefined);
const num = (v: number | null | undefined): N => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const ratio = (a: N, b: N): N => (a !== null && b !== null && b > 0 ? Math.round((a / b) * 1000) / 1000 : null);
/** Sum of the figures that exist (a failed phase adds nothing); null when none does. */
const sumN = (...xs: (number | undefined)[]): N => (xs.every((x) => x === undefined) ? null : xs.reduce<number>((s, x) => s + (x ?? 0), 0));

/** Builds the summary line and the derived facts (which stage is slowest, in messages per second). */
export function summarise(r: Results): { summary: Summary; derived: Record<string, unknown> } {
  const e2e = ok(r.phases.endToEnd);
  const lat = ok(r.phases.latency);
  const fan = ok(r.phases.fanoutFromLog);
  const cu = ok(r.phases.catchUp);
  const socks = ok(r.phases.sockets);
  const broker = ok(r.phases.broker);
  const sqlite = ok(r.phases.sqlite);
  const http = ok(r.phases.bareHttp);
  const ws = ok(r.phases.bareWs);
  const peer = ok(r.phases.peer);
  const ingest = ok(r.phases.ingest);
  const fanB = ok(r.phases.fanoutBatched);
  const native = ok(r.phases.endToEndNative);
  const history = ok(r.phases.history);

  const ceilings = {
    brokerPublishPerSec: num(broker?.publish.perSec),
    brokerConsumePerSec: num(broker?.consume.perSec),
    sqliteInsertPerSec: num(sqlite?.insertPerSec),
    sqlitePageReadPerSec: num(sqlite?.pageReadPerSec),
    bareHttpPerSec: num(http?.perSec),
    bareWsFramesPerSec: num(ws?.deliveredFramesPerSec),
  };
  // Every stage a message goes through, in messages per second; fan-out frames are divided by
  // the subscribers per room.
  const fanOut = ws && ws.rooms > 0 ? ws.sockets / ws.rooms : undefined;
  const stages: Record<string, N> = {
    http: ceilings.bareHttpPerSec,
    brokerPublish: ceilings.brokerPublishPerSec,
    brokerConsume: ceilings.brokerConsumePerSec,
    sqliteInsert: ceilings.sqliteInsertPerSec,
    wsFanOut: ceilings.bareWsFramesPerSec !== null && fanOut ? Math.round(ceilings.bareWsFramesPerSec / fanOut) : null,
  };
  const known = Object.entries(stages).filter((e): e is [string, number] => e[1] !== null);
  const slowest = known.length === Object.keys(stages).length ? known.reduce((a, b) => (b[1] < a[1] ? b : a)) : undefined;

  const summary: Summary = {
    acceptedPerSec: num(e2e?.acceptedPerSec),
    persistedPerSec: num(e2e?.persistedPerSec),
    deliveredFramesPerSec: num(e2e?.deliveredFramesPerSec),
    fanoutFromLogFramesPerSec: num(fan?.deliveredFramesPerSec),
    lost: sumN(e2e?.verify.lost, lat?.verify.lost, lat?.atHalfCapacity?.verify.lost),
    duplicates: sumN(e2e?.verify.duplicates, lat?.verify.duplicates, lat?.atHalfCapacity?.verify.duplicates),
    p50Ms: num(lat?.latencyMs.p50),
    p99Ms: num(lat?.latencyMs.p99),
    replayHttpPerSec: num(cu?.http.perSec),
    replayWsPerSec: num(cu?.ws.perSec),
    rssBytesPerSocket: num(socks?.rssBytesPerSocket),
    ceilings,
    ratios: {
      endToEndVsSlowestStage: ratio(num(e2e?.acceptedPerSec), slowest ? slowest[1] : null),
      persistedVsSlowestStage: ratio(num(e2e?.persistedPerSec), slowest ? slowest[1] : null),
      deliveredVsBareWs: ratio(num(e2e?.deliveredFramesPerSec), ceilings.bareWsFramesPerSec),
      deliveredVsPeer: ratio(num(e2e?.deliveredFramesPerSec), num(peer?.fanOut.deliveredFramesPerSec)),
      rssPerSocketVsPeer: ratio(num(socks?.rssBytesPerSocket), num(peer?.idle.rssBytesPerSocket)),
      fanoutVsPeer: ratio(num(fan?.deliveredFramesPerSec), num(peer?.fanOut.deliveredFramesPerSec)),
      fanoutVsBareWs: ratio(num(fan?.deliveredFramesPerSec), ceilings.bareWsFramesPerSec),
    },
    peer: { deliveredFramesPerSec: num(peer?.fanOut.deliveredFramesPerSec), rssBytesPerSocket: num(peer?.idle.rssBytesPerSocket) },
    serverUsPerPost: num(ingest?.posts.cpu.serverUs),
    serverUsPerFrame: usPerFrame(fan, ingest?.records.cpu.serverUs),
    serverUsPerFrameBatched: usPerFrame(fanB, ingest?.records.cpu.serverUs),
    e2eNativeAcceptedPerSec: num(native?.acceptedPerSec),
    e2eNativeLost: native ? native.verify.lost + native.missingFromStore : null,
    e2eNativeDuplicates: num(native?.verify.duplicates),
    fanoutPerCpuVsPeer: ratio(num(fanB?.framesPerServerCpuSec ?? fan?.framesPerServerCpuSec), num(peer?.fanOut.framesPerServerCpuSec)),
    replayHttpServerUsPerMessage: num(cu?.http.serverUsPerMessage),
    scrollbackPerSec: num(history?.scrollbackConcurrent.perSec),
    scrollbackServerUsPerMessage: num(history?.scrollbackConcurrent.serverUsPerMessage),
    loadGenerator: ingest?.loadGenerator ?? native?.loadGenerator ?? ((r.machine.loadGenerator as 'wrk' | 'js' | undefined) ?? null),
  };
  return { summary, derived: { stageCeilingsMessagesPerSec: stages, slowestStage: slowest?.[0] ?? null, subscribersPerRoom: fanOut ?? null } };
}

const fmt = (v: unknown, unit = ''): string => {
  if (v === null || v === undefined) return 'n/a';
  if (typeof v === 'number') {
    const s = Number.isInteger(v) ? v.toLocaleString('en-US') : v.toLocaleString('en-US', { maximumFractionDigits: 3 });
    return unit ? `${s} ${unit}` : s;
  }
  return String(v);
};
/** The detail of a read by several page readers at once (phases 3 and 3b). */
const readNote = (c: ConcurrentRead): string =>
  `${fmt(c.messages)} messages in ${fmt(c.pages)} pages, each reader all of them; ${fmt(c.serverUsPerMessage)} us server CPU per message; cpu % of a core: server ${fmt(c.serverCpuPct)}, readers ${fmt(c.readersCpuPct)}`;
/** Older results (before gcBeforeRss) read without a GC first. */
const afterGc = (r: IdleSocketsResult) =>
  r.gcBeforeRss ? `, each after a full GC${r.heapBytesPerSocket === undefined ? '' : `; JS heap ${kib(r.heapBytesPerSocket)} per socket`}` : ', no GC before reading';
const kib = (b: number | null | undefined) => (typeof b === 'number' ? `${(b / 1024).toFixed(1)} KiB` : 'n/a');
const mib = (b: number | null | undefined) => (typeof b === 'number' ? `${(b / 1024 / 1024).toFixed(1)} MiB` : 'n/a');

/** A readable table of the main figures (what failed says so). */
export function renderTable(r: Results): string {
  const s = r.summary!;
  const e2e = ok(r.phases.endToEnd);
  const lat = ok(r.phases.latency);
  const fan = ok(r.phases.fanoutFromLog);
  const cu = ok(r.phases.catchUp);
  const socks = ok(r.phases.sockets);
  const broker = ok(r.phases.broker);
  const sqlite = ok(r.phases.sqlite);
  const peer = ok(r.phases.peer);
  const ws = ok(r.phases.bareWs);
  const o = r.options;
  const rows: [string, string, string][] = [];
  const section = (name: string, phase: PhaseOutcome<unknown> | undefined) => {
    const c = phase?.cpu;
    // CPU in percent of one core over the phase: this run's processes, the broker, anything else on the machine.
    const cpu = c ? `; cpu % of a core: bench ${Math.round(c.bench)}, broker ${Math.round(c.broker)}, other ${Math.round(c.foreign)}` : '';
    rows.push([name, '', phase ? (phase.ok ? `(${(phase.ms / 1000).toFixed(1)} s${cpu})` : `FAILED: ${phase.error.slice(0, 160)}`) : 'skipped']);
  };
  const row = (label: string, value: string, note = '') => rows.push([`  ${label}`, value, note]);

  if (r.phases.serverStart && !r.phases.serverStart.ok) section('server start (phases 1-4 and 2b need it)', r.phases.serverStart);
  if (r.phases.connect && !r.phases.connect.ok) section('connect sockets (phases 1, 2 and 2b need them)', r.phases.connect);
  section(`1 end to end (${o.sockets} sockets, ${o.rooms} rooms, ${o.seconds} s, ${o.concurrency} in flight)`, r.phases.endToEnd);
  if (e2e) {
    row('accepted (202)', fmt(s.acceptedPerSec, 'msg/s'), `${fmt(e2e.load.accepted)} accepted, statuses ${JSON.stringify(e2e.load.statuses)}`);
    row('persisted', fmt(s.persistedPerSec, 'msg/s'), `${fmt(e2e.persisted)} stored, last ${fmt(e2e.persistLagMs)} ms after the load`);
    row('delivered', fmt(s.deliveredFramesPerSec, 'frames/s'), `${fmt(e2e.framesDelivered)} of ${fmt(e2e.framesExpected)} frames`);
    row('lost / duplicates', `${e2e.verify.lost} / ${e2e.verify.duplicates}`, `unexpected ${e2e.verify.unexpected}, missing from store ${e2e.missingFromStore}, out of order ${e2e.outOfOrder}`);
    row('POST answer p50 / p99', `${fmt(e2e.load.answerMs.p50)} / ${fmt(e2e.load.answerMs.p99)} ms`);
    row('send->receive p50 / p99 (saturated)', `${fmt(e2e.latencyUnderLoadMs.p50)} / ${fmt(e2e.latencyUnderLoadMs.p99)} ms`);
    row('server peak RSS', mib(e2e.serverPeakRssBytes), `VmHWM ${mib(e2e.serverHwmBytes)}`);
  }
  section(`2 latency (open loop ${o.latencyRate} msg/s, ${o.latencySeconds} s after a warm-up)`, r.phases.latency);
  if (lat) {
    row(`send->receive p50 / p95 / p99 after ${lat.warmupSeconds} s`, `${fmt(lat.latencyMs.p50)} / ${fmt(lat.latencyMs.p95)} / ${fmt(lat.latencyMs.p99)} ms`, `max ${fmt(lat.latencyMs.max)} ms over ${fmt(lat.latencyMs.count)} frames`);
    const sd = lat.serverDelayMs;
    if (sd) row('of which the server: accepted -> pushed', `p50 <= ${fmt(sd.p50AtMost)} / p99 <= ${fmt(sd.p99AtMost)} ms`, `chat_delivery_delay_seconds after the warm-up, ${fmt(sd.count)} messages (histogram bounds)`);
    row('p50 / p99 by second, warm-up included', lat.latencyBySecond.map((b) => `${b.second}s ${fmt(Math.round(b.p50 * 10) / 10)}/${fmt(Math.round(b.p99 * 10) / 10)}`).join(', '), 'ms; a cold server\'s first seconds: --only latency');
    row('sent / accepted / skipped', `${fmt(lat.load.sent)} / ${fmt(lat.load.accepted)} / ${fmt(lat.load.skipped)}`, `lost ${lat.verify.lost}, duplicates ${lat.verify.duplicates}${lat.saturated ? '; the server did not keep up with this rate' : ''}`);
    const h = lat.atHalfCapacity;
    if (h) row(`at half of phase 1's rate (${h.rate} msg/s) p50 / p99`, `${fmt(h.latencyMs.p50)} / ${fmt(h.latencyMs.p99)} ms`, `${h.saturated ? 'did not keep up either; ' : ''}lost ${h.verify.lost}, duplicates ${h.verify.duplicates}`);
  }
  section(`2b fan-out from the log (phase 1's sockets; records published straight to the stream, ${fan?.window ?? FANOUT_WINDOW} in flight, ${o.seconds} s)`, r.phases.fanoutFromLog);
  if (fan) {
    row('published (confirmed)', fmt(fan.publishedPerSec, 'msg/s'), `${fmt(fan.published)} records; the server had stored them all ${fmt(fan.storedAfterMs)} ms after the first (${fmt(fan.storedPerSec)} msg/s)`);
    row(
      'delivered',
      fmt(s.fanoutFromLogFramesPerSec, 'frames/s'),
      `${fmt(fan.framesDelivered)} of ${fmt(fan.framesExpected)} frames, last ${fmt(fan.lastFrameAfterMs)} ms after the first publish${fan.drainComplete ? '' : ` (INCOMPLETE: gave up after ${fmt(fan.drainTimeoutMs)} ms)`}`,
    );
    row('lost / duplicates', `${fan.verify.lost} / ${fan.verify.duplicates}`, `unexpected ${fan.verify.unexpected}, out of order ${fan.outOfOrder}, error frames ${fan.errorFrames}, unexpected closes ${JSON.stringify(fan.unexpectedCloses)}`);
    row('cpu % of a core: server / clients / runner', `${fmt(fan.cpu.server)} / ${fmt(fan.cpu.clients)} / ${fmt(fan.cpu.runner)}`, `first publish to end of drain; the runner publishes; ${fmt(fan.framesPerServerCpuSec)} frames per server CPU second`);
    row('record->receive p50 / p99', `${fmt(fan.latencyMs.p50)} / ${fmt(fan.latencyMs.p99)} ms`, `includes the wait behind ${fan.window} publishes in flight (about ${fmt(fan.publishedPerSec ? Math.round((fan.window / fan.publishedPerSec) * 1000) : null)} ms at this rate)`);
  }
  const ingest = ok(r.phases.ingest);
  const fanB = ok(r.phases.fanoutBatched);
  const native = ok(r.phases.endToEndNative);
  const cpuNote = (c: { serverPct: number | null; brokerPct: number | null; loadPct: number | null }) =>
    `cpu % of a core: server ${fmt(c.serverPct)}, broker ${fmt(c.brokerPct)}, load ${fmt(c.loadPct)}`;
  section(`2c cost of a message before any socket (rooms without subscribers, ${s.loadGenerator ?? 'n/a'} load, ${o.concurrency} connections, ${o.seconds} s)`, r.phases.ingest);
  if (ingest) {
    const c = ingest.posts.cpu;
    row('POSTs accepted and stored', fmt(ingest.posts.acceptedPerSec, 'msg/s'), `${fmt(ingest.posts.accepted)} accepted, statuses ${JSON.stringify(ingest.posts.statuses)}; ${cpuNote(c)}`);
    row('CPU per post: server / broker / load', `${fmt(c.serverUs)} / ${fmt(c.brokerUs)} / ${fmt(c.loadUs)} us`, 'from the first POST until the server had stored the last');
    const rc = ingest.records.cpu;
    row('records straight to the stream: server CPU', fmt(rc.serverUs, 'us/record'), `${fmt(ingest.records.published)} records (${fmt(ingest.records.publishedPerSec)} msg/s); consume, decode, store only`);
  }
  section(`2d fan-out from the log, ?batch=1 sockets (as 2b)`, r.phases.fanoutBatched);
  if (fanB) {
    row('delivered', fmt(fanB.deliveredFramesPerSec, 'frames/s'), `${fmt(fanB.framesDelivered)} of ${fmt(fanB.framesExpected)} frames; lost ${fanB.verify.lost}, duplicates ${fanB.verify.duplicates}, out of order ${fanB.outOfOrder}`);
    row('cpu % of a core: server / clients / runner', `${fmt(fanB.cpu.server)} / ${fmt(fanB.cpu.clients)} / ${fmt(fanB.cpu.runner)}`, `${fmt(fanB.framesPerServerCpuSec)} frames per server CPU second`);
  }
  if (fan || fanB) row('server CPU per frame above storing (2b / 2d batched)', `${fmt(s.serverUsPerFrame)} / ${fmt(s.serverUsPerFrameBatched)} us`, '(server CPU - records x 2c cost per record) / frames');
  section(`2e end to end, ${native?.loadGenerator ?? s.loadGenerator ?? ''} load, ?batch=1 sockets (${o.sockets} sockets, ${o.rooms} rooms, ${o.concurrency} connections, ${o.seconds} s)`, r.phases.endToEndNative);
  if (native) {
    row('accepted (202)', fmt(native.acceptedPerSec, 'msg/s'), `${fmt(native.accepted)} accepted, statuses ${JSON.stringify(native.statuses)}`);
    row('delivered', fmt(native.deliveredFramesPerSec, 'frames/s'), `${fmt(native.framesDelivered)} of ${fmt(native.framesExpected)} frames${native.drainComplete ? '' : ' (INCOMPLETE)'}`);
    row('lost / duplicates', `${native.verify.lost} / ${native.verify.duplicates}`, `of ${fmt(native.stored)} stored (202s + requests in flight at the stop); 202s missing from the store ${native.missingFromStore}, unexpected ${native.verify.unexpected}, out of order ${native.outOfOrder}`);
    row('CPU per message, all deliveries: server / broker / load', `${fmt(native.cpuPerPost.serverUs)} / ${fmt(native.cpuPerPost.brokerUs)} / ${fmt(native.cpuPerPost.loadUs)} us`, cpuNote(native.cpuPerPost));
  }
  section(`3 catch-up (${o.stored} stored in one room)`, r.phases.catchUp);
  if (cu) {
    row('node ingest of a backlog', fmt(cu.ingestPerSec, 'msg/s'), `direct publish ${fmt(cu.fillPublishPerSec)} msg/s`);
    row(`GET /messages/since limit=1000, ${cu.http.readers} readers at once`, fmt(s.replayHttpPerSec, 'msg/s'), readNote(cu.http));
    row('GET /messages/since limit=1000, one reader', fmt(cu.httpOneReader.perSec, 'msg/s'), `${fmt(cu.httpOneReader.messages)} messages, ${cu.httpOneReader.pages} pages, one at a time; the reader's parsing is in the time`);
    row('WebSocket subscribe after=0', fmt(s.replayWsPerSec, 'msg/s'), `${fmt(cu.ws.messages)} messages`);
  }
  const hist = ok(r.phases.history);
  section(`3b scrollback and conversation list (${o.stored} in one room; a user in 200 rooms)`, r.phases.history);
  if (hist) {
    const cost = (c: RequestCost) => `p50 ${fmt(c.latencyMs.p50)} / p99 ${fmt(c.latencyMs.p99)} ms; ${fmt(c.serverCpuUsPerRequest)} µs server CPU each`;
    row('GET /messages/before limit=50', fmt(hist.scrollback.perSec, 'pages/s'), `${fmt(hist.scrollback.pages)} pages, newest to first; ${cost(hist.scrollback)}`);
    row('GET /messages/before limit=1000, one reader', fmt(hist.scrollbackLarge.messagesPerSec, 'msg/s'), `${fmt(hist.scrollbackLarge.pages)} pages, newest to first; ${cost(hist.scrollbackLarge)}`);
    row(`GET /messages/before limit=1000, ${hist.scrollbackConcurrent.readers} readers at once`, fmt(s.scrollbackPerSec, 'msg/s'), readNote(hist.scrollbackConcurrent));
    row('GET /rooms (200 rooms, limit=200)', fmt(hist.rooms.perSec, 'req/s'), `${fmt(hist.rooms.requests)} requests; ${cost(hist.rooms)}`);
  }
  section(`4 idle sockets (${o.idle})`, r.phases.sockets);
  if (socks) row('server RSS per socket', kib(socks.rssBytesPerSocket), `${mib(socks.rssBeforeBytes)} -> ${mib(socks.rssWithSocketsBytes)}${afterGc(socks)}`);
  section('5a broker alone', r.phases.broker);
  if (broker) {
    row('publish with confirms', fmt(s.ceilings.brokerPublishPerSec, 'msg/s'), `${broker.concurrency} in flight, ${broker.recordBytes} B records`);
    row('stream consume (prefetch ' + broker.prefetch + ')', fmt(s.ceilings.brokerConsumePerSec, 'msg/s'));
  }
  section('5b SQLite alone', r.phases.sqlite);
  if (sqlite) {
    row(`insert (batches of ${sqlite.batchSize})`, fmt(s.ceilings.sqliteInsertPerSec, 'msg/s'), `batches of ${sqlite.insertSmallBatch.batchSize}: ${fmt(sqlite.insertSmallBatch.perSec)} msg/s`);
    row('page read as JSON (limit 1000)', fmt(s.ceilings.sqlitePageReadPerSec, 'msg/s'), `one room: ${fmt(sqlite.roomPageReadPerSec)} msg/s; as Message objects: ${fmt(sqlite.objectPageReadPerSec)} msg/s`);
  }
  section('5c bare Hono POST', r.phases.bareHttp);
  if (s.ceilings.bareHttpPerSec !== null) row('202s', fmt(s.ceilings.bareHttpPerSec, 'req/s'));
  section('5d bare ws broadcast', r.phases.bareWs);
  if (ws) row('delivered', fmt(s.ceilings.bareWsFramesPerSec, 'frames/s'), `${fmt(ws.framesDelivered)} of ${fmt(ws.framesExpected)} frames; server cpu ${fmt(ws.serverCpuPct)} % of a core, ${fmt(ws.framesPerServerCpuSec)} frames per server CPU second`);
  section('6 peer: Socket.IO 4 (connection state recovery)', r.phases.peer);
  if (peer) {
    row('delivered', fmt(s.peer.deliveredFramesPerSec, 'frames/s'), `${fmt(peer.fanOut.framesDelivered)} of ${fmt(peer.fanOut.framesExpected)} frames; server cpu ${fmt(peer.fanOut.serverCpuPct)} % of a core, ${fmt(peer.fanOut.framesPerServerCpuSec)} frames per server CPU second`);
    row('server RSS per idle socket', kib(s.peer.rssBytesPerSocket), `${mib(peer.idle.rssBeforeBytes)} -> ${mib(peer.idle.rssWithSocketsBytes)}${afterGc(peer.idle)}`);
  }
  rows.push(['goals (issue 14)', 'ours', 'goal']);
  const goal = (label: string, value: N, unit: string, target: string, met: boolean | null) =>
    row(label, fmt(value, unit), `${target}: ${met === null ? 'not measured' : met ? 'met' : 'NOT met'}`);
  const le = (v: N, t: number) => (v === null ? null : v <= t);
  const ge = (v: N, t: number) => (v === null ? null : v >= t);
  goal('server CPU per post accepted and stored (no subscribers)', s.serverUsPerPost, 'us', '<= 60 us', le(s.serverUsPerPost, 60));
  goal('server CPU per delivered frame, ?batch=1', s.serverUsPerFrameBatched, 'us', '<= 3 us', le(s.serverUsPerFrameBatched, 3));
  goal('server CPU per delivered frame, unbatched', s.serverUsPerFrame, 'us', '<= 8 us', le(s.serverUsPerFrame, 8));
  const nativeOk = s.e2eNativeAcceptedPerSec === null ? null : s.e2eNativeAcceptedPerSec >= 8000 && s.e2eNativeLost === 0 && s.e2eNativeDuplicates === 0;
  goal(`end to end, native load (lost ${fmt(s.e2eNativeLost)}, duplicates ${fmt(s.e2eNativeDuplicates)})`, s.e2eNativeAcceptedPerSec, 'msg/s', '>= 8,000 msg/s, 0 lost, 0 duplicates', nativeOk);
  goal('latency post -> frame at 2,000 msg/s after warm-up, p50', s.p50Ms, 'ms', '<= 5 ms', le(s.p50Ms, 5));
  goal('latency post -> frame at 2,000 msg/s after warm-up, p99', s.p99Ms, 'ms', '<= 25 ms', le(s.p99Ms, 25));
  goal('fan-out frames per server CPU second vs Socket.IO', s.fanoutPerCpuVsPeer, 'x', '>= 4x', ge(s.fanoutPerCpuVsPeer, 4));
  goal(`catch-up over HTTP, pages of 1,000 (${fmt(s.replayHttpServerUsPerMessage)} us server CPU per message)`, s.replayHttpPerSec, 'msg/s', '>= 300,000 msg/s', ge(s.replayHttpPerSec, 300_000));
  goal(`scrollback, pages of 1,000 (${fmt(s.scrollbackServerUsPerMessage)} us server CPU per message)`, s.scrollbackPerSec, 'msg/s', '>= 300,000 msg/s', ge(s.scrollbackPerSec, 300_000));
  goal('RSS per idle socket', s.rssBytesPerSocket === null ? null : Math.round((s.rssBytesPerSocket / 1024) * 10) / 10, 'KiB', '<= 8 KiB', le(s.rssBytesPerSocket, 8 * 1024));
  rows.push(['ratios', '', '']);
  const d = r.derived ?? {};
  row('end to end / slowest stage', fmt(s.ratios.endToEndVsSlowestStage), `slowest: ${fmt(d.slowestStage)} ${JSON.stringify(d.stageCeilingsMessagesPerSec ?? {})}`);
  row('persisted / slowest stage', fmt(s.ratios.persistedVsSlowestStage));
  row('delivered / bare ws', fmt(s.ratios.deliveredVsBareWs));
  row('delivered / Socket.IO', fmt(s.ratios.deliveredVsPeer));
  row('RSS per socket / Socket.IO', fmt(s.ratios.rssPerSocketVsPeer));
  row('fan-out from the log / Socket.IO', fmt(s.ratios.fanoutVsPeer));
  row('fan-out from the log / bare ws', fmt(s.ratios.fanoutVsBareWs));

  const w0 = Math.max(...rows.map((x) => x[0].length));
  const w1 = Math.max(...rows.map((x) => x[1].length));
  return rows.map(([a, b, c]) => `${a.padEnd(w0)}  ${b.padStart(w1)}  ${c}`.trimEnd()).join('\n');
}
