/**
 * `npm run bench [-- --quick] [--sockets N] ...`: benchmarks the real server (its own process, as
 * `npm start` runs it) from other processes, then the stages it is built from alone, then a peer.
 * Progress on stderr; the table on stderr; the full result in .bench/result-<time>.json; ONE
 * JSON line on stdout. Every phase has a deadline and records its error instead of hanging; every
 * process started is killed on the way out, whichever way out it is.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { execSync } from 'node:child_process';
import { runBrokerCeilings } from './ceilings-broker.ts';
import { runBareHttp, runBareWs } from './ceilings-bare.ts';
import { runSqliteCeilings } from './ceilings-sqlite.ts';
import { killEverything, liveChildren, ROOT } from './children.ts';
import { measureIdleSockets } from './idle-sockets.ts';
import { parseOptions, UsageError, type BenchOptions, type PhaseName } from './options.ts';
import { runPeer } from './peer-socketio.ts';
import { runCatchUp } from './phase-catch-up.ts';
import { runEndToEnd } from './phase-end-to-end.ts';
import { runHistory } from './phase-history.ts';
import { runFanoutFromLog } from './phase-fanout.ts';
import { runLatency } from './phase-latency.ts';
import { wrkAvailable } from './load-wrk.ts';
import { runIngestCost, runNativeEndToEnd } from './phase-native.ts';
import { say } from './progress.ts';
import { deleteStreams } from './rabbit.ts';
import { renderTable, summarise, type Results } from './report.ts';
import { interruptRun, runPhase, Scope, withTimeout } from './scope.ts';
import { ServerProcess } from './server-process.ts';
import { WsFleet } from './ws-fleet.ts';

let opts: BenchOptions;
try {
  opts = parseOptions(process.argv.slice(2));
} catch (err) {
  if (!(err instanceof UsageError)) throw err;
  process.stderr.write(`${err.message}\n`);
  process.exit(2);
}

const runId = new Date().toISOString().replace(/[:.]/g, '-');
const stream = `bench.${Date.now()}`;
const ceilingStream = `${stream}.ceiling`;
const work = mkdtempSync(join(tmpdir(), 'chat-bench-'));
const databasePath = join(work, 'chat.db');
let server: ServerProcess | undefined;
let cleaningUp: Promise<void> | undefined;
let finished = false;

/** Stops the server (gracefully when there is time), kills every other child, deletes the streams and the temp folder. */
function cleanup(graceful: boolean): Promise<void> {
  if (!graceful) interruptRun('the run was stopped');
  return (cleaningUp ??= (async () => {
    if (server && graceful) await server.stop(8000).catch(() => {});
    const killed = killEverything();
    if (killed > 0) say(`killed ${killed} process(es) still running`);
    const failed = await withTimeout(deleteStreams(opts.rabbitmqUrl, [stream, ceilingStream]), 15_000, 'stream deletion').catch(() => [stream, ceilingStream]);
    if (failed.length > 0) say(`could not delete stream(s) ${failed.join(', ')}: delete them by hand`);
    rmSync(work, { recursive: true, force: true });
  })());
}

/** Stops everything now, reports what was measured so far, exits. */
function abandon(why: string, code: number): void {
  say(`${why}: stopping every process of this run`);
  void cleanup(false).finally(() => {
    results.errors.run ??= why;
    finish();
    process.exit(code);
  });
}

process.on('exit', () => killEverything());
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, () => abandon(signal, 130));
process.on('uncaughtException', (err) => abandon(`uncaught exception: ${err.stack ?? err}`, 1));
process.on('unhandledRejection', (err) => {
  say(`unhandled rejection: ${(err as Error)?.stack ?? err}`);
});

const fdLimit = (() => {
  try {
    return execSync('ulimit -n; ulimit -Hn', { shell: '/bin/bash', encoding: 'utf8' }).trim().split('\n').join(' soft / hard ');
  } catch {
    return 'unknown';
  }
})();

/** The native load generator when installed (the JavaScript one costs more CPU than the server). */
const useWrk = wrkAvailable();

const results: Results = {
  runId,
  startedAt: new Date().toISOString(),
  options: { ...opts, only: [...opts.only] },
  machine: { loadGenerator: useWrk ? 'wrk' : 'js', cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryBytes: totalmem(), node: process.version, fdLimit },
  server: { stream, ceilingStream, databasePath },
  phases: {},
  errors: {},
};
const want = (p: PhaseName) => opts.only.has(p);

