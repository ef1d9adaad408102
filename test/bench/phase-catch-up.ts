import { encodeRecord } from '../../src/domain/records.ts';
import { publishWindow } from './ceilings-broker.ts';
import { Child } from './children.ts';
import { PAGE_READERS, readAtOnce, type ConcurrentRead } from './concurrent-pages.ts';
import { nowMs, waitFor } from './clock.ts';
import { pageAll } from './http-pages.ts';
import { OffsetWatch } from './offset-watch.ts';
import type { BenchOptions } from './options.ts';
import { say } from './progress.ts';
import { connectRabbit } from './rabbit.ts';
import { logRecord, REPLAY_ROOM } from './records.ts';
import type { Scope } from './scope.ts';
import type { ServerProcess } from './server-process.ts';
import { perSecond } from './stats.ts';

export interface CatchUpResult {
  stored: number;
  /** direct publishes to the server's stream, with confirms */
  fillPublishPerSec: number | null;
  /** stored / (time the server had stored them all - fill start): the node's ingest rate with a backlog */
  ingestPerSec: number | null;
  /** GET /messages/since from after=0 to the end by PAGE_READERS readers at once, each reading everything: the server's throughput */
  http: ConcurrentRead;
  /** the same by one reader in the runner, one page at a time: latency-bound (its own parsing is in the wall time) */
  httpOneReader: { messages: number; pages: number; ms: number; perSec: number | null };
  ws: { messages: number; head: number; ms: number; perSec: number | null; outOfOrder: number };
}

const FILL_WINDOW = 1000;

/** Fills one room with `stored` messages through the stream, then reads everything back over HTTP and over one WebSocket. */
export async function runCatchUp(scope: Scope, opts: BenchOptions, server: ServerProcess, stream: string): Promise<CatchUpResult> {
  const conn = await connectRabbit(opts.rabbitmqUrl, 'bench fill');
  scope.defer(() => conn.close());
  const startOffset = (await server.checks()).lastOffset;
  const watch = new OffsetWatch(server, 100);
  scope.defer(() => watch.stop());
  say(`catch-up: publishing ${opts.stored} records to room ${REPLAY_ROOM} directly on the stream`);
  const t0 = nowMs();
  const fill = await publishWindow(conn, stream, {
    concurrency: FILL_WINDOW,
    count: opts.stored,
    seconds: 600,
    record: (i) => encodeRecord(logRecord(REPLAY_ROOM, i, opts.bodyBytes)),
    signal: scope.signal,
  });
  const target = startOffset + fill.published;
  await waitFor(`the server to store offset ${target}`, () => (watch.latest >= target ? true : undefined), {
    timeoutMs: 60_000 + opts.stored,
    intervalMs: 50,
    signal: scope.signal,
  });
  const ingestPerSec = perSecond(fill.published, watch.reachedAt(target)! - t0);
  watch.stop();
  say(`catch-up: published ${fill.published} (${fill.perSec}/s), all stored by the server (${ingestPerSec}/s)`);

  const pages = await pageAll(server.base, { after: 0, limit: 1000, maxPages: Math.ceil(target / 1000) + 10, signal: scope.signal });
  const httpPerSec = perSecond(pages.count, pages.ms);
  say(`catch-up: GET /messages/since read ${pages.count} messages in ${pages.pages} pages (${httpPerSec}/s, one reader)`);
  const http = await readAtOnce(scope, server, {
    readers: PAGE_READERS,
    cmd: 'since',
    args: { after: 0, limit: 1000, maxPages: pages.pages + 10 },
    expected: pages.count,
    timeoutMs: 60_000 + opts.stored,
  });
  say(`catch-up: GET /messages/since by ${http.readers} readers at once: ${http.perSec} msg/s, ${http.serverUsPerMessage} µs server CPU per message (server ${http.serverCpuPct}%, readers ${http.readersCpuPct}% of a core)`);

  const client = await Child.start(scope, 'ws-replay', 'ws-clients.ts');
  const replayTimeout = 30_000 + opts.stored;
  const wsUrl = server.wsUrl;
  const r = await client.request<{ count: number; head: number; ms: number; outOfOrder: number }>(
    'replay',
    { url: wsUrl, room: REPLAY_ROOM, after: 0, timeoutMs: replayTimeout },
    replayTimeout + 5000,
  );
  if (r.count < fill.published) throw new Error(`WebSocket replay gave ${r.count} of ${fill.published} messages`);
  const wsPerSec = perSecond(r.count, r.ms);
  say(`catch-up: WebSocket replay of ${r.count} messages (${wsPerSec}/s)`);
  return {
    stored: fill.published,
    fillPublishPerSec: fill.perSec,
    ingestPerSec,
    http,
    httpOneReader: { messages: pages.count, pages: pages.pages, ms: Math.round(pages.ms), perSec: httpPerSec },
    ws: { messages: r.count, head: r.head, ms: Math.round(r.ms), perSec: wsPerSec, outOfOrder: r.outOfOrder },
  };
}
