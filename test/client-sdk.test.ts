// The client SDK against real servers: two nodes on real RabbitMQ and SQLite, the client's socket
// through an in-test TCP proxy that sends each connection to a random node and can cut them all.
import { Connection } from 'rabbitmq-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WS from 'ws';
import { mintToken } from '../src/auth/tokens.ts';
import { ChatClient, memoryStorage, type ChatClientOptions, type ConnectionState, type Room, type WireMessage } from '../src/client/index.ts';
import { deleteStream, eventually, post, rabbitUrl, storedCount, testScope, uniqueStream, waitReady, type TestNode } from './support/harness.ts';
import { findRabbitServer, startPrivateRabbit, type PrivateRabbit } from './support/rabbit-node.ts';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.ts';

const scope = testScope('sdk');
let a: TestNode;
let b: TestNode;
let proxy: TcpProxy;
const clients: ChatClient[] = [];

function chatClient(opts: Partial<ChatClientOptions> = {}): ChatClient {
  const c = new ChatClient({
    url: `http://127.0.0.1:${proxy.port}`,
    user: 'ana',
    WebSocket: WS as never,
    backoff: { baseMs: 20, maxMs: 300 },
    ...opts,
  });
  clients.push(c);
  return c;
}

const subscribed = (room: Room) => new Promise<void>((resolve) => room.on('subscribed', () => resolve()));

/** Collects a room's messages; `ids()` in arrival order. */
function collect(room: Room) {
  const got: WireMessage[] = [];
  room.on('message', (m) => got.push(m));
  return { got, ids: () => got.map((m) => m.id) };
}

beforeAll(async () => {
  [a, b] = await Promise.all([scope.startNode({}, 'a.db'), scope.startNode({}, 'b.db')]);
  proxy = await startTcpProxy(() => (Math.random() < 0.5 ? a.port : b.port));
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await proxy?.close();
});

