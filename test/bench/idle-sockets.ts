import { sleep } from './clock.ts';
import { openFilesLimit, steadyRss } from './memory.ts';
import { say } from './progress.ts';
import type { Scope } from './scope.ts';
import type { WsFleet } from './ws-fleet.ts';

export interface IdleSocketsResult {
  sockets: number;
  processes: number;
  connectMs: number;
  rssBeforeBytes: number;
  rssWithSocketsBytes: number;
  rssBytesPerSocket: number;
  /** Whether a full GC ran in the server before each RSS reading (see measureIdleSockets). */
  gcBeforeRss: boolean;
  /**
   * With the GC: the JavaScript heap in use after it, before and with the sockets, and the
   * difference per socket. Steadier than RSS, which partly fills pages the heap had already
   * committed (so it can read less than the heap grew) and leaves out nothing native.
   */
  heapBeforeBytes?: number;
  heapWithSocketsBytes?: number;
  heapBytesPerSocket?: number;
}

/**
 * Server RSS per idle socket: steady RSS before, open `count` subscribed sockets and let them
 * settle, steady RSS again; (after - before) / count. With `gc` (a full collection in the server)
 * each reading follows one: without it the difference holds whatever garbage opening the sockets
 * left uncollected, and run to run the figure moved from 8.8 to 16.6 KiB on the same code.
 */
export async function measureIdleSockets(
  scope: Scope,
  label: string,
  pid: number,
  fleet: WsFleet,
  o: { url: string; count: number; rooms: number; settleMs: number; gc?: () => Promise<number> },
): Promise<IdleSocketsResult> {
  const fds = openFilesLimit(pid);
  if (fds < o.count + 200) throw new Error(`the server may open only ${fds} files (ulimit -n), too few for ${o.count} sockets`);
  await sleep(o.settleMs, scope.signal);
  const heapBefore = await o.gc?.();
  const before = await steadyRss(pid, 5, 200, scope.signal);
  say(`${label}: server RSS ${mb(before)} before; opening ${o.count} sockets from ${fleet.children.length} processes`);
  const { ms } = await fleet.open(o.url, o.count, o.rooms, false, 30_000 + o.count * 10);
  await sleep(o.settleMs, scope.signal);
  const heapAfter = await o.gc?.();
  const after = await steadyRss(pid, 5, 200, scope.signal);
  const perSocket = Math.round((after - before) / o.count);
  const heap = heapBefore !== undefined && heapAfter !== undefined ? { heapBeforeBytes: heapBefore, heapWithSocketsBytes: heapAfter, heapBytesPerSocket: Math.round((heapAfter - heapBefore) / o.count) } : {};
  const heapNote = heap.heapBytesPerSocket === undefined ? '' : `; heap ${(heap.heapBytesPerSocket / 1024).toFixed(1)} KiB per socket`;
  say(`${label}: ${o.count} sockets open in ${ms} ms; server RSS ${mb(after)} (${(perSocket / 1024).toFixed(1)} KiB per socket${heapNote})`);
  return { sockets: o.count, processes: fleet.children.length, connectMs: ms, rssBeforeBytes: before, rssWithSocketsBytes: after, rssBytesPerSocket: perSocket, gcBeforeRss: o.gc !== undefined, ...heap };
}

export const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
