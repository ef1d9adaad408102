import { Child } from './children.ts';
import { measureFanOut, type FanOutResult } from './fanout-measure.ts';
import { measureIdleSockets, type IdleSocketsResult } from './idle-sockets.ts';
import type { BenchOptions } from './options.ts';
import { say } from './progress.ts';
import type { Scope } from './scope.ts';
import { WsFleet } from './ws-fleet.ts';

export interface PeerResult {
  name: string;
  idle: IdleSocketsResult;
  fanOut: FanOutResult;
}

/**
 * 6. The same two measurements on Socket.IO 4: RSS per idle socket on a fresh server, then the
 * same fan-out (sockets, rooms, seconds) as the end-to-end phase.
 */
export async function runPeer(scope: Scope, opts: BenchOptions): Promise<PeerResult> {
  const server = await Child.start(scope, 'socketio-server', 'peer-socketio-server.ts');
  const { port } = await server.request<{ port: number }>('listen');
  const url = `http://127.0.0.1:${port}`;

  const idleFleet = await WsFleet.start(scope, Math.ceil(opts.idle / opts.socketsPerProcess), 'peer-socketio-clients.ts', 'socketio-idle');
  const gc = () => server.request<number>('gc');
  const idle = await measureIdleSockets(scope, 'peer', server.pid, idleFleet, { url, count: opts.idle, rooms: opts.rooms, settleMs: opts.quick ? 1000 : 2000, gc });
  await idleFleet.close();
  await Promise.all(idleFleet.children.map((c) => c.kill()));

  const fleet = await WsFleet.start(scope, opts.wsProcesses, 'peer-socketio-clients.ts', 'socketio-clients');
  await fleet.open(url, opts.sockets, opts.rooms, false, 30_000 + opts.sockets * 10);
  say(`peer: Socket.IO broadcast to ${fleet.subscribed} sockets in ${opts.rooms} rooms for ${opts.seconds} s`);
  const fanOut = await measureFanOut(scope, server, fleet, { seconds: opts.seconds, rooms: opts.rooms, bodyBytes: opts.bodyBytes });
  say(`peer: ${fanOut.framesDelivered}/${fanOut.framesExpected} frames, ${fanOut.deliveredFramesPerSec} frames/s`);
  return { name: 'socket.io', idle, fanOut };
}
