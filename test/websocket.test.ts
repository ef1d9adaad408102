import { beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { post, storedCount, testScope, WsClient, type TestNode } from './support/harness.ts';

const scope = testScope('ws');
let node: TestNode;

beforeAll(async () => {
  node = await scope.startNode({}, 'ws.db');
});

const send = async (room: string, body: string, key?: string) => {
  const res = await post(node.base, { room, sender: 'ana', body, ...(key ? { key } : {}) });
  expect(res.status).toBe(202);
  return (await res.json()) as { id: string };
};

describe('WebSocket /ws', () => {
  it('pushes live messages only to subscribers of the room, after they are stored', async () => {
    const a = await WsClient.connect(node.ws);
    const b = await WsClient.connect(node.ws);
    a.send({ type: 'subscribe', room: 'live-a' });
    b.send({ type: 'subscribe', room: 'live-b' });
    await a.next((f) => f.type === 'subscribed');
    await b.next((f) => f.type === 'subscribed');
    const { id } = await send('live-a', 'for a');
    await send('live-b', 'for b');
    const got = await a.next((f) => f.type === 'message');
    expect(got).toMatchObject({ type: 'message', id, room: 'live-a', sender: 'ana', body: 'for a' });
    expect(typeof got.seq).toBe('number');
    expect(typeof got.createdAt).toBe('string');
    await b.next((f) => f.type === 'message' && f.body === 'for b');
    // Frames arrive in order on one socket: once b has its message, a would have had b's too.
    await send('live-a', 'marker');
    await a.next((f) => f.body === 'marker');
    expect(a.messages().map((m) => m.body)).toEqual(['for a', 'marker']);
    expect(b.messages().map((m) => m.body)).toEqual(['for b']);
    // A pushed message is already readable over HTTP (persist before push).
    const page = (await (await fetch(`${node.base}/messages/since?after=${(got.seq as number) - 1}&room=live-a&limit=1`)).json()) as { messages: { id: string }[] };
    expect(page.messages[0]!.id).toBe(id);
    a.close();
    b.close();
  });

  it('answers subscribed with the room head, replays after the cursor, then goes live', async () => {
    for (let i = 0; i < 5; i++) await send('replay', `old ${i}`);
    const stored = await storedCount(node.base, 5, 'replay');
    const c = await WsClient.connect(node.ws);
    c.send({ type: 'subscribe', room: 'replay', after: stored[1]!.seq });
    const sub = await c.next((f) => f.type === 'subscribed');
    expect(sub).toEqual({ type: 'subscribed', room: 'replay', head: stored[4]!.seq, epoch: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    await c.until(() => c.messages().length === 3 || undefined);
    expect(c.messages().map((m) => m.body)).toEqual(['old 2', 'old 3', 'old 4']);
    await send('replay', 'new');
    await c.until(() => c.messages().length === 4 || undefined);
    expect(c.messages()[3]!.body).toBe('new');
    // the subscribed frame came first
    expect(c.frames[0]!.type).toBe('subscribed');
    c.close();
  });

  it('without after, only messages from now on; head of an empty room is 0', async () => {
    await send('from-now', 'before');
    const [before] = await storedCount(node.base, 1, 'from-now');
    const c = await WsClient.connect(node.ws);
    c.send({ type: 'subscribe', room: 'from-now' });
    const sub = await c.next((f) => f.type === 'subscribed');
    expect(sub.head).toBe(before!.seq);
    c.send({ type: 'subscribe', room: 'empty-room' });
    expect(await c.next((f) => f.type === 'subscribed' && f.room === 'empty-room')).toMatchObject({ head: 0 });
    await send('from-now', 'fresh');
    await c.next((f) => f.type === 'message');
    expect(c.messages().map((m) => m.body)).toEqual(['fresh']);
    c.close();
  });

  it('unsubscribe stops the pushes', async () => {
    const c = await WsClient.connect(node.ws);
    c.send({ type: 'subscribe', room: 'unsub' });
    c.send({ type: 'subscribe', room: 'unsub-marker' });
    await c.next((f) => f.type === 'subscribed' && f.room === 'unsub-marker');
    c.send({ type: 'unsubscribe', room: 'unsub' });
    expect(await c.next((f) => f.type === 'unsubscribed')).toEqual({ type: 'unsubscribed', room: 'unsub' });
    await send('unsub', 'not for me');
    await send('unsub-marker', 'marker');
    await c.next((f) => f.body === 'marker');
    expect(c.messages().map((m) => m.body)).toEqual(['marker']);
    c.close();
  });

  it('a retry with the same key (in flight together) is stored once and pushed once', async () => {
    const c = await WsClient.connect(node.ws);
    c.send({ type: 'subscribe', room: 'dup' });
    await c.next((f) => f.type === 'subscribed');
    const [a, b] = await Promise.all([send('dup', 'first', 'dup-key-1'), send('dup', 'first', 'dup-key-1')]);
    expect(a.id).toBe(b.id);
    await send('dup', 'marker');
    await c.next((f) => f.body === 'marker');
    expect(c.messages().map((m) => m.body)).toEqual(['first', 'marker']);
    const all = await storedCount(node.base, 2, 'dup');
    expect(all.map((m) => m.body)).toEqual(['first', 'marker']);
    c.close();
  });

  it.each([
    ['not JSON', 'hello', 'invalid_frame'],
    ['not an object', '[1]', 'invalid_frame'],
    ['unknown type', { type: 'dance' }, 'unknown_type'],
    ['missing type', { room: 'x' }, 'unknown_type'],
    ['bad room', { type: 'subscribe', room: 'no spaces' }, 'validation_failed'],
    ['negative after', { type: 'subscribe', room: 'ok', after: -1 }, 'validation_failed'],
    ['non-numeric after', { type: 'subscribe', room: 'ok', after: '5' }, 'validation_failed'],
    ['fractional after', { type: 'subscribe', room: 'ok', after: 1.5 }, 'validation_failed'],
  ])('a bad frame (%s) gets an error frame and the socket stays open', async (_name, frame, code) => {
    const c = await WsClient.connect(node.ws);
    c.send(frame);
    const err = await c.next((f) => f.type === 'error');
    expect(err.code).toBe(code);
    expect(typeof err.message).toBe('string');
    c.send({ type: 'ping' });
    await c.next((f) => f.type === 'pong');
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
    c.close();
  });

  it('publishes over the socket: accepted after the broker confirms, then pushed like any message', async () => {
    const c = await WsClient.connect(node.ws);
    c.send({ type: 'subscribe', room: 'ws-pub' });
    await c.next((f) => f.type === 'subscribed');
    c.send({ type: 'publish', room: 'ws-pub', sender: 'ana', body: 'over ws', key: 'ws-pub-1' });
    const accepted = await c.next((f) => f.type === 'accepted');
    expect(accepted).toMatchObject({ id: expect.any(String), key: 'ws-pub-1', room: 'ws-pub', sender: 'ana', status: 'accepted' });
    expect(await c.next((f) => f.type === 'message')).toMatchObject({ id: accepted.id, key: 'ws-pub-1', body: 'over ws' });
    // an error echoes what the frame gave to tell it apart: key, or the deprecated id
    c.send({ type: 'publish', room: 'ws-pub', body: 'no sender', key: 'ws-pub-2' });
    expect(await c.next((f) => f.type === 'error')).toMatchObject({ code: 'validation_failed', key: 'ws-pub-2' });
    const from = c.frames.length;
    c.send({ type: 'publish', room: 'ws-pub', body: 'no sender', id: 'ws-pub-3' });
    expect(await c.next((f) => f.type === 'error', 10_000, from)).toMatchObject({ code: 'validation_failed', id: 'ws-pub-3' });
    c.close();
  });

  it('a frame over the size limit closes the socket with 1009', async () => {
    const c = await WsClient.connect(node.ws);
    c.send({ type: 'subscribe', room: 'x'.repeat(64), pad: 'p'.repeat(64 * 1024) });
    expect((await c.closed).code).toBe(1009);
  });

  it('refuses upgrades on other paths', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${node.port}/elsewhere`);
    const status = await new Promise<number>((resolve) => ws.once('unexpected-response', (_req, res) => resolve(res.statusCode!)));
    expect(status).toBe(404);
  });
});
