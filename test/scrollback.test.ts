import { beforeAll, describe, expect, it } from 'vitest';
import { post, storedCount, testScope, WsClient, type StoredMessage, type TestNode } from './support/harness.ts';

const scope = testScope('scrollback');
let node: TestNode;

beforeAll(async () => {
  node = await scope.startNode({}, 'sb.db');
});

type BeforePage = { messages: StoredMessage[]; prev: number | null; hasMore: boolean; head: number; epoch: string | null };

const before = async (query: string) => {
  const res = await fetch(`${node.base}/messages/before?${query}`);
  return { status: res.status, body: (await res.json()) as BeforePage & { error?: { code: string } } };
};

const fill = async (room: string, n: number) => {
  for (let i = 0; i < n; i += 100) {
    const chunk = Array.from({ length: Math.min(100, n - i) }, (_, k) => post(node.base, { room, sender: (i + k) % 3 ? 'ana' : 'bob', body: `${room} ${i + k}` }));
    for (const r of await Promise.all(chunk)) expect(r.status).toBe(202);
  }
  return storedCount(node.base, n, room);
};

describe('GET /messages/before (scrollback)', () => {
  it('pages from the newest back to the first, each message exactly once, ascending within a page', async () => {
    // other rooms interleaved, so the room's seqs are not contiguous
    const [all] = await Promise.all([fill('sb', 23), fill('sb-other', 10)]);
    const seen: number[] = [];
    let q = 'room=sb&limit=5';
    let pages = 0;
    for (;;) {
      const { status, body } = await before(q);
      expect(status).toBe(200);
      expect(body.head).toBe(all.at(-1)!.seq);
      expect(body.epoch).toEqual(expect.any(String));
      const seqs = body.messages.map((m) => m.seq);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      expect(body.prev).toBe(seqs[0]);
      if (seen.length > 0) expect(seqs.at(-1)!).toBeLessThan(seen[0]!);
      seen.unshift(...seqs);
      pages++;
      if (!body.hasMore) break;
      q = `room=sb&limit=5&before=${body.prev}`;
    }
    expect(pages).toBe(5);
    expect(seen).toEqual(all.map((m) => m.seq));
    // the pages carry the stored messages themselves
    const newest = await before('room=sb&limit=2');
    expect(newest.body.messages).toEqual(all.slice(-2));
  });

  it('defaults to the newest 50; an empty room is an empty page with head 0', async () => {
    const all = await fill('sb-big', 60);
    const { body } = await before('room=sb-big');
    expect(body.messages.map((m) => m.seq)).toEqual(all.slice(-50).map((m) => m.seq));
    expect(body.hasMore).toBe(true);
    const empty = await before('room=sb-nobody');
    expect(empty.body).toEqual({ messages: [], prev: null, hasMore: false, head: 0, epoch: expect.any(String) });
    const start = await before('room=sb-big&before=1');
    expect(start.body).toMatchObject({ messages: [], prev: null, hasMore: false });
  });

  it.each([
    ['no room', 'limit=5'],
    ['a bad room', 'room=no%20spaces'],
    ['a negative before', 'room=sb&before=-1'],
    ['a fractional before', 'room=sb&before=1.5'],
    ['limit 0', 'room=sb&limit=0'],
    ['limit over 1000', 'room=sb&limit=1001'],
    ['a repeated room', 'room=sb&room=sb'],
  ])('%s -> 400 validation_failed', async (_name, q) => {
    const { status, body } = await before(q);
    expect(status).toBe(400);
    expect(body.error!.code).toBe('validation_failed');
  });
});

describe('subscribe with last', () => {
  it('replays the last N stored messages, then live; fewer stored means all of them', async () => {
    const all = await fill('last', 8);
    const c = await WsClient.connect(node.ws);
    c.send({ type: 'subscribe', room: 'last', last: 3 });
    expect(await c.next((f) => f.type === 'subscribed')).toMatchObject({ room: 'last', head: all.at(-1)!.seq });
    await c.until(() => c.messages('last').length === 3 || undefined);
    expect(c.messages('last')).toEqual(all.slice(-3).map((m) => ({ type: 'message', ...m })));
    const r = await post(node.base, { room: 'last', sender: 'ana', body: 'live one' });
    expect(r.status).toBe(202);
    await c.until(() => c.messages('last').length === 4 || undefined);
    expect(c.messages('last')[3]!.body).toBe('live one');
    c.send({ type: 'subscribe', room: 'last-few', last: 1000 });
    await c.next((f) => f.type === 'subscribed' && f.room === 'last-few');
    c.close();
  });

  it('has no gap and no duplicate while messages arrive during the replay', async () => {
    await fill('last-race', 600);
    const c = await WsClient.connect(node.ws);
    let posted = 0;
    const posting = (async () => {
      while (posted < 100) {
        const batch = Array.from({ length: 10 }, () => post(node.base, { room: 'last-race', sender: 'bob', body: `during ${posted++}` }));
        for (const r of await Promise.all(batch)) expect(r.status).toBe(202);
      }
    })();
    c.send({ type: 'subscribe', room: 'last-race', last: 550 }); // two replay pages
    await posting;
    const all = await storedCount(node.base, 700, 'last-race');
    const sub = c.frames.find((f) => f.type === 'subscribed')!;
    await c.until(() => c.messages('last-race').at(-1)?.seq === all.at(-1)!.seq || undefined, 20_000);
    const got = c.messages('last-race').map((m) => m.seq);
    const from = all.findIndex((m) => m.seq > (sub.head as number)) ;
    const expected = all.slice(Math.max(0, (from === -1 ? all.length : from) - 550)).map((m) => m.seq);
    expect(got).toEqual(expected);
    c.close();
  }, 90_000);

  it.each([
    ['after with last', { type: 'subscribe', room: 'x', after: 1, last: 5 }],
    ['last 0', { type: 'subscribe', room: 'x', last: 0 }],
    ['last 1001', { type: 'subscribe', room: 'x', last: 1001 }],
    ['last fractional', { type: 'subscribe', room: 'x', last: 2.5 }],
    ['last a string', { type: 'subscribe', room: 'x', last: '5' }],
  ])('%s -> error frame validation_failed', async (_name, frame) => {
    const c = await WsClient.connect(node.ws);
    c.send(frame);
    expect(await c.next((f) => f.type === 'error')).toMatchObject({ code: 'validation_failed', room: 'x' });
    expect(c.frames.some((f) => f.type === 'subscribed')).toBe(false);
    c.close();
  });
});

describe('message shape (issue 8)', () => {
  it('a message posted without a key has no `key` in scrollback, exactly as in /messages/since', async () => {
    expect((await post(node.base, { room: 'sb-shape', sender: 'ana', body: 'no key' })).status).toBe(202);
    expect((await post(node.base, { room: 'sb-shape', sender: 'ana', body: 'keyed', key: 'k-1' })).status).toBe(202);
    const stored = await storedCount(node.base, 2, 'sb-shape');
    const text = await (await fetch(`${node.base}/messages/before?room=sb-shape`)).text();
    expect(text).not.toContain('"key":null');
    const page = JSON.parse(text) as BeforePage;
    expect(page.messages).toEqual(stored);
    expect(Object.keys(page.messages[0]!)).not.toContain('key');
    expect((page.messages[1] as unknown as Record<string, unknown>).key).toBe('k-1');
  });
});