/** Overall deadline on top of each phase's own: whatever happens, the run ends. */
const overallMs = (opts.quick ? 5 : 30) * 60_000 + opts.seconds * 10_000;
const watchdog = setTimeout(() => abandon(`the whole run overran ${Math.round(overallMs / 60_000)} min`, 1), overallMs);
watchdog.unref();

const profileDir = resolve(ROOT, opts.outDir, `profile-${runId}`);

/** `inspect`: with the inspector on a free loopback port, for ServerProcess.collectGarbage. */
async function startServer(inspect = false): Promise<ServerProcess> {
  const nodeArgs = [...(opts.profile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []), ...(inspect ? ['--inspect=127.0.0.1:0'] : [])];
  const s = await ServerProcess.start({ databasePath, streamName: stream, rabbitmqUrl: opts.rabbitmqUrl, nodeArgs });
  results.server.rateLimitPerMinute = s.rateLimit;
  return s;
}

async function stopServer(): Promise<void> {
  if (!server) return;
  const s = server;
  server = undefined;
  const warnings = (results.server.warnings ??= {}) as Record<string, number>;
  const stopped = await s.stop();
  for (const [msg, n] of s.warnings) warnings[msg] = (warnings[msg] ?? 0) + n;
  if (stopped.forced) say('server did not stop within 8 s of SIGTERM: killed');
  const stops = (results.server.stops ??= []) as unknown[];
  stops.push(stopped);
}

/** 2c: what a post and a record cost before any socket (rooms nobody subscribes to). */
const ingestPhase = (s: ServerProcess) =>
  runPhase('2c ingest cost, no subscribers', opts.seconds * 2000 + 150_000, (scope) => runIngestCost(scope, opts, s, stream, useWrk));

