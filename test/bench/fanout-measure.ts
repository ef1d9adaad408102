import type { Child } from './children.ts';
import { nowMs } from './clock.ts';
import { processTicks, TICK_MS } from './cpu-usage.ts';
import { drain } from './drain.ts';
import { roomName } from './records.ts';
import type { Scope } from './scope.ts';
import { perSecond } from './stats.ts';
import type { WsFleet } from './ws-fleet.ts';

export interface FanOutResult {
  sockets: number;
  rooms: number;
  messages: number;
  framesExpected: number;
  framesDelivered: number;
  /** frames received by all clients / (last frame received - start of sending) */
  deliveredFramesPerSec: number | null;
  outOfOrder: number;
  unexpectedCloses: Record<string, number>;
  /** rounds the sender waited for slow sockets */
  senderWaits: number;
  /** the server process's CPU from the start of sending to the end of the drain, percent of one core */
  serverCpuPct: number | null;
  /** frames delivered / CPU seconds the server process used meanwhile */
  framesPerServerCpuSec: number | null;
}

/** Tells a fan-out server child (bare ws or Socket.IO) to broadcast for `seconds`, and counts what the fleet received. */
export async function measureFanOut(
  scope: Scope,
  server: Child,
  fleet: WsFleet,
  o: { seconds: number; rooms: number; bodyBytes: number },
): Promise<FanOutResult> {
  await fleet.reset(true);
  const ticks0 = processTicks(server.pid);
  const t0 = nowMs();
  const sent = await server.request<{ messages: number; startAt: number; waits: number }>(
    'run',
    { seconds: o.seconds, rooms: o.rooms, bodyBytes: o.bodyBytes, maxPendingBytes: 64 * 1024 },
    o.seconds * 1000 + 30_000,
  );
  // Every round sends one message to each room, in room order.
  const perRoom: Record<string, number> = {};
  for (let r = 0; r < o.rooms; r++) perRoom[roomName(r)] = Math.floor(sent.messages / o.rooms) + (r < sent.messages % o.rooms ? 1 : 0);
  const framesExpected = fleet.expectedFrames(perRoom);
  const { stats } = await drain(fleet, undefined, { minOffset: 0, expectedFrames: framesExpected, quietMs: 2000, timeoutMs: 20_000, signal: scope.signal });
  const cpu = serverCpu(ticks0, processTicks(server.pid), nowMs() - t0, stats.frames);
  return {
    sockets: fleet.subscribed,
    rooms: o.rooms,
    messages: sent.messages,
    framesExpected,
    framesDelivered: stats.frames,
    deliveredFramesPerSec: perSecond(stats.frames, stats.lastAt - sent.startAt),
    outOfOrder: stats.outOfOrder,
    unexpectedCloses: stats.unexpectedCloses,
    senderWaits: sent.waits,
    ...cpu,
  };
}

/** CPU a server process used over `ms`: percent of one core, and frames delivered per CPU second. */
export function serverCpu(ticks0: number | undefined, ticks1: number | undefined, ms: number, frames: number): { serverCpuPct: number | null; framesPerServerCpuSec: number | null } {
  if (ticks0 === undefined || ticks1 === undefined || !(ms > 0)) return { serverCpuPct: null, framesPerServerCpuSec: null };
  const cpuMs = (ticks1 - ticks0) * TICK_MS;
  return { serverCpuPct: Math.round((cpuMs / ms) * 1000) / 10, framesPerServerCpuSec: perSecond(frames, cpuMs) };
}
