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
}

/**
 * Server RSS per idle socket: steady RSS before, open `count` subscribed sockets and let them
 * settle, steady RSS again; (after - before) / count.
 */
export async function measureIdleSockets(
  scope: Scope,
  label: string,
  pid: number,
  fleet: WsFleet,
  o: { url: string; count: number; rooms: number; settleMs: number },
): Promise<IdleSocketsResult> {
  const fds = openFilesLimit(pid);
  if (fds < o.count + 200) throw new Error(`the server may open only ${fds} files (ulimit -n), too few for ${o.count} sockets`);
  await sleep(o.settleMs, scope.signal);
  const before = await steadyRss(pid, 5, 200, scope.signal);
  say(`${label}: server RSS ${mb(before)} before; opening ${o.count} sockets from ${fleet.children.length} processes`);
  const { ms } = await fleet.open(o.url, o.count, o.rooms, false, 30_000 + o.count * 10);
  await sleep(o.settleMs, scope.signal);
  const after = await steadyRss(pid, 5, 200, scope.signal);
  const perSocket = Math.round((after - before) / o.count);
  say(`${label}: ${o.count} sockets open in ${ms} ms; server RSS ${mb(after)} (${(perSocket / 1024).toFixed(1)} KiB per socket)`);
  return { sockets: o.count, processes: fleet.children.length, connectMs: ms, rssBeforeBytes: before, rssWithSocketsBytes: after, rssBytesPerSocket: perSocket };
}

export const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
