import { spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { mintToken, verifyToken } from '../src/auth/tokens.ts';
import { eventually, post, ROOT, testScope, WsClient, type TestNode } from './support/harness.ts';

const SECRET = 'test-secret-0123456789-0123456789-abcdef';
const scope = testScope('auth');
let node: TestNode;

beforeAll(async () => {
  node = await scope.startNode({
    AUTH_SECRET: SECRET,
    RATE_LIMIT_PER_MINUTE: '5',
    WS_MAX_SOCKETS_PER_USER: '2',
    WS_MAX_SUBSCRIPTIONS: '3',
  }, 'auth.db');
});

const token = (sub: string, rooms: string[], ttlSeconds = 600, secret = SECRET) => mintToken(secret, { sub, rooms, ttlSeconds });
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
const signed = (header: unknown, payload: unknown, secret = SECRET) => {
  const body = `${b64(header)}.${b64(payload)}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
};
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
const errorCode = async (res: Response) => ((await res.json()) as { error: { code: string } }).error.code;
const later = () => Math.floor(Date.now() / 1000) + 600;

describe('HTTP access', () => {
  const badTokens: [string, () => Promise<Record<string, string>>][] = [
    ['no Authorization header', async () => ({})],
    ['a Basic header', async () => ({ authorization: 'Basic YW5hOnB3' })],
    ['a malformed bearer', async () => bearer('not-a-jwt')],
    ['another secret', async () => bearer(await token('ana', ['*'], 600, 'some-other-secret-0123456789abcdef'))],
    ['an expired token', async () => bearer(signed({ alg: 'HS256', typ: 'JWT' }, { sub: 'ana', rooms: ['*'], exp: Math.floor(Date.now() / 1000) - 5 }))],
    ['alg none', async () => bearer(`${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'ana', rooms: ['*'], exp: later() })}.`)],
    [
      'a tampered payload',
      async () => {
        const [h, , s] = (await token('ana', ['general'])).split('.');
        return bearer(`${h}.${b64({ sub: 'ana', rooms: ['*'], exp: later() })}.${s}`);
      },
    ],
    ['no exp claim', async () => bearer(signed({ alg: 'HS256', typ: 'JWT' }, { sub: 'ana', rooms: ['*'] }))],
    ['no rooms claim', async () => bearer(signed({ alg: 'HS256', typ: 'JWT' }, { sub: 'ana', exp: later() }))],
    ['no sub claim', async () => bearer(signed({ alg: 'HS256', typ: 'JWT' }, { rooms: ['*'], exp: later() }))],
  ];

  it.each(badTokens)('%s -> 401 unauthorized on POST and GET', async (_name, headers) => {
    const h = await headers();
    const res = await post(node.base, { room: 'general', body: 'x' }, h);
    expect(res.status).toBe(401);
    expect(await errorCode(res)).toBe('unauthorized');
    const get = await fetch(`${node.base}/messages/since?after=0`, { headers: h });
    expect(get.status).toBe(401);
    expect(await errorCode(get)).toBe('unauthorized');
  });

  it('sender comes from sub; leaving it out is fine, naming someone else is refused', async () => {
    const t = bearer(await token('bea', ['general']));
    const ok = await post(node.base, { room: 'general', body: 'hello' }, t);
    expect(ok.status).toBe(202);
    expect(await ok.json()).toMatchObject({ sender: 'bea', room: 'general' });
    expect((await post(node.base, { room: 'general', sender: 'bea', body: 'same' }, t)).status).toBe(202);
    const spoof = await post(node.base, { room: 'general', sender: 'ana', body: 'spoof' }, t);
    expect(spoof.status).toBe(403);
    expect(await errorCode(spoof)).toBe('sender_mismatch');
  });

  it('room patterns: exact, prefix* and * decide where one may post and read', async () => {
    const t = bearer(await token('cal', ['general', 'team-*']));
    for (const room of ['general', 'team-a', 'team-']) expect((await post(node.base, { room, body: room }, t)).status).toBe(202);
    for (const room of ['generalx', 'team', 'other']) {
      const res = await post(node.base, { room, body: room }, t);
      expect(res.status).toBe(403);
      expect(await errorCode(res)).toBe('forbidden');
    }
    const forbiddenRead = await fetch(`${node.base}/messages/since?after=0&room=other`, { headers: t });
    expect(forbiddenRead.status).toBe(403);
    expect(await errorCode(forbiddenRead)).toBe('forbidden');
    expect((await post(node.base, { room: 'other', body: 'by admin' }, bearer(await token('root', ['*'])))).status).toBe(202);
  });

  it('GET without room returns only the rooms the token allows', async () => {
    const admin = bearer(await token('dee', ['*']));
    for (const room of ['secret-1', 'team-z', 'general', 'zzz']) expect((await post(node.base, { room, body: `in ${room}` }, admin)).status).toBe(202);
    // an all-rooms token sees everything: wait until the last one is stored
    const all = await eventually(async () => {
      const res = await fetch(`${node.base}/messages/since?after=0&limit=1000`, { headers: admin });
      const messages = ((await res.json()) as { messages: { room: string }[] }).messages;
      return messages.some((m) => m.room === 'zzz') ? messages : undefined;
    });
    const limited = bearer(await token('eve', ['general', 'team-*']));
    const page = (await (await fetch(`${node.base}/messages/since?after=0&limit=1000`, { headers: limited })).json()) as { messages: { room: string }[] };
    const allowed = all.filter((m) => m.room === 'general' || m.room.startsWith('team-'));
    expect(page.messages).toEqual(allowed);
    expect(allowed.length).toBeGreaterThan(0);
    expect(page.messages.some((m) => m.room === 'secret-1' || m.room === 'zzz')).toBe(false);
    const sincePage = (await (await fetch(`${node.base}/messages/since?since=0&limit=1000`, { headers: limited })).json()) as { messages: { room: string }[] };
    expect(sincePage.messages).toEqual(allowed);
    const none = bearer(await token('nobody', []));
    expect(((await (await fetch(`${node.base}/messages/since?after=0`, { headers: none })).json()) as { messages: unknown[] }).messages).toEqual([]);
  });

  it('health endpoints need no token', async () => {
    expect((await fetch(`${node.base}/healthz`)).status).toBe(200);
    expect((await fetch(`${node.base}/readyz`)).status).toBe(200);
  });
});

describe('rate limit per sender, HTTP and WebSocket together', () => {
  it('answers 429 rate_limited with Retry-After past the limit, counting both transports', async () => {
    const t = await token('fay', ['general']);
    for (let i = 0; i < 3; i++) expect((await post(node.base, { room: 'general', body: `h${i}` }, bearer(t))).status).toBe(202);
    const ws = await WsClient.connect(node.ws, { headers: bearer(t) });
    await ws.next((f) => f.type === 'authorized');
    ws.send({ type: 'publish', room: 'general', body: 'w1', key: 'fay-w1' });
    ws.send({ type: 'publish', room: 'general', body: 'w2', key: 'fay-w2' });
    await ws.until(() => ws.frames.filter((f) => f.type === 'accepted').length === 2 || undefined);
    ws.send({ type: 'publish', room: 'general', body: 'w3', key: 'fay-w3' });
    const err = await ws.next((f) => f.type === 'error');
    expect(err).toMatchObject({ code: 'rate_limited', key: 'fay-w3' });
    expect(err.retryAfter).toBeGreaterThan(0);
    const res = await post(node.base, { room: 'general', body: 'h4' }, bearer(t));
    expect(res.status).toBe(429);
    expect(await errorCode(res)).toBe('rate_limited');
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    // another sender is not affected
    expect((await post(node.base, { room: 'general', body: 'other' }, bearer(await token('gus', ['general'])))).status).toBe(202);
    ws.close();
  });
});

describe('WebSocket access', () => {
  it('accepts a token in the upgrade header and in a first auth frame', async () => {
    const viaHeader = await WsClient.connect(node.ws, { headers: bearer(await token('hal', ['general'])) });
    expect(await viaHeader.next((f) => f.type === 'authorized')).toMatchObject({ sub: 'hal' });
    viaHeader.send({ type: 'subscribe', room: 'general' });
    await viaHeader.next((f) => f.type === 'subscribed');

    const viaFrame = await WsClient.connect(node.ws);
    viaFrame.send({ type: 'auth', token: await token('ida', ['general']) });
    viaFrame.send({ type: 'subscribe', room: 'general' }); // sent before the answer: queued, not refused
    await viaFrame.next((f) => f.type === 'subscribed');
    expect(viaFrame.frames[0]).toMatchObject({ type: 'authorized', sub: 'ida' });
    viaHeader.close();
    viaFrame.close();
  });

  it.each([
    ['a bad token in the header', async () => ({ headers: bearer(await token('x', ['*'], 600, 'wrong-secret-wrong-secret-wrong')) }), undefined],
    ['a malformed header', async () => ({ headers: { authorization: 'Token abc' } }), undefined],
    ['a bad token in the auth frame', async () => ({}), { type: 'auth', token: 'a.b.c' }],
    ['a first frame that is not auth', async () => ({}), { type: 'subscribe', room: 'general' }],
  ])('closes with 4401 on %s', async (_name, opts, frame) => {
    const c = await WsClient.connect(node.ws, await opts());
    if (frame) c.send(frame);
    expect((await c.closed).code).toBe(4401);
  });

  it('closes with 4401 when no token arrives within 5 seconds', async () => {
    const c = await WsClient.connect(node.ws);
    const started = Date.now();
    expect((await c.closed).code).toBe(4401);
    expect(Date.now() - started).toBeGreaterThan(4000);
  }, 15_000);

  it('closes with 4401 when exp passes on an open socket', async () => {
    const c = await WsClient.connect(node.ws, { headers: bearer(await token('jan', ['general'], 2)) });
    await c.next((f) => f.type === 'authorized');
    c.send({ type: 'subscribe', room: 'general' });
    await c.next((f) => f.type === 'subscribed');
    const { code } = await c.closed;
    expect(code).toBe(4401);
  }, 15_000);

  it('a room outside the token gets a forbidden error frame and the socket stays open', async () => {
    const c = await WsClient.connect(node.ws, { headers: bearer(await token('kim', ['team-*'])) });
    c.send({ type: 'subscribe', room: 'general' });
    expect(await c.next((f) => f.type === 'error')).toMatchObject({ code: 'forbidden', room: 'general' });
    c.send({ type: 'subscribe', room: 'team-x' });
    await c.next((f) => f.type === 'subscribed');
    const from = c.frames.length;
    c.send({ type: 'publish', room: 'general', body: 'nope', key: 'kim-nope' });
    expect(await c.next((f) => f.type === 'error', 10_000, from)).toMatchObject({ code: 'forbidden', key: 'kim-nope' });
    expect(c.ws.readyState).toBe(1);
    c.close();
  });

  it('a later auth frame refreshes the token: same user only, rooms it no longer allows end, the socket slot is kept', async () => {
    const c = await WsClient.connect(node.ws, { headers: bearer(await token('ray', ['a', 'b'])) });
    await c.next((f) => f.type === 'authorized');
    c.send({ type: 'subscribe', room: 'a' });
    c.send({ type: 'subscribe', room: 'b' });
    await c.until(() => c.frames.filter((f) => f.type === 'subscribed').length === 2 || undefined);
    c.send({ type: 'auth', token: await token('ray', ['b'], 1200) });
    expect(await c.next((f) => f.type === 'unsubscribed')).toEqual({ type: 'unsubscribed', room: 'a' });
    await c.until(() => c.frames.filter((f) => f.type === 'authorized').length === 2 || undefined);
    // still one socket for ray: a second one fits under the limit of 2, a third does not
    const second = await WsClient.connect(node.ws, { headers: bearer(await token('ray', ['b'])) });
    await second.next((f) => f.type === 'authorized');
    const third = await WsClient.connect(node.ws, { headers: bearer(await token('ray', ['b'])) });
    expect((await third.closed).code).toBe(4429);
    // a refresh for someone else is refused, and frees ray's slot
    c.send({ type: 'auth', token: await token('someone-else', ['b']) });
    expect((await c.closed).code).toBe(4401);
    const again = await WsClient.connect(node.ws, { headers: bearer(await token('ray', ['b'])) });
    await again.next((f) => f.type === 'authorized');
    second.close();
    again.close();
  });

  it('limits sockets per user and subscriptions per socket', async () => {
    const t = await token('lee', ['*']);
    const first = await WsClient.connect(node.ws, { headers: bearer(t) });
    const second = await WsClient.connect(node.ws, { headers: bearer(t) });
    await first.next((f) => f.type === 'authorized');
    await second.next((f) => f.type === 'authorized');
    const third = await WsClient.connect(node.ws, { headers: bearer(t) });
    expect((await third.closed).code).toBe(4429);
    for (const room of ['a', 'b', 'c', 'd']) first.send({ type: 'subscribe', room });
    expect(await first.next((f) => f.type === 'error')).toMatchObject({ code: 'too_many_subscriptions', room: 'd' });
    second.close();
    await second.closed;
    // a freed slot can be used again
    const again = await WsClient.connect(node.ws, { headers: bearer(t) });
    await again.next((f) => f.type === 'authorized');
    first.close();
    again.close();
  });
});

describe('npm run token', () => {
  it('mints a token the server accepts, and explains its usage when arguments are missing', async () => {
    const run = (args: string[], env: Record<string, string> = { AUTH_SECRET: SECRET }) =>
      spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/token.ts'), ...args], { cwd: ROOT, env: { ...process.env, ...env }, encoding: 'utf8' });
    const ok = run(['--sub', 'mia', '--rooms', 'team-*,general', '--ttl', '60']);
    expect(ok.status).toBe(0);
    const principal = await verifyToken(ok.stdout.trim(), SECRET);
    expect(principal.sub).toBe('mia');
    expect(principal.rooms.allows('team-x') && principal.rooms.allows('general') && !principal.rooms.allows('other')).toBe(true);
    expect(principal.exp - Date.now() / 1000).toBeLessThanOrEqual(60);
    const res = await post(node.base, { room: 'team-x', body: 'minted' }, bearer(ok.stdout.trim()));
    expect(res.status).toBe(202);
    const missing = run(['--rooms', '*']);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/--sub is required[\s\S]*usage:/);
  });
});

describe('open mode', () => {
  it('logs one clear warning at start, and none when AUTH_SECRET is set', async () => {
    const noBroker = { RABBITMQ_URL: 'amqp://guest:guest@127.0.0.1:1' };
    const open = await scope.spawnNode(noBroker, 'open.db');
    const closed = await scope.spawnNode({ ...noBroker, AUTH_SECRET: SECRET }, 'closed.db');
    const warnings = open.logs.filter((l) => l.level === 40 && /AUTH_SECRET/.test(String(l.msg)));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.msg).toMatch(/open mode/);
    expect(closed.logs.some((l) => /open mode/.test(String(l.msg)))).toBe(false);
  });
});
