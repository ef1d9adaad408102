import { Connection } from 'rabbitmq-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeRecord, messageRecord } from '../src/domain/records.ts';
import { post, rabbitUrl, storedCount, testScope, WsClient, type TestNode } from './support/harness.ts';

const scope = testScope('batch');
let node: TestNode;
const clients: WsClient[] = [];

beforeAll(async () => {
  node = await scope.startNode({}, 'batch.db');
});
afterAll(() => clients.forEach((c) => c.close()));

const connect = async (batched: boolean) => {
  const c = await WsClient.connect(batched ? `${node.ws}?batch=1` : node.ws);
  clients.push(c);
  return c;
};

/** History to replay, written straight into the stream (much faster than as many POSTs). */
const publishHistory = async (rooms: [string, number][]) => {
  const conn = new Connection({ url: rabbitUrl() });
  const pub = conn.createPublisher({ confirm: true });
  const sends: Promise<void>[] = [];
  for (const [room, n] of rooms) {
    for (let i = 0; i < n; i++) sends.push(pub.send({ routingKey: scope.stream, durable: true }, encodeRecord(messageRecord({ room, sender: 'raw', body: `${room} ${i}` }))));
  }
  await Promise.all(sends);
  await pub.close();
  await conn.close();
};

/** Posts `n` messages to `room`, `parallel` at a time (concurrent posts land in shared consumer batches). */
const postMany = async (room: string, n: number, tag: string, parallel = 100) => {
  for (let i = 0; i < n; i += parallel) {
    const chunk = Array.from({ length: Math.min(parallel, n - i) }, (_, j) =>
      post(node.base, { room, sender: 'ana', body: `${tag} ${i + j}` }).then((r) => expect(r.status).toBe(202)),
    );
    await Promise.all(chunk);
  }
};

const replayDone = (c: WsClient, room: string, count: number) => c.until(() => c.messages(room).length >= count || undefined, 20_000, `${count} frames of ${room}`);

describe('?batch=1', () => {
  it('delivers exactly the frames an unbatched socket gets, in the same order, each once: replay and live', async () => {
    // More than one replay page (500) in one room, and a second room.
    await publishHistory([
      ['batch-a', 520],
      ['batch-b', 30],
    ]);
    const stored = await storedCount(node.base, 550);

    const plain = await connect(false);
    const batched = await connect(true);
    // Another batched socket in room a only: it gets room a's frames of a batch as one shared message.
    const onlyA = await connect(true);
    for (const c of [plain, batched]) {
      // One room's replay at a time, so that both sockets see the same interleaving.
      c.send({ type: 'subscribe', room: 'batch-a', after: 0 });
      await replayDone(c, 'batch-a', 520);
      c.send({ type: 'subscribe', room: 'batch-b', after: 0 });
      await replayDone(c, 'batch-b', 30);
    }
    onlyA.send({ type: 'subscribe', room: 'batch-a' });
    await onlyA.next((f) => f.type === 'subscribed');

    await Promise.all([postMany('batch-a', 100, 'live a'), postMany('batch-b', 100, 'live b')]);
    for (const c of [plain, batched]) {
      await replayDone(c, 'batch-a', 620);
      await replayDone(c, 'batch-b', 130);
    }
    await replayDone(onlyA, 'batch-a', 100);

    expect(batched.frames).toEqual(plain.frames);
    expect(batched.frames.filter((f) => f.type !== 'message').map((f) => f.type)).toEqual(['subscribed', 'presence', 'subscribed', 'presence']);
    const ids = batched.messages().map((m) => m.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.length).toBe(750);
    // The replay is the stored log, in order, nothing missing.
    const byRoom = (room: string) => stored.filter((m) => m.room === room).map((m) => m.id);
    expect(batched.messages('batch-a').slice(0, 520).map((m) => m.id)).toEqual(byRoom('batch-a'));
    expect(batched.messages('batch-b').slice(0, 30).map((m) => m.id)).toEqual(byRoom('batch-b'));
    // Live: what the room-a-only socket got is exactly the live part of room a, in order.
    expect(onlyA.messages().map((m) => m.id)).toEqual(plain.messages('batch-a').slice(520).map((m) => m.id));
    // Batching happened: a replay page of 500 frames travelled as one WebSocket message.
    expect(plain.wsMessages).toBe(plain.frames.length);
    expect(batched.wsMessages).toBeLessThan(batched.frames.length - 490);
  });
});
