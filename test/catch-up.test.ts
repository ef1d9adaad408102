import { beforeAll, describe, expect, it } from 'vitest';
import { post, readAll, storedCount, testScope, WsClient, type StoredMessage, type TestNode } from './support/harness.ts';

const scope = testScope('catchup');
let node: TestNode;

beforeAll(async () => {
  node = await scope.startNode({}, 'c.db');
});

/** Posts `count` messages with `concurrency` requests in flight; returns the accepted ids in order of acceptance. */
async function postMany(room: string | ((i: number) => string), count: number, prefix: string, concurrency = 16): Promise<string[]> {
  const ids: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const res = await post(node.base, { room: typeof room === 'string' ? room : room(i), sender: 'load', body: `${prefix} ${i}`, key: `${prefix}-${i}` });
      expect(res.status).toBe(202);
      ids.push(((await res.json()) as { id: string }).id);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return ids;
}

const assertExactlyOnceAscending = (got: StoredMessage[], expected: StoredMessage[]) => {
  const seqs = got.map((m) => m.seq);
  for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1]!);
  expect(new Set(got.map((m) => m.id)).size).toBe(got.length);
  expect(got.map((m) => m.id)).toEqual(expected.map((m) => m.id));
};

describe('catch-up', () => {
  it('HTTP paging with after=next returns every message exactly once, per room and across rooms', async () => {
    const rooms = ['p1', 'p2', 'p3'];
    const ids = await postMany((i) => rooms[i % 3]!, 450, 'page');
    const all = await storedCount(node.base, 450, undefined);
    const mine = all.filter((m) => m.key?.startsWith('page-'));
    expect(new Set(mine.map((m) => m.id))).toEqual(new Set(ids));
    for (const limit of [1, 7, 100, 1000]) {
      const paged = await readAll(node.base, { limit });
      assertExactlyOnceAscending(paged, all);
    }
    for (const room of rooms) {
      const paged = await readAll(node.base, { room, limit: 13 });
      expect(paged).toHaveLength(150);
      assertExactlyOnceAscending(paged, all.filter((m) => m.room === room));
    }
  }, 90_000); // 450 POSTs: ~15 s on a quiet machine, 20-30 s on the shared 2-core one

  it('since is inclusive at the boundary and accepts ISO 8601 and epoch ms', async () => {
    const before = await readAll(node.base, { room: 'since' });
    expect(before).toHaveLength(0);
    await postMany('since', 5, 'since', 1);
    const all = await storedCount(node.base, 5, 'since');
    const pivot = all[2]!;
    const ms = Date.parse(pivot.createdAt);
    for (const since of [String(ms), pivot.createdAt, new Date(ms).toISOString().replace('Z', '+00:00')]) {
      const res = await fetch(`${node.base}/messages/since?room=since&since=${encodeURIComponent(since)}`);
      expect(res.status).toBe(200);
      const page = (await res.json()) as { messages: StoredMessage[]; next: number; hasMore: boolean };
      const expected = all.filter((m) => Date.parse(m.createdAt) >= ms);
      expect(page.messages.map((m) => m.id)).toEqual(expected.map((m) => m.id));
      expect(page.messages[0]!.id).toBe(all.find((m) => Date.parse(m.createdAt) >= ms)!.id);
      expect(page.next).toBe(all[4]!.seq);
      expect(page.hasMore).toBe(false);
    }
    const head = (await readAll(node.base)).at(-1)!.seq; // the node's latest seq, any room
    const later = (await (await fetch(`${node.base}/messages/since?room=since&since=${ms + 3_600_000}`)).json()) as { messages: unknown[]; next: number };
    expect(later.messages).toEqual([]);
    // nothing newer: next is the node's head, a cursor that resumes exactly at what comes next
    // (past the head it would skip messages, before it would repeat them)
    expect(later.next).toBe(head);
    await postMany('since', 1, 'since-later', 1);
    const [newer] = await storedCount(node.base, 6, 'since').then((msgs) => msgs.slice(5));
    const resumed = (await (await fetch(`${node.base}/messages/since?room=since&after=${later.next}`)).json()) as { messages: StoredMessage[] };
    expect(resumed.messages.map((m) => m.id)).toEqual([newer!.id]);
  });

  it('a WebSocket resume under concurrent load gets every message once, in order, no gap', async () => {
    const room = 'resume';
    await postMany(room, 1200, 'pre'); // more than two replay pages
    const stored = await storedCount(node.base, 1200, room);
    const cursor = stored[99]!.seq;

    // Load keeps arriving while the replay runs.
    const load = postMany(room, 600, 'during', 8);
    const fromCursor = await WsClient.connect(node.ws);
    const fromStart = await WsClient.connect(node.ws);
    fromCursor.send({ type: 'subscribe', room, after: cursor });
    fromStart.send({ type: 'subscribe', room, after: 0 });
    await load;

    const all = await storedCount(node.base, 1800, room);
    const expectedFromCursor = all.filter((m) => m.seq > cursor);
    await fromCursor.until(() => fromCursor.messages().length >= expectedFromCursor.length || undefined, 20_000, 'replay + live from cursor');
    await fromStart.until(() => fromStart.messages().length >= all.length || undefined, 20_000, 'replay + live from 0');
    // one more live message proves nothing extra was queued behind
    await post(node.base, { room, sender: 'load', body: 'last', key: 'resume-last' });
    await fromCursor.next((f) => f.key === 'resume-last');
    await fromStart.next((f) => f.key === 'resume-last');
    const final = await readAll(node.base, { room });
    assertExactlyOnceAscending(fromCursor.messages(), final.filter((m) => m.seq > cursor));
    assertExactlyOnceAscending(fromStart.messages(), final);
    fromCursor.close();
    fromStart.close();
  }, 90_000); // 1200 POSTs plus the replay
});
