import http from 'node:http';
import { nowMs } from './clock.ts';

export interface StoredMessage {
  id: string;
  room: string;
  seq: number;
}

/**
 * How a reader takes in a page: `parse` (JSON.parse of all of it, the messages handed to
 * onPage), or `skim`: count the messages and parse only the fields after them, so that a reader
 * costs far less than the server it loads (as the bench's WebSocket clients count frames).
 */
export type PageReading = 'parse' | 'skim';

interface PageOptions {
  maxPages: number;
  reading?: PageReading;
  onPage?: (messages: StoredMessage[]) => void;
  signal?: AbortSignal;
}

/**
 * Pages GET /messages/since?after=...&limit=... until hasMore is false, one request at a time over
 * one keep-alive connection. Calls `onPage` with each page's messages; bounded by `maxPages`.
 */
export async function pageAll(
  base: string,
  o: PageOptions & { after: number; limit: number; room?: string },
): Promise<{ count: number; pages: number; ms: number; lastSeq: number }> {
  const r = await walk<{ next: number }>(base, o, (prev) => {
    const q = new URLSearchParams({ after: String(prev?.next ?? o.after), limit: String(o.limit) });
    if (o.room) q.set('room', o.room);
    return `/messages/since?${q}`;
  });
  return { count: r.count, pages: r.pages, ms: r.ms, lastSeq: r.last?.next ?? o.after };
}

/**
 * Pages GET /messages/before?room=...&limit=... from the newest page to the first (before=prev
 * until hasMore is false), the same way.
 */
export async function scrollAll(base: string, o: PageOptions & { room: string; limit: number }): Promise<{ count: number; pages: number; ms: number }> {
  const { count, pages, ms } = await walk<{ prev: number | null }>(base, o, (prev) => {
    const q = new URLSearchParams({ room: o.room, limit: String(o.limit) });
    if (prev?.prev != null) q.set('before', String(prev.prev));
    return `/messages/before?${q}`;
  });
  return { count, pages, ms };
}

/** A page as a reader took it in: its messages (parsed, or only counted) and the fields after them. */
type Taken<T> = { count: number; messages?: StoredMessage[]; fields: T & { hasMore: boolean } };

/** GETs the page at `path(fields of the previous page)` until one says hasMore is false. */
async function walk<T>(base: string, o: PageOptions, path: (prev: T | undefined) => string): Promise<{ count: number; pages: number; ms: number; last: T | undefined }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const url = new URL(base);
  const take = o.reading === 'skim' ? skim<T> : parse<T>;
  let last: T | undefined;
  let count = 0;
  let pages = 0;
  const t0 = nowMs();
  try {
    for (;;) {
      o.signal?.throwIfAborted();
      if (pages >= o.maxPages) throw new Error(`more than ${o.maxPages} pages`);
      const page = take(await get(agent, url, path(last)));
      pages++;
      count += page.count;
      if (page.messages) o.onPage?.(page.messages);
      last = page.fields;
      if (!page.fields.hasMore) break;
    }
    return { count, pages, ms: nowMs() - t0, last };
  } finally {
    agent.destroy();
  }
}

function parse<T>(body: Buffer): Taken<T> {
  const { messages, ...fields } = JSON.parse(body.toString()) as { messages: StoredMessage[] } & T & { hasMore: boolean };
  return { count: messages.length, messages, fields: fields as T & { hasMore: boolean } };
}

const ARRAY_END = Buffer.from('],"');
const SEQ_KEY = Buffer.from('"seq":');

/**
 * `{"messages":[...],<fields>}` without parsing the messages. Exact on valid JSON: an unescaped
 * `"` cannot stand inside a string, so `"seq":` occurs once per message (its key) and `],"` after
 * the last message's `}` only where the array ends.
 */
function skim<T>(body: Buffer): Taken<T> {
  const end = body.lastIndexOf(ARRAY_END);
  if (end < 0) throw new Error(`not a page: ${body.subarray(0, 300).toString()}`);
  return { count: countMessages(body, end), fields: JSON.parse(`{${body.subarray(end + 2).toString()}`) as T & { hasMore: boolean } };
}

/** The messages in `json[0, end)`, JSON text of messages, without parsing it: `"seq":` stands once in each (see skim). */
export function countMessages(json: Buffer, end = json.length): number {
  let count = 0;
  for (let i = json.indexOf(SEQ_KEY); i >= 0 && i < end; i = json.indexOf(SEQ_KEY, i + SEQ_KEY.length)) count++;
  return count;
}

function get(agent: http.Agent, url: URL, path: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = http.get({ agent, host: url.hostname, port: url.port, path }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        if (res.statusCode === 200) resolve(body);
        else reject(new Error(`GET ${path}: ${res.statusCode} ${body.subarray(0, 300).toString()}`));
      });
      res.on('error', reject);
    });
    req.setTimeout(30_000, () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
  });
}
