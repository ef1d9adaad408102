import { readFileSync } from 'node:fs';
import { encodeRecord, readRecord, type MessageRecord } from '../../src/domain/records.ts';
import { publishWindow } from './ceilings-broker.ts';
import { PAGE_READERS, readAtOnce, type ConcurrentRead } from './concurrent-pages.ts';
import { nowMs, waitFor } from './clock.ts';
import { OffsetWatch } from './offset-watch.ts';
import type { BenchOptions } from './options.ts';
import { say } from './progress.ts';
import { connectRabbit } from './rabbit.ts';
import { bodyText, senderName } from './records.ts';
import type { Scope } from './scope.ts';
import type { ServerProcess } from './server-process.ts';
import { distribution, perSecond, type Distribution } from './stats.ts';

/** The user whose conversation list is read, and how many rooms it has. */
export const HISTORY_USER = 'bench-reader';
const CONVERSATIONS = 200;
/** Messages per conversation room: half from the reader, half from others. */
const PER_CONVERSATION = 20;
const HISTORY_ROOM = 'history';
const SCROLL_LIMIT = 50;
/** The largest page GET /messages/before serves: the scrollback throughput goal is read with it. */
const LARGE_PAGE = 1000;

export interface RequestCost {
  requests: number;
  perSec: number | null;
  latencyMs: Distribution;
  /** server CPU (user + system) per request, microseconds, from /proc */
  serverCpuUsPerRequest: number | null;
}

export interface HistoryResult {
  roomMessages: number;
  /** GET /messages/before limit=50, from the newest page to the first, one request at a time */
  scrollback: RequestCost & { pages: number; messages: number };
  /** The same with limit=1000 (the largest page), one reader */
  scrollbackLarge: RequestCost & { pages: number; messages: number; messagesPerSec: number | null };
  /** limit=1000 by PAGE_READERS readers at once, each reading the whole room: the issue's throughput figure */
  scrollbackConcurrent: ConcurrentRead;
  /** GET /rooms?user=…&limit=200 for a user in 200 rooms, one request at a time */
  rooms: RequestCost & { roomsListed: number };
}

const cpuTicks = (pid: number): number => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime (fields 14 and 15)
};

/** Times `count` sequential requests and the server's CPU spent meanwhile. */
async function measure(server: ServerProcess, count: number, request: (i: number) => Promise<void>): Promise<RequestCost> {
  const lat: number[] = [];
  const cpu0 = cpuTicks(server.pid);
  const t0 = nowMs();
  for (let i = 0; i < count; i++) {
    const s = nowMs();
    await request(i);
    lat.push(nowMs() - s);
  }
  const ms = nowMs() - t0;
  const cpuMs = (cpuTicks(server.pid) - cpu0) * 10;
  return { requests: count, perSec: perSecond(count, ms), latencyMs: distribution(lat), serverCpuUsPerRequest: count > 0 ? Math.round((cpuMs * 1000) / count) : null };
}

/**
 * Scrollback and the conversation list: one room of `stored` messages read back newest page
 * first with GET /messages/before, and GET /rooms for a user in 200 rooms (with read markers, so
 * the unread counts are real work). Records go straight onto the stream, as the catch-up fill does.
 */
