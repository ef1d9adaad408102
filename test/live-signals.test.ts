import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintToken } from '../src/auth/tokens.ts';
import { brokerProbe, listBindings } from './support/broker-objects.ts';
import { eventually, post, rabbitUrl, readAll, testScope, WsClient, type TestNode } from './support/harness.ts';

// Two nodes on one stream; typing and presence must cross between them without touching the log.
const scope = testScope('signals');
const exchange = `${scope.stream}.signals`;
let a: TestNode;
let b: TestNode;
let probe: Awaited<ReturnType<typeof brokerProbe>>;
const clients: WsClient[] = [];

beforeAll(async () => {
  [a, b] = await Promise.all([scope.startNode({}, 'a.db'), scope.startNode({}, 'b.db')]);
  probe = await brokerProbe(rabbitUrl());
});
afterAll(async () => {
  for (const c of clients) c.close();
  await probe?.close();
});

type Frame = Record<string, unknown> & { type: string };

async function connect(node: TestNode, user?: string, headers?: Record<string, string>): Promise<WsClient> {
  const c = await WsClient.connect(user === undefined ? node.ws : `${node.ws}?user=${encodeURIComponent(user)}`, { headers });
  clients.push(c);
  return c;
}

/** Subscribes and returns the `presence` frame that must follow `subscribed` right away. */
async function subscribe(c: WsClient, room: string): Promise<Frame> {
  const from = c.frames.length;
  c.send({ type: 'subscribe', room });
  const subscribed = await c.next((f) => f.type === 'subscribed' && f.room === room, 10_000, from);
  const i = c.frames.indexOf(subscribed);
  const presence = c.frames[i + 1] ?? (await c.next((_f) => c.frames.length > i + 1, 10_000, i + 1));
  expect(presence).toMatchObject({ type: 'presence', room });
  return presence;
}

/** Resolves once everything the server sent this client before now has arrived (a ping's pong follows it). */
async function drained(c: WsClient): Promise<void> {
  const from = c.frames.length;
  c.send({ type: 'ping' });
  await c.next((f) => f.type === 'pong', 10_000, from);
}

const typings = (c: WsClient, room: string) => c.frames.filter((f) => f.type === 'typing' && f.room === room);
const presenceOf = async (node: TestNode, room: string) => {
  const res = await fetch(`${node.base}/rooms/${room}/presence`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { users: string[] }).users.sort();
};

describe('typing across nodes', () => {
  it('reaches a subscriber on the other node within 500 ms, never the sender, and stores nothing', async () => {
    const room = 'typing-1';
    const anaA = await connect(a, 'ana');
    const anaA2 = await connect(a, 'ana'); // the sender's other device
    const carlA = await connect(a, 'carl');
    const bobB = await connect(b, 'bob');
    for (const c of [anaA, anaA2, carlA, bobB]) await subscribe(c, room);

    const first = await post(a.base, { room, sender: 'ana', body: 'before' });
    expect(first.status).toBe(202);
    const [before] = await eventually(async () => {
      const [onA, onB] = await Promise.all([readAll(a.base, { room }), readAll(b.base, { room })]);
      return onA.length === 1 && onB.length === 1 ? onA : undefined;
    });

    const sentAt = Date.now();
    anaA.send({ type: 'typing', room });
    expect(await bobB.next((f) => f.type === 'typing')).toEqual({ type: 'typing', room, user: 'ana' });
    expect(Date.now() - sentAt).toBeLessThan(500);
    expect(await carlA.next((f) => f.type === 'typing')).toEqual({ type: 'typing', room, user: 'ana' });
    await Promise.all([drained(anaA), drained(anaA2)]);
    expect(typings(anaA, room)).toEqual([]);
    expect(typings(anaA2, room)).toEqual([]);

    // Nothing entered the log: the next message's seq follows the previous one's offset directly,
    // and both databases hold exactly the two messages.
    expect((await post(b.base, { room, sender: 'bob', body: 'after' })).status).toBe(202);
    const stored = await eventually(async () => {
      const [onA, onB] = await Promise.all([readAll(a.base), readAll(b.base)]);
      return onA.length === 2 && onB.length === 2 ? [onA, onB] : undefined;
    });
    expect(stored[0]).toEqual(stored[1]);
    expect(stored[0]!.map((m) => m.body)).toEqual(['before', 'after']);
    expect(stored[0]![1]!.seq).toBe(before!.seq + 1);
  });

  it('relays at most one typing per user and room every 2 s', async () => {
    const room = 'typing-throttle';
    const ana = await connect(a, 'ana');
    const bob = await connect(b, 'bob');
    await subscribe(ana, room);
    await subscribe(bob, room);
    for (let i = 0; i < 5; i++) ana.send({ type: 'typing', room });
    const firstAt = (await bob.next((f) => f.type === 'typing'), Date.now());
    await drained(ana);
    // The other node relays nothing more than what reached it: one round trip later, still one.
    const bob2 = await connect(b, 'dora');
    await subscribe(bob2, room);
    await drained(bob);
    expect(typings(bob, room)).toHaveLength(1);
    // Keep typing: the next one is relayed only once 2 s have passed since the first.
    const keep = setInterval(() => ana.send({ type: 'typing', room }), 100);
    try {
      await bob.until(() => typings(bob, room).length >= 2 || undefined, 10_000, 'a second typing');
    } finally {
      clearInterval(keep);
    }
    expect(Date.now() - firstAt).toBeGreaterThanOrEqual(1900);
  });
});

