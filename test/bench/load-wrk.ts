/**
 * The native load generator: `wrk` (Debian: `apt-get install -y wrk`) with a Lua script that
 * POSTs JSON to /message, round-robin over `rooms`, and keeps the id and room of every 202 so
 * that the run can check each reached every subscriber exactly once. It costs a fraction of the
 * CPU of the JavaScript load (load-http.ts), so the figures measure the server rather than the
 * load. When wrk is missing the bench falls back to load-http.ts and says so.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { track } from './children.ts';
import { Child } from './children.ts';
import { nowMs } from './clock.ts';
import { processTicks, TICK_MS } from './cpu-usage.ts';
import type { LoadArgs, LoadResult } from './load-http.ts';
import { say } from './progress.ts';
import { roomName, SENDERS } from './records.ts';
import type { Scope } from './scope.ts';

export type LoadGenerator = 'wrk' | 'js';

let found: boolean | undefined;

/** True when `wrk` runs on this machine (checked once). */
export function wrkAvailable(): boolean {
  if (found === undefined) {
    const r = spawnSync('wrk', ['--version'], { encoding: 'utf8' });
    found = r.error === undefined;
    if (!found) say('warning: wrk is not installed (Debian: apt-get install -y wrk); using the JavaScript load, which costs more CPU than the server and blurs the figures');
  }
  return found;
}

/** What a closed-loop POST load returns, with the CPU its process used. */
export interface MeasuredLoad extends LoadResult {
  generator: LoadGenerator;
  /** CPU of the load generator's process over the load, ms */
  loadCpuMs: number | null;
}

/**
 * The Lua script: every request goes to the next room (per thread counter, threads offset), and
 * the 202 bodies' id and room are kept per thread and written by done() as "room id" lines.
 */
function script(a: { rooms: number; roomPrefix: string; bodyBytes: number; out: string; collectIds: boolean }): string {
  const pad = 'w'.repeat(Math.max(1, a.bodyBytes));
  return `
local rooms, prefix, senders = ${a.rooms}, ${JSON.stringify(a.roomPrefix)}, ${SENDERS}
local pad = ${JSON.stringify(pad)}
local threads = {}
local counter = 0
local id = 0
ids = {}
statuses = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  counter = tid * 7919
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end
function request()
  counter = counter + 1
  local room = prefix .. (counter % rooms)
  return wrk.format(nil, "/message", nil, '{"room":"' .. room .. '","sender":"bench-' .. (counter % senders) .. '","body":"' .. pad .. '"}')
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  ${a.collectIds ? `if status == 202 then
    local i, r = body:match('"id":"([^"]+)","room":"([^"]+)"')
    if i then ids[#ids + 1] = r .. " " .. i end
  end` : ''}
end
function done(summary, latency, requests)
  local f = io.open(${JSON.stringify(a.out)}, "w")
  for _, t in ipairs(threads) do
    for s, n in pairs(t:get("statuses")) do f:write("status ", s, " ", n, "\\n") end
    ${a.collectIds ? 'for _, line in ipairs(t:get("ids")) do f:write(line, "\\n") end' : ''}
  end
  f:write("latency ", latency:percentile(50) / 1000, " ", latency:percentile(99) / 1000, "\\n")
  f:write("errors ", summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, "\\n")
  f:close()
end
`;
}

/**
 * A closed-loop POST load of `seconds` with `concurrency` connections, by wrk when present, else
 * by the JavaScript load. `roomPrefix` lets a phase post to rooms nobody subscribes to.
 */
export async function runPostLoad(
  scope: Scope,
  a: Omit<LoadArgs, 'mode' | 'maxRequests'> & { roomPrefix?: string; useWrk: boolean },
): Promise<MeasuredLoad> {
  // Without a prefix: the rooms the fleet subscribes to (roomName(k)).
  const prefix = a.roomPrefix ?? roomName(0).replace(/0$/, '');
  if (!a.useWrk) {
    const load = await Child.start(scope, 'load-http', 'load-http.ts');
    const t0 = processTicks(load.pid);
    const r = await load.request<LoadResult>(
      'run',
      { ...a, mode: 'closed', maxRequests: a.seconds * 100_000, roomPrefix: prefix } satisfies LoadArgs,
      a.seconds * 1000 + 30_000,
    );
    const t1 = processTicks(load.pid);
    return { ...r, generator: 'js', loadCpuMs: t0 === undefined || t1 === undefined ? null : (t1 - t0) * TICK_MS };
  }
  const dir = mkdtempSync(join(tmpdir(), 'chat-bench-wrk-'));
  scope.defer(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'result.txt');
  writeFileSync(join(dir, 'post.lua'), script({ rooms: a.rooms, roomPrefix: prefix, bodyBytes: a.bodyBytes, out, collectIds: a.collectIds }));
  const threads = Math.min(2, a.concurrency);
  const startAt = nowMs();
  const p = spawn('wrk', [`-t${threads}`, `-c${a.concurrency}`, `-d${a.seconds}s`, '--timeout', '10s', '-s', join(dir, 'post.lua'), a.base], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  track(p);
  scope.defer(() => p.exitCode === null && p.kill('SIGKILL'));
  let ticks: number | undefined;
  // wrk's CPU is read just before it exits (its /proc entry goes with it): sample it while it runs.
  const sampler = setInterval(() => (ticks = processTicks(p.pid!) ?? ticks), 100);
  let stderr = '';
  p.stderr!.on('data', (d) => (stderr += d));
  p.stdout!.resume();
  const code = await new Promise<number | null>((resolve) => p.once('exit', (c) => resolve(c)));
  clearInterval(sampler);
  const endAt = nowMs();
  if (code !== 0) throw new Error(`wrk exited with ${code}: ${stderr.slice(-500)}`);
  const statuses: Record<string, number> = {};
  const acceptedByRoom: Record<string, string[]> = {};
  let p50 = NaN;
  let p99 = NaN;
  let errors = 0;
  for (const line of readFileSync(out, 'utf8').split('\n')) {
    if (!line) continue;
    const [head, x, y] = line.split(' ');
    if (head === 'status') statuses[x!] = (statuses[x!] ?? 0) + Number(y);
    else if (head === 'latency') [p50, p99] = [Number(x), Number(y)];
    else if (head === 'errors') errors = Number(x);
    else (acceptedByRoom[head!] ??= []).push(x!);
  }
  const sent = Object.values(statuses).reduce((s, n) => s + n, 0);
  const accepted = statuses['202'] ?? 0;
  const durationMs = endAt - startAt;
  return {
    sent,
    statuses,
    accepted,
    skipped: 0,
    errors,
    startAt,
    endAt,
    durationMs: Math.round(durationMs),
    acceptedPerSec: Math.round((accepted / durationMs) * 1000),
    // wrk reports percentiles only; the rest of the distribution is not known.
    answerMs: { count: sent, p50, p95: NaN, p99, max: NaN, mean: NaN },
    acceptedByRoom: a.collectIds ? acceptedByRoom : undefined,
    generator: 'wrk',
    loadCpuMs: ticks === undefined ? null : ticks * TICK_MS,
  };
}