export async function runHistory(scope: Scope, opts: BenchOptions, server: ServerProcess, stream: string): Promise<HistoryResult> {
  const conn = await connectRabbit(opts.rabbitmqUrl, 'bench history fill');
  scope.defer(() => conn.close());
  const startOffset = (await server.checks()).lastOffset;
  const roomMessages = opts.stored;
  const convMessages = CONVERSATIONS * PER_CONVERSATION;
  const now = Date.now();
  const record = (i: number): Buffer => {
    if (i < roomMessages) {
      const m: MessageRecord = { kind: 'message', id: `h-${now}-${i}`, room: HISTORY_ROOM, sender: senderName(i), body: bodyText(now, opts.bodyBytes), createdAt: now };
      return encodeRecord(m);
    }
    const k = i - roomMessages;
    if (k < convMessages) {
      const room = `conv-${k % CONVERSATIONS}`;
      const sender = k % 2 === 0 ? HISTORY_USER : senderName(k);
      return encodeRecord({ kind: 'message', id: `c-${now}-${k}`, room, sender, body: bodyText(now, opts.bodyBytes), createdAt: now });
    }
    // one read marker per conversation, half-way through it: ~5 unread from others each
    const c = k - convMessages;
    return encodeRecord(readRecord(HISTORY_USER, `conv-${c}`, startOffset + 1 + roomMessages + convMessages / 2));
  };
  const total = roomMessages + convMessages + CONVERSATIONS;
  say(`history: publishing ${roomMessages} messages to room ${HISTORY_ROOM} and ${convMessages} to ${CONVERSATIONS} rooms of ${HISTORY_USER}`);
  const watch = new OffsetWatch(server, 100);
  scope.defer(() => watch.stop());
  const fill = await publishWindow(conn, stream, { concurrency: 1000, count: total, seconds: 600, record, signal: scope.signal });
  const target = startOffset + fill.published;
  await waitFor(`the server to store offset ${target}`, () => (watch.latest >= target ? true : undefined), { timeoutMs: 60_000 + total, intervalMs: 50, signal: scope.signal });
  watch.stop();

  const scrollback = await scrollBack(server, roomMessages, SCROLL_LIMIT);
  say(`history: scrollback ${scrollback.pages} pages of ${SCROLL_LIMIT} (${scrollback.perSec}/s, ${scrollback.serverCpuUsPerRequest} µs server CPU per page)`);
  const scrollbackLarge = await scrollBack(server, roomMessages, LARGE_PAGE);
  say(`history: scrollback ${scrollbackLarge.pages} pages of ${LARGE_PAGE}: ${scrollbackLarge.messagesPerSec} msg/s (${scrollbackLarge.serverCpuUsPerRequest} µs server CPU per page)`);
  const scrollbackConcurrent = await readAtOnce(scope, server, {
    readers: PAGE_READERS,
    cmd: 'before',
    args: { room: HISTORY_ROOM, limit: LARGE_PAGE, maxPages: Math.ceil(roomMessages / LARGE_PAGE) + 10 },
    expected: roomMessages,
    timeoutMs: 60_000 + roomMessages,
  });
  const sc = scrollbackConcurrent;
  say(`history: scrollback by ${sc.readers} readers at once, pages of ${LARGE_PAGE}: ${sc.perSec} msg/s, ${sc.serverUsPerMessage} µs server CPU per message (server ${sc.serverCpuPct}%, readers ${sc.readersCpuPct}% of a core)`);

  let roomsListed = 0;
  const rooms = await measure(server, opts.quick ? 200 : 1000, async () => {
    const res = await fetch(`${server.base}/rooms?user=${HISTORY_USER}&limit=${CONVERSATIONS}`);
    if (res.status !== 200) throw new Error(`GET /rooms: ${res.status} ${await res.text()}`);
    roomsListed = ((await res.json()) as { rooms: unknown[] }).rooms.length;
  });
  if (roomsListed !== CONVERSATIONS) throw new Error(`GET /rooms listed ${roomsListed} rooms, expected ${CONVERSATIONS}`);
  say(`history: GET /rooms of ${CONVERSATIONS} rooms (${rooms.perSec}/s, ${rooms.serverCpuUsPerRequest} µs server CPU per request)`);
  return { roomMessages, scrollback, scrollbackLarge, scrollbackConcurrent, rooms: { ...rooms, roomsListed } };
}

/** Reads the history room from its newest page to its first, `limit` per page, one request at a time. */
async function scrollBack(server: ServerProcess, roomMessages: number, limit: number) {
  let before: number | null = null;
  let messages = 0;
  let pages = 0;
  const cost = await measure(server, Math.ceil(roomMessages / limit), async () => {
    const q = `room=${HISTORY_ROOM}&limit=${limit}${before === null ? '' : `&before=${before}`}`;
    const res = await fetch(`${server.base}/messages/before?${q}`);
    if (res.status !== 200) throw new Error(`GET /messages/before: ${res.status} ${await res.text()}`);
    const page = (await res.json()) as { messages: unknown[]; prev: number | null; hasMore: boolean };
    messages += page.messages.length;
    pages++;
    before = page.prev;
  });
  if (messages !== roomMessages) throw new Error(`scrollback read ${messages} messages, ${roomMessages} stored`);
  const messagesPerSec = cost.perSec === null ? null : Math.round((cost.perSec * messages) / pages);
  return { ...cost, pages, messages, messagesPerSec };
}