describe('client SDK against two real nodes', () => {
  it('reconnected at random moments to random nodes while messages flow: every message once, in order', async () => {
    const chat = chatClient();
    const room = chat.room('chaos');
    const { got, ids } = collect(room);
    const states: ConnectionState[] = [];
    let connectedNow = false;
    let onConnected: (() => void) | undefined;
    chat.on('state', (s) => {
      states.push(s);
      connectedNow = s.state === 'connected';
      if (connectedNow) onConnected?.();
    });
    const untilConnected = () => (connectedNow ? Promise.resolve() : new Promise<void>((r) => (onConnected = r)));
    await subscribed(room);

    // Each cut breaks an established connection (a cut while the client is still connecting
    // would not make it reconnect once more, and counting those made this test flaky).
    let cuts = 0;
    let cutting = true;
    const chaos = (async () => {
      while (cutting) {
        await untilConnected();
        await new Promise((r) => setTimeout(r, 20 + Math.random() * 150));
        if (!cutting) break;
        proxy.cut();
        connectedNow = false; // before the client has even seen the close: wait for its next connection
        cuts++;
      }
    })();
    // At least 150 messages, and messages flowing through at least 5 cuts however fast the posts
    // are answered (a fixed count finished within 4 cuts once POST got cheaper).
    let total = 0;
    for (let i = 0; i < 150 || cuts < 5; i += 3) {
      // three at once, to both nodes: the log interleaves them
      await Promise.all([0, 1, 2].map((k) => post([a, b][(i + k) % 2]!.base, { room: 'chaos', sender: 'bo', body: `m${i + k}` })));
      total = i + 3;
    }
    cutting = false;
    await chaos;

    const stored = await storedCount(a.base, total, 'chaos', 30_000);
    await eventually(() => (got.length >= total ? true : undefined), 30_000, `${total} messages at the client (has ${got.length})`);
    expect(ids()).toEqual(stored.map((m) => m.id));
    // and nothing more arrives later: a marker is the next and last thing seen
    const marker = await post(a.base, { room: 'chaos', sender: 'bo', body: 'marker' });
    const markerId = ((await marker.json()) as { id: string }).id;
    await eventually(() => (got.length > total ? true : undefined), 15_000, 'the marker');
    expect(ids().slice(total)).toEqual([markerId]);
    expect(cuts).toBeGreaterThanOrEqual(5);
    // the first connection, then one more after every cut
    expect(states.filter((s) => s.state === 'connected').length).toBeGreaterThanOrEqual(cuts + 1);
  }, 90_000);

  it('a client re-created with the same storage (an app restart) resumes exactly', async () => {
    const storage = memoryStorage();
    const first = chatClient({ storage });
    const r1 = first.room('restart', { last: 5 });
    const c1 = collect(r1);
    await subscribed(r1);
    for (let i = 0; i < 10; i++) await post(a.base, { room: 'restart', sender: 'bo', body: `before ${i}` });
    await eventually(() => (c1.got.length === 10 ? true : undefined), 15_000, '10 before the restart');
    await first.close();

    for (let i = 0; i < 10; i++) await post(b.base, { room: 'restart', sender: 'bo', body: `while closed ${i}` });
    const second = chatClient({ storage });
    // `last` is only for a room without a cursor: the stored cursor wins
    const r2 = second.room('restart', { last: 5 });
    const c2 = collect(r2);
    const all = await storedCount(a.base, 20, 'restart');
    await eventually(() => (c2.got.length >= 10 ? true : undefined), 15_000, '10 after the restart');
    const marker = ((await (await post(a.base, { room: 'restart', sender: 'bo', body: 'marker' })).json()) as { id: string }).id;
    await eventually(() => (c2.got.length >= 11 ? true : undefined), 15_000, 'the marker');
    expect(c1.ids()).toEqual(all.slice(0, 10).map((m) => m.id));
    expect(c2.ids()).toEqual([...all.slice(10).map((m) => m.id), marker]);
  }, 60_000);

  it('token expiry and refresh lose nothing: refreshed on the socket before exp, and after a failed refresh (4401) on a new one', async () => {
    const secret = 'sdk-test-secret-of-at-least-32-characters';
    const authed = await scope.startNode({ AUTH_SECRET: secret }, 'auth.db');
    const p = await startTcpProxy(authed.port);
    let calls = 0;
    const chat = chatClient({
      url: `http://127.0.0.1:${p.port}`,
      user: undefined,
      getToken: async () => {
        calls++;
        if (calls === 3) throw new Error('identity server hiccup'); // the second refresh fails: the server closes 4401 at exp
        return mintToken(secret, { sub: 'ana', rooms: ['tok*'], ttlSeconds: 3 });
      },
    });
    const states: ConnectionState[] = [];
    chat.on('state', (s) => states.push(s));
    const room = chat.room('tok.1');
    const { got, ids } = collect(room);
    await subscribed(room);
    const bo = { authorization: `Bearer ${await mintToken(secret, { sub: 'bo', rooms: ['*'], ttlSeconds: 600 })}` };
    let n = 0;
    // messages flow until the socket was refused once and came back
    while (!(states.some((s) => s.state === 'disconnected' && s.code === 4401) && chat.state.state === 'connected') || n < 40) {
      expect((await post(authed.base, { room: 'tok.1', body: `t${n++}` }, bo)).status).toBe(202);
      await new Promise((r) => setTimeout(r, 50));
    }
    const stored = await eventually(async () => {
      const page = (await (await fetch(`${authed.base}/messages/since?room=tok.1&after=0&limit=1000`, { headers: bo })).json()) as { messages: WireMessage[] };
      return page.messages.length >= n ? page.messages : undefined;
    }, 20_000, `${n} stored`);
    await eventually(() => (got.length >= n ? true : undefined), 20_000, `${n} messages`);
    expect(ids()).toEqual(stored.map((m) => m.id));
    expect(calls).toBeGreaterThanOrEqual(4);
    await p.close();
  }, 60_000);

  it('a reset (the stream re-created) fires `reset`; a cursor from the old log fires it too', async () => {
    const stream = uniqueStream('sdkreset');
    const node = await scope.startNode({ STREAM_NAME: stream }, 'reset.db');
    const p = await startTcpProxy(node.port);
    try {
      const storage = memoryStorage();
      const chat = chatClient({ url: `http://127.0.0.1:${p.port}`, storage });
      const room = chat.room('r');
      const { ids } = collect(room);
      let resets = 0;
      room.on('reset', () => resets++);
      await subscribed(room);
      await post(node.base, { room: 'r', sender: 'bo', body: 'old' });
      await eventually(() => (ids().length === 1 ? true : undefined));
      await chat.close();
      const oldCursor = new Map(storage.data);

      const chat2 = chatClient({ url: `http://127.0.0.1:${p.port}`, storage });
      const room2 = chat2.room('r');
      let resets2 = 0;
      room2.on('reset', () => resets2++);
      await subscribed(room2);
      const conn = new Connection({ url: rabbitUrl() });
      await conn.queueDelete({ queue: stream });
      await conn.close();
      await eventually(() => (resets2 === 1 ? true : undefined), 20_000, 'reset on 4409');
      await waitReady(node.base);
      await eventually(() => (chat2.state.state === 'connected' ? true : undefined));
      const c2 = collect(room2);
      const fresh = ((await (await post(node.base, { room: 'r', sender: 'bo', body: 'new' })).json()) as { id: string }).id;
      await eventually(() => (c2.ids().includes(fresh) ? true : undefined), 15_000, 'a message of the new log');
      expect(room2.cursor?.seq).toBe(2);

      // a client that still holds a cursor of the old log
      const chat3 = chatClient({ url: `http://127.0.0.1:${p.port}`, storage: { getItem: (k) => oldCursor.get(k) ?? null, setItem: () => {} } });
      const room3 = chat3.room('r');
      let resets3 = 0;
      let subscribed3 = 0; // the first subscribe is refused (epoch_mismatch): any `subscribed` comes after the reset
      room3.on('reset', () => resets3++);
      room3.on('subscribed', () => subscribed3++);
      const c3 = collect(room3);
      await eventually(() => (resets3 === 1 && subscribed3 === 1 ? true : undefined), 15_000, 'epoch_mismatch -> reset -> subscribed');
      const next = ((await (await post(node.base, { room: 'r', sender: 'bo', body: 'next' })).json()) as { id: string }).id;
      await eventually(() => (c3.ids().includes(next) ? true : undefined), 15_000, 'live after the reset');
      expect(c3.ids()).toEqual([next]);
      expect(resets).toBe(0);
    } finally {
      await p.close();
      // Stopped first: a running node re-creates its stream (it did, after the delete above) and it stayed on the broker.
      await node.stop();
      await deleteStream(stream);
    }
  }, 60_000);
});

