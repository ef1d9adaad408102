import http from 'node:http';
import { nowMs } from './clock.ts';

export interface StoredMessage {
  id: string;
  room: string;
  seq: number;
}

/**
 * Pages GET /messages/since?after=...&limit=... until hasMore is false, one request at a time over
 * one keep-alive connection. Calls `onPage` with each page's messages; bounded by `maxPages`.
 */
export async function pageAll(
  base: string,
  o: { after: number; limit: number; room?: string; maxPages: number; onPage?: (messages: StoredMessage[]) => void; signal?: AbortSignal },
): Promise<{ count: number; pages: number; ms: number; lastSeq: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const url = new URL(base);
  let after = o.after;
  let count = 0;
  let pages = 0;
  const t0 = nowMs();
  try {
    for (;;) {
      o.signal?.throwIfAborted();
      if (pages >= o.maxPages) throw new Error(`more than ${o.maxPages} pages`);
      const q = new URLSearchParams({ after: String(after), limit: String(o.limit) });
      if (o.room) q.set('room', o.room);
      const text = await get(agent, url, `/messages/since?${q}`);
      const page = JSON.parse(text) as { messages: StoredMessage[]; next: number; hasMore: boolean };
      pages++;
      count += page.messages.length;
      o.onPage?.(page.messages);
      after = page.next;
      if (!page.hasMore) break;
    }
    return { count, pages, ms: nowMs() - t0, lastSeq: after };
  } finally {
    agent.destroy();
  }
}

function get(agent: http.Agent, url: URL, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ agent, host: url.hostname, port: url.port, path }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        if (res.statusCode === 200) resolve(text);
        else reject(new Error(`GET ${path}: ${res.statusCode} ${text.slice(0, 300)}`));
      });
      res.on('error', reject);
    });
    req.setTimeout(30_000, () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
  });
}
