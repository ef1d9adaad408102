import { Child } from './children.ts';
import { measureFanOut, type FanOutResult } from './fanout-measure.ts';
import type { LoadResult } from './load-http.ts';
import type { BenchOptions } from './options.ts';
import { say } from './progress.ts';
import type { Scope } from './scope.ts';
import { WsFleet } from './ws-fleet.ts';

export interface BareHttpCeiling {
  load: Omit<LoadResult, 'acceptedByRoom'>;
  perSec: number;
}

/** (c) A bare Hono POST handler (parse JSON, 202), loaded exactly like the end-to-end phase. */
export async function runBareHttp(scope: Scope, opts: BenchOptions): Promise<BareHttpCeiling> {
  const server = await Child.start(scope, 'bare-http-server', 'bare-http-server.ts');
  const { port } = await server.request<{ port: number }>('listen');
  const load = await Child.start(scope, 'load-http', 'load-http.ts');
  say(`http: bare Hono handler, ${opts.concurrency} POSTs in flight for ${opts.seconds} s`);
  const { acceptedByRoom: _ignored, ...result } = await load.request<LoadResult>(
    'run',
    {
      base: `http://127.0.0.1:${port}`,
      mode: 'closed',
      seconds: opts.seconds,
      concurrency: opts.concurrency,
      rooms: opts.rooms,
      bodyBytes: opts.bodyBytes,
      maxRequests: opts.seconds * 1_000_000,
      collectIds: false,
    },
    opts.seconds * 1000 + 30_000,
  );
  say(`http: ${result.acceptedPerSec}/s`);
  return { load: result, perSec: result.acceptedPerSec };
}

/** (d) A bare `ws` server broadcasting pre-serialised frames to the same sockets and rooms as the end-to-end phase. */
export async function runBareWs(scope: Scope, opts: BenchOptions): Promise<FanOutResult> {
  const server = await Child.start(scope, 'bare-ws-server', 'bare-ws-server.ts');
  const { port } = await server.request<{ port: number }>('listen');
  const fleet = await WsFleet.start(scope, opts.wsProcesses);
  await fleet.open(`ws://127.0.0.1:${port}/ws`, opts.sockets, opts.rooms, false, 30_000 + opts.sockets * 10);
  say(`ws: bare ws broadcast to ${fleet.subscribed} sockets in ${opts.rooms} rooms for ${opts.seconds} s`);
  const r = await measureFanOut(scope, server, fleet, { seconds: opts.seconds, rooms: opts.rooms, bodyBytes: opts.bodyBytes });
  say(`ws: ${r.framesDelivered}/${r.framesExpected} frames, ${r.deliveredFramesPerSec} frames/s`);
  return r;
}