describe('client SDK: history and read state against two real nodes', () => {
  const postId = async (base: string, room: string, body: string) => {
    const res = await post(base, { room, sender: 'bo', body });
    expect(res.status).toBe(202);
    return ((await res.json()) as { id: string }).id;
  };

  it('`last: N` with no stored cursor: exactly the last N at subscribe time, then live, once, in order, while posts arrive', async () => {
    for (let i = 0; i < 30; i++) await postId(a.base, 'lastn', `old ${i}`);
    await Promise.all([storedCount(a.base, 30, 'lastn'), storedCount(b.base, 30, 'lastn')]);
    let flowing = true;
    const flow = (async () => {
      let i = 0;
      while (flowing) await postId([a, b][i % 2]!.base, 'lastn', `during ${i++}`);
      return i;
    })();
    const chat = chatClient();
    const room = chat.room('lastn', { last: 10 });
    const { got, ids } = collect(room);
    const head = await new Promise<number>((resolve) => room.on('subscribed', (e) => resolve(e.head)));
    // let some live messages follow the replay, then stop and settle
    await eventually(() => (got.filter((m) => m.seq > head).length >= 3 ? true : undefined), 30_000, 'live messages after the replay');
    flowing = false;
    const during = await flow;
    const stored = await storedCount(a.base, 30 + during, 'lastn', 30_000);
    const marker = await postId(b.base, 'lastn', 'marker');
    await eventually(() => (ids().includes(marker) ? true : undefined), 20_000, 'the marker');
    // seq is the log's (shared by every room of the stream): the last 10 of this room at or below head
    const replay = stored.filter((m) => m.seq <= head).slice(-10);
    expect(replay.length).toBe(10);
    expect(ids()).toEqual([...replay, ...stored.filter((m) => m.seq > head)].map((m) => m.id).concat(marker));
    expect(room.cursor?.seq).toBe(got.at(-1)!.seq);
  }, 90_000);

  it('room.history({ before, limit }) paged back to the start covers the room exactly once, in order', async () => {
    for (let i = 0; i < 23; i++) await postId([a, b][i % 2]!.base, 'scroll', `s${i}`);
    const stored = await storedCount(b.base, 23, 'scroll');
    const chat = chatClient({ url: b.base });
    const room = chat.room('scroll');
    const pages: WireMessage[][] = [];
    let before: number | undefined;
    for (;;) {
      const page = await room.history({ before, limit: 5 });
      pages.push(page.messages);
      expect(page.head).toBe(stored.at(-1)!.seq);
      expect(page.messages.map((m) => m.seq)).toEqual([...page.messages.map((m) => m.seq)].sort((x, y) => x - y));
      if (!page.hasMore) break;
      expect(page.prev).toBe(page.messages[0]!.seq);
      before = page.prev ?? undefined;
      expect(pages.length).toBeLessThan(10);
    }
    expect(pages.map((p) => p.length)).toEqual([5, 5, 5, 5, 3]);
    expect(pages.reverse().flat().map((m) => m.id)).toEqual(stored.map((m) => m.id));
  }, 60_000);

  it('markRead on one node reaches the same user on the other node as `read`; GET /rooms (chat.conversations) shows lastRead and unread', async () => {
    const bodies: string[] = [];
    const onA = chatClient({
      url: a.base,
      fetch: (url, init) => {
        if (init?.method === 'POST') bodies.push(String(init.body));
        return fetch(url, init as RequestInit);
      },
    });
    const onB = chatClient({ url: b.base });
    const ra = onA.room('rd');
    const rb = onB.room('rd');
    const reads: number[] = [];
    rb.on('read', (e) => reads.push(e.seq));
    await Promise.all([subscribed(ra), subscribed(rb)]);
    const cb = collect(rb);
    for (let i = 0; i < 5; i++) await postId([a, b][i % 2]!.base, 'rd', `r${i}`);
    // ana's own message (sent through the SDK, with a key) never counts as unread
    const mine = await ra.send('from ana');
    expect(mine.key).toMatch(/^[A-Za-z0-9_-]{1,64}$/);
    expect(bodies.map((b) => Object.keys(JSON.parse(b) as object).sort())).toEqual([['body', 'key', 'room', 'sender']]);
    await eventually(() => (cb.got.length === 6 ? true : undefined), 20_000, '6 messages on b');
    expect(cb.ids()).toContain(mine.id);
    const before = await onB.conversations({ rooms: ['rd'] });
    const seqs = cb.got.map((m) => m.seq);
    expect(before.rooms.map((r) => [r.room, r.head, r.lastRead, r.unread])).toEqual([['rd', seqs[5], 0, 5]]);

    const third = seqs[2]!;
    ra.markRead(third);
    await eventually(() => (reads.includes(third) ? true : undefined), 20_000, '`read` on the other node');
    expect(reads).toEqual([third]);
    const afterB = await onB.conversations({ rooms: ['rd'] });
    expect(afterB.rooms.map((r) => [r.room, r.lastRead, r.unread])).toEqual([['rd', third, 2]]);
    const afterA = await eventually(async () => {
      const page = await onA.conversations();
      const rd = page.rooms.find((r) => r.room === 'rd');
      return rd?.lastRead === third ? rd : undefined;
    }, 20_000, 'the marker on node a');
    expect([afterA.lastMessage?.id, afterA.unread]).toEqual([mine.id, 2]);

    // never backwards: a lower mark from the other device changes nothing
    rb.markRead(seqs[1]!);
    rb.markRead(seqs[5]!);
    await eventually(() => (reads.includes(seqs[5]!) ? true : undefined), 20_000, 'the newest `read`');
    expect(reads).toEqual([third, seqs[5]]);
    const done = await eventually(async () => {
      const rd = (await onA.conversations({ rooms: ['rd'] })).rooms[0];
      return rd?.lastRead === seqs[5] ? rd : undefined;
    }, 20_000, 'the newest marker on node a');
    expect(done.unread).toBe(0);
  }, 60_000);
});

