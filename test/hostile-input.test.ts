import { connect } from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { eventually, post, readyz, storedCount, testScope, WsClient, type TestNode } from './support/harness.ts';

const scope = testScope('hostile');
let node: TestNode;

beforeAll(async () => {
  node = await scope.startNode({}, 'h.db');
});

const errorOf = async (res: Response) => ((await res.json()) as { error: { code: string; message: string } }).error;

const HOSTILE_POSTS: [string, unknown, number, string][] = [
    ['an extra huge field', { room: 'r', sender: 'a', body: 'b', junk: 'x'.repeat(200_000) }, 413, 'too_large'],
    ['a huge room', { room: 'r'.repeat(100_000), sender: 'a', body: 'b' }, 413, 'too_large'],
    ['a nested object as body', { room: 'r', sender: 'a', body: { nested: true } }, 400, 'validation_failed'],
    ['null fields', { room: null, sender: null, body: null }, 400, 'validation_failed'],
    ['a number as JSON', '42', 400, 'validation_failed'],
    ['an empty body', '', 400, 'invalid_json'],
    ['a sender with C1 control', { room: 'r', sender: 'a\u0085b', body: 'b' }, 400, 'validation_failed'],
    ['a room with unicode', { room: 'général', sender: 'a', body: 'b' }, 400, 'validation_failed'],
];

describe('hostile HTTP input (beyond the contract errors in http-errors.test.ts)', () => {
  it.each(HOSTILE_POSTS)('POST with %s -> %s %s', async (_name, body, status, code) => {
    const res = await post(node.base, body);
    expect(res.status).toBe(status);
    const err = await errorOf(res);
    expect(err.code).toBe(code);
    expect(err.message).toMatch(/\w{3}/);
  });

  it.each([
    ['since in the future (epoch µs)', `since=${Date.now() * 1000}`, 400],
    ['since an hour and more ahead', `since=${encodeURIComponent(new Date(Date.now() + 2 * 3600_000).toISOString())}`, 400],
    ['since on a day that does not exist', 'since=2026-02-30', 400],
    ['after beyond a safe integer', 'after=99999999999999999', 400],
    ['after with a plus sign', 'after=%2B5', 400],
    ['after with leading zeros', 'after=007', 400],
    ['limit negative', 'after=0&limit=-1', 400],
    ['an unknown epoch format', 'after=0&epoch=not%20an%20epoch', 400],
  ])('GET with %s -> %s', async (_name, query, status) => {
    const res = await fetch(`${node.base}/messages/since?${query}`);
    expect(res.status).toBe(status);
    expect((await errorOf(res)).code).toBe('validation_failed');
  });

  it('a cursor beyond the head is answered with an empty page that keeps the cursor (it may come from a node further ahead)', async () => {
    const res = await fetch(`${node.base}/messages/since?after=1000000`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ messages: [], next: 1000000, hasMore: false });
  });

  it('a date alone is a valid since', async () => {
    const res = await fetch(`${node.base}/messages/since?since=2020-01-01`);
    expect(res.status).toBe(200);
  });
});