describe('presence across nodes', () => {
  it('is complete right after subscribed, then join/leave follow the first and last socket anywhere', async () => {
    const room = 'presence-1';
    const ana = await connect(a, 'ana');
    expect((await subscribe(ana, room)).users).toEqual(['ana']);

    // b has no subscriber of the room yet: it asks a before answering bob.
    const bob = await connect(b, 'bob');
    expect(((await subscribe(bob, room)).users as string[]).sort()).toEqual(['ana', 'bob']);
    expect(await ana.next((f) => f.type === 'join')).toEqual({ type: 'join', room, user: 'bob' });
    expect(await presenceOf(a, room)).toEqual(['ana', 'bob']);
    expect(await presenceOf(b, room)).toEqual(['ana', 'bob']);

    // A second socket of a present user is no news; its leaving while another stays is none either.
    const bob2 = await connect(a, 'bob');
    await subscribe(bob2, room);
    bob2.close();
    await bob2.closed;
    bob.send({ type: 'unsubscribe', room });
    expect(await ana.next((f) => f.type === 'leave')).toEqual({ type: 'leave', room, user: 'bob' });
    expect(ana.frames.filter((f) => f.type === 'join' || f.type === 'leave')).toEqual([
      { type: 'join', room, user: 'bob' },
      { type: 'leave', room, user: 'bob' },
    ]);
    expect(await presenceOf(b, room)).toEqual(['ana']);
  });

  it('GET /rooms/{room}/presence asks the other nodes about a room this node does not serve', async () => {
    const room = 'presence-remote';
    const eve = await connect(b, 'eve');
    await subscribe(eve, room);
    expect(await presenceOf(a, room)).toEqual(['eve']);
    expect(await presenceOf(a, 'nobody-here')).toEqual([]);
    const bad = await fetch(`${a.base}/rooms/${encodeURIComponent('no spaces')}/presence`);
    expect(bad.status).toBe(400);
  });

  it('an anonymous socket receives presence but neither appears in it nor may type', async () => {
    const room = 'presence-anon';
    const anon = await connect(a);
    expect((await subscribe(anon, room)).users).toEqual([]);
    anon.send({ type: 'typing', room });
    expect(await anon.next((f) => f.type === 'error')).toMatchObject({ type: 'error', code: 'validation_failed', field: 'user' });
    const ana = await connect(b, 'ana');
    expect((await subscribe(ana, room)).users).toEqual(['ana']);
    expect(await anon.next((f) => f.type === 'join')).toEqual({ type: 'join', room, user: 'ana' });
    // typing to a room the socket is not subscribed to
    ana.send({ type: 'typing', room: 'elsewhere' });
    expect(await ana.next((f) => f.type === 'error')).toMatchObject({ code: 'not_subscribed', room: 'elsewhere' });
  });
});

describe('broker objects', () => {
  it('a room is bound while the node has a local subscriber, and unbound when the last leaves', async () => {
    const room = 'bind-1';
    const routes = () => probe.routes(exchange, room);
    expect(await routes()).toBe(false);
    const one = await connect(a, 'ana');
    const two = await connect(a);
    await subscribe(one, room);
    await subscribe(two, room);
    expect(await routes()).toBe(true);
    const listed = listBindings(exchange);
    if (listed) {
      // The broker's own listing: this room bound to one queue, and that queue is a's.
      const queues = listed.filter((x) => x.key === room).map((x) => x.queue);
      expect(queues).toHaveLength(1);
      expect(listed.filter((x) => x.key === '~nodes').map((x) => x.queue)).toContain(queues[0]);
    }
    one.send({ type: 'unsubscribe', room });
    await one.next((f) => f.type === 'unsubscribed');
    await drained(two);
    expect(await routes()).toBe(true); // one subscriber left
    two.close();
    await eventually(async () => ((await routes()) ? undefined : true), 10_000, 'the binding to go');
  });

  it("a stopped node's queue disappears from the broker", async () => {
    const c = await scope.startNode({}, 'c.db');
    const ws = await connect(c, 'cid');
    await subscribe(ws, 'bind-stop');
    const listed = listBindings(exchange);
    if (!listed) return console.warn('rabbitmqctl cannot reach the broker: queue check skipped');
    const queue = listed.find((x) => x.key === 'bind-stop')?.queue;
    expect(queue).toMatch(/^amq\.gen-/);
    expect(await probe.queueExists(queue!)).toBe(true);
    await c.stop();
    expect(await probe.queueExists(queue!)).toBe(false);
    expect(await probe.routes(exchange, 'bind-stop')).toBe(false);
  });
});

describe('access', () => {
  const SECRET = 'signals-secret-0123456789-0123456789';
  let t: TestNode;
  beforeAll(async () => {
    t = await scope.startNode({ AUTH_SECRET: SECRET }, 't.db');
  });

  it('forbidden rooms refuse typing and presence; allowed ones work with the token sub', async () => {
    const token = await mintToken(SECRET, { sub: 'tess', rooms: ['team-*'], ttlSeconds: 600 });
    const auth = { authorization: `Bearer ${token}` };
    const c = await connect(t, undefined, auth);
    expect((await subscribe(c, 'team-1')).users).toEqual(['tess']);
    c.send({ type: 'typing', room: 'secret' });
    expect(await c.next((f) => f.type === 'error')).toMatchObject({ code: 'forbidden', room: 'secret' });
    const res = await fetch(`${t.base}/rooms/secret/presence`, { headers: auth });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('forbidden');
    expect((await fetch(`${t.base}/rooms/team-1/presence`)).status).toBe(401);
    const ok = await fetch(`${t.base}/rooms/team-1/presence`, { headers: auth });
    expect(await ok.json()).toEqual({ room: 'team-1', users: ['tess'] });
  });
});
