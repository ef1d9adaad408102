import { Child } from './children.ts';
import { nowMs, sleep } from './clock.ts';
import { processTicks, TICK_MS } from './cpu-usage.ts';
import type { Scope } from './scope.ts';
import type { ServerProcess } from './server-process.ts';
import { perSecond } from './stats.ts';

/** HTTP readers at once in phases 3 and 3b: a request always waiting while the server's one thread writes a page and the readers take theirs in. */
export const PAGE_READERS = 4;

export interface ConcurrentRead {
  readers: number;
  /** messages read by all readers together (each reads the whole range) */
  messages: number;
  pages: number;
  ms: number;
  /** messages / ms: the server's page throughput */
  perSec: number | null;
  /** server CPU (user + system, all its threads) per message read, microseconds, from /proc */
  serverUsPerMessage: number | null;
  /** percent of one core over the read */
  serverCpuPct: number | null;
  /** the readers' CPU together, percent of one core */
  readersCpuPct: number | null;
}

/**
 * Waits until the server has been almost idle (at most one tick of CPU) for 300 ms, or 5 s have
 * passed: what a fill left behind (the WAL checkpoint of 100,000 inserts, GC) is not counted as
 * reading pages.
 */
async function atRest(pid: number, signal: AbortSignal): Promise<void> {
  const deadline = nowMs() + 5000;
  let last = processTicks(pid);
  while (nowMs() < deadline) {
    await sleep(300, signal);
    const now = processTicks(pid);
    if (now === undefined || last === undefined || now - last <= 1) return;
    last = now;
  }
}

/**
 * Starts `readers` page-reader processes, waits for the server to be at rest, then has each read the same range at once (`cmd` with
 * `args`: see page-reader.ts) and checks each got `expected` messages. Timed from the requests to
 * the last answer; the readers' start-up is not in it.
 */
export async function readAtOnce(
  scope: Scope,
  server: ServerProcess,
  o: { readers: number; cmd: 'since' | 'before'; args: Record<string, unknown>; expected: number; timeoutMs: number },
): Promise<ConcurrentRead> {
  const children = await Promise.all(Array.from({ length: o.readers }, (_, i) => Child.start(scope, `page-reader-${i}`, 'page-reader.ts')));
  await atRest(server.pid, scope.signal);
  const ticks = () => children.reduce((sum, c) => sum + (processTicks(c.pid) ?? 0), 0);
  const server0 = processTicks(server.pid);
  const readers0 = ticks();
  const t0 = nowMs();
  const results = await Promise.all(children.map((c) => c.request<{ count: number; pages: number }>(o.cmd, { base: server.base, ...o.args }, o.timeoutMs)));
  const ms = nowMs() - t0;
  const server1 = processTicks(server.pid);
  const readersMs = (ticks() - readers0) * TICK_MS;
  await Promise.all(children.map((c) => c.kill()));
  const short = results.findIndex((r) => r.count !== o.expected);
  if (short >= 0) throw new Error(`page reader ${short} read ${results[short]!.count} messages, ${o.expected} expected`);
  const messages = results.reduce((n, r) => n + r.count, 0);
  const serverMs = server0 === undefined || server1 === undefined ? null : (server1 - server0) * TICK_MS;
  return {
    readers: o.readers,
    messages,
    pages: results.reduce((n, r) => n + r.pages, 0),
    ms: Math.round(ms),
    perSec: perSecond(messages, ms),
    serverUsPerMessage: serverMs === null || messages === 0 ? null : Math.round((serverMs * 1000 * 100) / messages) / 100,
    serverCpuPct: serverMs === null ? null : Math.round((serverMs / ms) * 100),
    readersCpuPct: Math.round((readersMs / ms) * 100),
  };
}