async function main(): Promise<void> {
  say(`run ${runId}: ${opts.quick ? 'quick, ' : ''}${opts.sockets} sockets / ${opts.rooms} rooms / ${opts.seconds} s / ${opts.stored} stored / ${opts.idle} idle; stream ${stream}; fd limit ${fdLimit}`);
  const p = results.phases;

  if (want('e2e') || want('latency') || want('fanout') || want('ingest') || want('catchup') || want('history') || want('sockets')) {
    p.serverStart = await runPhase('server start', 60_000, async () => {
      server = await startServer();
      return { pid: server.pid, port: server.port };
    });
  }

  if (server && (want('e2e') || want('latency') || want('fanout'))) {
    const live = new Scope('live sockets');
    let fleet: WsFleet | undefined;
    p.connect = await runPhase('connect sockets', 60_000 + opts.sockets * 20, async () => {
      fleet = await WsFleet.start(live, opts.wsProcesses);
      return fleet.open(server!.wsUrl, opts.sockets, opts.rooms, true, 30_000 + opts.sockets * 10);
    });
    if (p.connect.ok && fleet) {
      const f = fleet;
      if (want('e2e')) p.endToEnd = await runPhase('1 end to end', opts.seconds * 1000 + 120_000, (scope) => runEndToEnd(scope, opts, server!, f));
      if (want('latency')) p.latency = await runPhase('2 latency', opts.latencySeconds * 2000 + 120_000, (scope) =>
          runLatency(scope, opts, server!, f, p.endToEnd?.ok ? p.endToEnd.value.acceptedPerSec : undefined),
        );
      // The same sockets, fed straight from the stream instead of through POST /message.
      if (want('fanout')) p.fanoutFromLog = await runPhase('2b fan-out from the log', opts.seconds * 5000 + 120_000, (scope) =>
          runFanoutFromLog(scope, opts, server!, f, stream),
        );
    }
    // Rooms nobody subscribes to: the cost of a message before any socket (for CPU per post and per frame).
    if (want('e2e') || want('fanout') || want('ingest')) p.ingest = await ingestPhase(server);
    await live.close();

    // The same number of sockets again, speaking ?batch=1 (as the SDK does).
    const batched = new Scope('?batch=1 sockets');
    let bFleet: WsFleet | undefined;
    p.connectBatched = await runPhase('connect ?batch=1 sockets', 60_000 + opts.sockets * 20, async () => {
      bFleet = await WsFleet.start(batched, opts.wsProcesses);
      return bFleet.open(`${server!.wsUrl}?batch=1`, opts.sockets, opts.rooms, true, 30_000 + opts.sockets * 10);
    });
    if (p.connectBatched.ok && bFleet) {
      const f = bFleet;
      if (want('fanout')) p.fanoutBatched = await runPhase('2d fan-out from the log, ?batch=1 sockets', opts.seconds * 5000 + 120_000, (scope) =>
          runFanoutFromLog(scope, opts, server!, f, stream),
        );
      if (want('e2e')) p.endToEndNative = await runPhase(`2e end to end, ${useWrk ? 'wrk' : 'JS load (wrk missing)'}, ?batch=1 sockets`, opts.seconds * 1000 + 150_000, (scope) =>
          runNativeEndToEnd(scope, opts, server!, f, useWrk, true),
        );
    }
    await batched.close();
  }

  // `--only ingest`: the cost of a post alone, without opening any socket first.
  if (server && want('ingest') && !p.ingest) {
    p.ingest = await ingestPhase(server);
  }

  if (server && want('catchup')) {
    p.catchUp = await runPhase('3 catch-up', 90_000 + opts.stored * 2, (scope) => runCatchUp(scope, opts, server!, stream));
  }

  if (server && want('history')) {
    p.history = await runPhase('3b scrollback and conversation list', 120_000 + opts.stored * 2, (scope) => runHistory(scope, opts, server!, stream));
  }

  if (server && want('sockets')) {
    p.sockets = await runPhase('4 idle sockets', 90_000 + opts.idle * 10, async (scope) => {
      // A fresh process, so that garbage of the phases before does not blur the difference.
      await stopServer();
      const s = (server = await startServer(true));
      const fleet = await WsFleet.start(scope, Math.ceil(opts.idle / opts.socketsPerProcess));
      const gc = () => s.collectGarbage();
      const r = await measureIdleSockets(scope, 'sockets', s.pid, fleet, { url: s.wsUrl, count: opts.idle, rooms: opts.rooms, settleMs: opts.quick ? 1000 : 2000, gc });
      const { sockets } = await server.checks();
      if (sockets < opts.idle) throw new Error(`the server counts ${sockets} sockets, expected ${opts.idle}`);
      return r;
    });
  }
  // The ceilings and the peer run alone on the machine.
  await stopServer();

  if (want('broker')) p.broker = await runPhase('5a broker ceiling', opts.seconds * 1000 + 90_000, (scope) => runBrokerCeilings(scope, opts, ceilingStream));
  if (want('sqlite')) p.sqlite = await runPhase('5b SQLite ceiling', 120_000, (scope) => runSqliteCeilings(scope, opts));
  if (want('http')) p.bareHttp = await runPhase('5c bare HTTP ceiling', opts.seconds * 1000 + 60_000, (scope) => runBareHttp(scope, opts));
  if (want('ws')) p.bareWs = await runPhase('5d bare ws ceiling', opts.seconds * 1000 + 90_000 + opts.sockets * 20, (scope) => runBareWs(scope, opts));
  if (want('peer')) p.peer = await runPhase('6 peer Socket.IO', opts.seconds * 1000 + 120_000 + opts.idle * 10 + opts.sockets * 20, (scope) => runPeer(scope, opts));
}

let exitCode = 0;
try {
  await main();
} catch (err) {
  results.errors.run = (err as Error)?.stack ?? String(err);
  say(`run failed: ${results.errors.run}`);
  exitCode = 1;
} finally {
  await stopServer().catch(() => {});
  await cleanup(true);
}
clearTimeout(watchdog);
finish();
process.exitCode = exitCode;

/** Writes the result file, the table (stderr) and the one summary line (stdout); once. */
function finish(): void {
  if (finished) return;
  finished = true;
  for (const [name, phase] of Object.entries(results.phases)) if (phase && !phase.ok) results.errors[name] = phase.error;
  results.finishedAt = new Date().toISOString();
  const { summary, derived } = summarise(results);
  results.summary = summary;
  results.derived = derived;
  const outDir = resolve(ROOT, opts.outDir);
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `result-${runId}.json`);
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  process.stderr.write(`\n${renderTable(results)}\n\n`);
  if (Object.keys(results.errors).length > 0) say(`errors in: ${Object.keys(results.errors).join(', ')}`);
  say(`full result: ${file}`);
  if (opts.profile) say(`server CPU profiles (written at each graceful stop): ${profileDir}`);
  const left = liveChildren();
  if (left.length > 0) say(`warning: ${left.length} child process(es) still running at the end: ${left.map((c) => c.pid).join(', ')}`);
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}