// A broker of this test's own, so stopping it disturbs nothing else.
describe.skipIf(!findRabbitServer())('client SDK while the broker is down', () => {
  let rabbit: PrivateRabbit | undefined;
  afterAll(async () => {
    await rabbit?.destroy();
  });

  it('send() during a broker outage resolves after recovery, with exactly one stored message', async () => {
    rabbit = await startPrivateRabbit();
    const stream = uniqueStream('sdkoutage');
    const node = await scope.startNode({ RABBITMQ_URL: rabbit.url, STREAM_NAME: stream, PUBLISH_TIMEOUT_MS: '1000' }, 'outage.db');
    await waitReady(node.base, 60_000);
    let posts = 0;
    const answers: string[] = []; // what each POST got: said if the retries below never come
    const chat = chatClient({
      url: node.base,
      fetch: async (url, init) => {
        if (init?.method !== 'POST') return fetch(url, init as RequestInit);
        posts++;
        const t0 = Date.now();
        try {
          const res = await fetch(url, init as RequestInit);
          answers.push(`${res.status} after ${Date.now() - t0} ms`);
          return res;
        } catch (err) {
          answers.push(`${(err as Error).message} after ${Date.now() - t0} ms`);
          throw err;
        }
      },
    });
    const room = chat.room('outage');
    await subscribed(room);
    const { ids } = collect(room);

    await rabbit.stop();
    const sending = room.send('sent while the broker was down');
    let settled = false;
    void sending.finally(() => (settled = true)).catch(() => {});
    await eventually(() => (posts >= 3 ? true : undefined), 30_000, 'retries during the outage').catch((err: Error) => {
      throw new Error(`${err.message}: ${posts} POSTs, answers ${JSON.stringify(answers)}, state ${JSON.stringify(chat.state)}`);
    });
    expect(settled).toBe(false);

    await rabbit.start();
    const accepted = await sending;
    await eventually(() => (ids().includes(accepted.id) ? true : undefined), 60_000, 'the message on the socket after recovery');
    const stored = (await (await fetch(`${node.base}/messages/since?room=outage&after=0`)).json()) as { messages: WireMessage[] };
    expect(stored.messages.map((m) => [m.id, m.body])).toEqual([[accepted.id, 'sent while the broker was down']]);
    expect(ids()).toEqual([accepted.id]);
    await chat.close();
  }, 180_000);
});