describe('hostile WebSocket input', () => {
  it('invalid UTF-8 in a text frame closes with 1007', async () => {
    // ws refuses to send invalid UTF-8 as text, so write the frame by hand on a raw socket.
    const c = await WsClient.connect(node.ws);
    const sock = (c.ws as unknown as { _socket: import('node:net').Socket })._socket;
    const payload = Buffer.from([0x7b, 0xff, 0xfe, 0x7d]);
    const mask = Buffer.from([1, 2, 3, 4]);
    const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
    sock.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]));
    expect((await c.closed).code).toBe(1007);
  });

  it('a subscribe storm is bounded by the subscription limit, and the socket stays usable', async () => {
    const c = await WsClient.connect(node.ws);
    for (let i = 0; i < 150; i++) c.send({ type: 'subscribe', room: `storm-${i}` });
    // Each subscribe is answered by `subscribed` (then `presence`) or by an error.
    await c.until(() => c.frames.filter((f) => f.type !== 'presence').length >= 150 || undefined);
    expect(c.frames.filter((f) => f.type === 'subscribed')).toHaveLength(100);
    expect(c.frames.filter((f) => f.type === 'error' && f.code === 'too_many_subscriptions')).toHaveLength(50);
    c.send({ type: 'unsubscribe', room: 'storm-0' });
    c.send({ type: 'subscribe', room: 'storm-new' });
    await c.next((f) => f.type === 'subscribed' && f.room === 'storm-new');
    c.close();
  });

  it('a frame flood gets one rate_limited error, then the socket is closed with 1008; others are unaffected', async () => {
    const other = await WsClient.connect(node.ws);
    const flood = await WsClient.connect(node.ws);
    const floodStarted = performance.now();
    for (let i = 0; i < 1000; i++) flood.send({ type: 'ping' });
    expect((await flood.closed).code).toBe(1008);
    const floodSeconds = (performance.now() - floodStarted) / 1000;
    // The burst (200), plus what the bucket refilled (50/s) while the flood was being read: on a
    // busy machine reading 1000 frames takes long enough for a few tokens to come back, and each
    // frame let through between drops starts a new run of drops (one error frame per run).
    const refilled = Math.ceil(50 * floodSeconds);
    const errors = flood.frames.filter((f) => f.type === 'error' && f.code === 'rate_limited').length;
    expect(errors).toBeGreaterThanOrEqual(1);
    expect(errors).toBeLessThanOrEqual(1 + refilled);
    expect(flood.frames.filter((f) => f.type === 'pong').length).toBeLessThanOrEqual(200 + refilled);
    const started = Date.now();
    other.send({ type: 'ping' });
    await other.next((f) => f.type === 'pong');
    expect(Date.now() - started).toBeLessThan(500);
    other.close();
  });

  it('a steady flood (one frame per millisecond) is closed with 1008, not answered rate_limited forever', async () => {
    const flood = await WsClient.connect(node.ws);
    const timer = setInterval(() => flood.ws.readyState === WebSocket.OPEN && flood.send({ type: 'ping' }), 1);
    try {
      expect((await flood.closed).code).toBe(1008);
    } finally {
      clearInterval(timer);
    }
    expect(flood.frames.filter((f) => f.type === 'error' && f.code === 'rate_limited')).toHaveLength(1);
  });

  it('sockets opened in a loop are all served or refused cleanly, and the server stays responsive', async () => {
    const base = (await readyz(node.base)).checks.sockets as number;
    // The probe holds its slot first: past WS_MAX_SOCKETS_PER_IP (200) the loop's sockets are closed 4429.
    const probe = await WsClient.connect(node.ws);
    const opened: WebSocket[] = [];
    const refused: number[] = [];
    for (let i = 0; i < 300; i++) {
      const ws = new WebSocket(node.ws);
      ws.on('error', () => {});
      ws.on('close', (code) => code === 4429 && refused.push(code));
      opened.push(ws);
    }
    await Promise.all(opened.map((ws) => new Promise((r) => (ws.readyState === WebSocket.OPEN ? r(null) : ws.once('open', r).once('close', r)))));
    const started = Date.now();
    expect((await fetch(`${node.base}/healthz`)).status).toBe(200);
    probe.send({ type: 'ping' });
    await probe.next((f) => f.type === 'pong');
    expect(Date.now() - started).toBeLessThan(1000);
    probe.close();
    await eventually(async () => (refused.length >= 100 ? true : undefined), 10_000, 'the sockets past the cap to be closed 4429');
    for (const ws of opened) ws.terminate();
    await eventually(async () => (((await readyz(node.base)).checks.sockets as number) <= base ? true : undefined), 10_000, 'sockets to be released');
  });

  it('half-open garbage on the upgrade path is refused without taking the server down', async () => {
    const raw = connect(node.port, '127.0.0.1');
    await new Promise((r) => raw.once('connect', r));
    raw.write('GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n'); // no key
    const answer = await new Promise<string>((r) => raw.once('data', (d) => r(d.toString())));
    expect(answer).toMatch(/^HTTP\/1\.1 400/);
    raw.destroy();
    expect((await fetch(`${node.base}/healthz`)).status).toBe(200);
  });
});

describe('hostile input reaches nothing', () => {
  it('none of it is stored or even written to the log: the next valid message is the log\'s next record', async () => {
    const before = (await readyz(node.base)).checks.lastOffset as number;
    for (const [, body, status] of HOSTILE_POSTS) expect((await post(node.base, body)).status).toBe(status);
    const c = await WsClient.connect(node.ws);
    for (const frame of [
      { type: 'publish', room: 'r', body: { nested: true } },
      { type: 'publish', room: 'no spaces', sender: 'a', body: 'b' },
      { type: 'publish', room: 'r', sender: 'a\u0085b', body: 'b' },
      { type: 'publish', room: 'r', sender: 'a', body: '', id: 'empty' },
    ]) {
      const from = c.frames.length;
      c.send(frame);
      expect(await c.next((f) => f.type === 'error', 10_000, from)).toMatchObject({ code: 'validation_failed' });
    }
    c.close();
    const res = await post(node.base, { room: 'hostile-after', sender: 'a', body: 'the one valid message', key: 'hostile-sentinel' });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    const [stored] = await storedCount(node.base, 1, 'hostile-after');
    expect(stored).toMatchObject({ id, key: 'hostile-sentinel', seq: before + 2 }); // seq = offset + 1
    expect((await readyz(node.base)).checks.lastOffset).toBe(before + 1);
  });
});
