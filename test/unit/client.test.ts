// The client SDK against fake sockets and a fake fetch: no broker, no server. Each test plays
// the server's part frame by frame, so every branch (resume, dedupe, close codes, tokens,
// retries) is checked exactly.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ChatClient, type ConnectionState, type CursorStorage, type FetchLike, type WireMessage } from '../../src/client/index.ts';
import { fullJitter, retryAfterMs } from '../../src/client/backoff.ts';
import { refreshDelayMs } from '../../src/client/token.ts';

class FakeSocket {
  static all: FakeSocket[] = [];
  readyState = 0;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  readonly sent: Record<string, unknown>[] = [];
  closedWith: number | undefined;
  constructor(
    readonly url: string,
    _protocols?: unknown,
    readonly options?: { headers?: Record<string, string> },
  ) {
    FakeSocket.all.push(this);
  }
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  close(code = 1000) {
    this.closedWith = code;
    this.readyState = 3;
  }
  // ---- the test plays the server ----
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  push(...frames: Record<string, unknown>[]) {
    this.onmessage?.({ data: frames.map((f) => JSON.stringify(f)).join('\n') });
  }
  serverClose(code: number, reason = '') {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
  frames(type: string) {
    return this.sent.filter((f) => f.type === type);
  }
}

const last = () => FakeSocket.all[FakeSocket.all.length - 1]!;
const socketAfter = async (n: number) => {
  await vi.waitFor(() => expect(FakeSocket.all.length).toBeGreaterThan(n), { timeout: 3000, interval: 2 });
  return FakeSocket.all[n]!;
};

const msg = (seq: number, room = 'general', extra: Partial<WireMessage> = {}) => ({
  type: 'message',
  id: `m${seq}`,
  room,
  sender: 'bo',
  body: `b${seq}`,
  createdAt: new Date(0).toISOString(),
  seq,
  ...extra,
});

const noFetch: FetchLike = async () => {
  throw new Error('no fetch in this test');
};

const clients: ChatClient[] = [];
function client(opts: Partial<ConstructorParameters<typeof ChatClient>[0]> = {}) {
  const c = new ChatClient({
    url: 'http://chat.test',
    user: 'ana',
    WebSocket: FakeSocket as never,
    fetch: noFetch,
    backoff: { baseMs: 5, maxMs: 20 },
    ...opts,
  });
  clients.push(c);
  return c;
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  FakeSocket.all = [];
});

function fakeJwt(exp: number, sub = 'ana') {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'HS256' })}.${b64({ sub, exp })}.sig`;
}

describe('client SDK (fake sockets)', () => {
  it('asks for ?batch=1 and ?user=, subscribes live, then resumes after the last seq it delivered, each seq once', async () => {
    const chat = client();
    const room = chat.room('general');
    const got: number[] = [];
    room.on('message', (m) => got.push(m.seq));
    const s1 = await socketAfter(0);
    expect(s1.url).toBe('ws://chat.test/ws?batch=1&user=ana');
    s1.open();
    await vi.waitFor(() => expect(s1.frames('subscribe')).toEqual([{ type: 'subscribe', room: 'general' }]));
    // a batch: several frames in one WebSocket message
    s1.push({ type: 'subscribed', room: 'general', head: 7, epoch: 'E1' }, msg(9), msg(12));
    s1.serverClose(1013, 'slow');
    const s2 = await socketAfter(1);
    s2.open();
    await vi.waitFor(() => expect(s2.frames('subscribe')).toEqual([{ type: 'subscribe', room: 'general', after: 12, epoch: 'E1' }]));
    // the new node replays an overlap and pushes live: only what is new comes out
    s2.push({ type: 'subscribed', room: 'general', head: 12, epoch: 'E1' }, msg(9), msg(12), msg(15));
    expect(got).toEqual([9, 12, 15]);
  });

  it('a live start remembers the head, so a reconnect before the first message misses nothing', async () => {
    const chat = client();
    chat.room('general');
    const s1 = await socketAfter(0);
    s1.open();
    s1.push({ type: 'subscribed', room: 'general', head: 40, epoch: 'E1' });
    s1.serverClose(1001);
    const s2 = await socketAfter(1);
    s2.open();
    await vi.waitFor(() => expect(s2.frames('subscribe')[0]).toMatchObject({ after: 40, epoch: 'E1' }));
  });

  it('opening a room resumes from the stored cursor (async storage), else `last`', async () => {
    const data = new Map<string, string>();
    const storage: CursorStorage = {
      getItem: async (k) => data.get(k) ?? null,
      setItem: async (k, v) => void data.set(k, v),
    };
    const chat = client({ storage });
    chat.room('general', { last: 50 });
    const s1 = await socketAfter(0);
    s1.open();
    await vi.waitFor(() => expect(s1.frames('subscribe')).toEqual([{ type: 'subscribe', room: 'general', last: 50 }]));
    s1.push({ type: 'subscribed', room: 'general', head: 30, epoch: 'E1' }, msg(21), msg(30));
    await chat.close();
    expect(JSON.parse(data.get('chat-catchup|http://chat.test|ana|general')!)).toEqual({ seq: 30, epoch: 'E1' });

    const again = client({ storage });
    again.room('general', { last: 50 });
    const s2 = await socketAfter(1);
    s2.open();
    await vi.waitFor(() => expect(s2.frames('subscribe')).toEqual([{ type: 'subscribe', room: 'general', after: 30, epoch: 'E1' }]));
  });

  it('4409 and epoch_mismatch fire `reset`, forget the cursor and subscribe afresh', async () => {
    const chat = client();
    const room = chat.room('general', { last: 10 });
    let resets = 0;
    room.on('reset', () => resets++);
    const s1 = await socketAfter(0);
    s1.open();
    s1.push({ type: 'subscribed', room: 'general', head: 5, epoch: 'E1' }, msg(5));
    s1.serverClose(4409, 'log reset');
    expect(resets).toBe(1);
    expect(room.cursor).toBeUndefined();
    const s2 = await socketAfter(1);
    s2.open();
    await vi.waitFor(() => expect(s2.frames('subscribe')).toEqual([{ type: 'subscribe', room: 'general', last: 10 }]));
    s2.push({ type: 'subscribed', room: 'general', head: 3, epoch: 'E2' }, msg(3));
    expect(room.cursor).toEqual({ seq: 3, epoch: 'E2' });
    // a stale cursor refused on subscribe
    s2.push({ type: 'error', code: 'epoch_mismatch', message: 'x', room: 'general', epoch: 'E3' });
    expect(resets).toBe(2);
    expect(s2.frames('subscribe').at(-1)).toEqual({ type: 'subscribe', room: 'general', last: 10 });
  });

  it('notices a dead connection within two ping intervals and reconnects', async () => {
    const states: ConnectionState[] = [];
    const chat = client({ pingIntervalMs: 40 });
    chat.on('state', (s) => states.push(s));
    const s1 = await socketAfter(0);
    s1.open();
    const t0 = Date.now();
    await vi.waitFor(() => expect(s1.frames('ping').length).toBe(1), { timeout: 2000, interval: 2 });
    // the peer never answers
    await socketAfter(1);
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(70);
    expect(took).toBeLessThan(2000);
    expect(states.some((s) => s.state === 'disconnected' && s.reason === 'no answer to ping')).toBe(true);
  });

  it('answering pings keeps the connection', async () => {
    const chat = client({ pingIntervalMs: 30 });
    const s1 = await socketAfter(0);
    s1.open();
    await vi.waitFor(
      () => {
        if (s1.sent.length && s1.sent.at(-1)!.type === 'ping') s1.push({ type: 'pong' });
        expect(s1.frames('ping').length).toBeGreaterThanOrEqual(5);
      },
      { timeout: 3000, interval: 5 },
    );
    expect(FakeSocket.all.length).toBe(1);
    expect(chat.state.state).toBe('connected');
  });

  it('token mode: auth frame first, refresh before exp, new token after 4401, gives up after 3 failures', async () => {
    let n = 0;
    let failing = false;
    const getToken = vi.fn(async () => {
      if (failing) throw new Error('identity server down');
      return fakeJwt(Math.floor(Date.now() / 1000) + 2, `ana`) + `#${++n}`;
    });
    const errors: string[] = [];
    const chat = client({ user: undefined, getToken });
    chat.on('error', (e) => errors.push(e.message));
    chat.room('general');
    const s1 = await socketAfter(0);
    expect(s1.url).toBe('ws://chat.test/ws?batch=1');
    s1.open();
    await vi.waitFor(() => expect(s1.sent[0]).toMatchObject({ type: 'auth', token: expect.stringContaining('#1') }));
    expect(s1.frames('subscribe')).toEqual([]); // nothing before `authorized`
    const exp = Math.floor(Date.now() / 1000) + 2;
    s1.push({ type: 'authorized', sub: 'ana', exp });
    expect(s1.frames('subscribe').length).toBe(1);
    // refreshed about a second before exp, on the same socket
    await vi.waitFor(() => expect(s1.frames('auth').length).toBe(2), { timeout: 3000 });
    expect(s1.frames('auth')[1]!.token).toContain('#2');
    expect(Date.now()).toBeLessThan(exp * 1000);
    // the server refuses: a new token on the next socket
    s1.serverClose(4401, 'token expired');
    const s2 = await socketAfter(1);
    s2.open();
    await vi.waitFor(() => expect(s2.sent[0]).toMatchObject({ type: 'auth', token: expect.stringContaining('#3') }));
    failing = true;
    s2.serverClose(4401, 'bad');
    await vi.waitFor(() => expect(chat.state).toMatchObject({ state: 'disconnected', reason: 'unauthorized' }), { timeout: 3000 });
    expect(errors.at(-1)).toMatch(/gave up after 3 token failures: getToken failed: identity server down/);
    expect(FakeSocket.all.length).toBe(2);
  });

  it('pause() and resume() while getToken is pending open one socket and ask for one token', async () => {
    let release!: (t: string) => void;
    const getToken = vi.fn(() => new Promise<string>((r) => (release = r)));
    const chat = client({ user: undefined, getToken });
    chat.pause();
    chat.resume();
    release('tok');
    const s1 = await socketAfter(0);
    await new Promise((r) => setTimeout(r, 30));
    expect(FakeSocket.all).toEqual([s1]);
    expect(getToken).toHaveBeenCalledTimes(1);
  });

  it('header mode sends the token on the upgrade', async () => {
    const chat = client({ user: undefined, getToken: () => 'tok', tokenTransport: 'header' });
    chat.room('general');
    const s1 = await socketAfter(0);
    expect(s1.options).toEqual({ headers: { Authorization: 'Bearer tok' } });
    s1.open();
    expect(s1.sent).toEqual([]);
    s1.push({ type: 'authorized', sub: 'u', exp: Math.floor(Date.now() / 1000) + 3600 });
    expect(s1.frames('subscribe').length).toBe(1);
  });

  it('send() retries 503/429/network with the same key, honouring Retry-After, and resolves once accepted', async () => {
    const calls: { at: number; body: Record<string, unknown> }[] = [];
    const answers = [
      () => Promise.reject(new TypeError('fetch failed')),
      () => reply(503, { error: { code: 'broker_unavailable', message: 'x' } }, { 'retry-after': '0.2' }),
      () => reply(429, { error: { code: 'rate_limited', message: 'x' } }, { 'retry-after': '0' }),
      () => reply(202, { id: 'ID', room: 'general', sender: 'ana', createdAt: 'T', key: 'k', status: 'accepted' }),
    ];
    const fetch: FetchLike = async (_url, init) => {
      calls.push({ at: Date.now(), body: JSON.parse(init!.body!) });
      return answers[calls.length - 1]!();
    };
    const chat = client({ fetch });
    const room = chat.room('general');
    const events: string[] = [];
    room.on('pending', (p) => events.push(`pending ${p.body}`));
    room.on('accepted', (a) => events.push(`accepted ${a.id}`));
    const accepted = await room.send('hello');
    expect(accepted.id).toBe('ID');
    expect(events).toEqual(['pending hello', 'accepted ID']);
    expect(calls.length).toBe(4);
    const keys = new Set(calls.map((c) => c.body.key));
    expect(keys.size).toBe(1);
    expect(calls[0]!.body).toEqual({ room: 'general', body: 'hello', key: [...keys][0], sender: 'ana' });
    expect(calls[2]!.at - calls[1]!.at).toBeGreaterThanOrEqual(190); // Retry-After: 0.2
  });

  it('send() rejects at once on a permanent refusal', async () => {
    let n = 0;
    const fetch: FetchLike = async () => {
      n++;
      return reply(400, { error: { code: 'validation_failed', message: 'body must not be empty', fields: [] } });
    };
    const chat = client({ fetch });
    const failed: string[] = [];
    const room = chat.room('general');
    room.on('failed', (f) => failed.push(f.error.code));
    await expect(room.send('x')).rejects.toMatchObject({ code: 'validation_failed', status: 400 });
    expect(n).toBe(1);
    expect(failed).toEqual(['validation_failed']);
  });

  it('a server from before `key` (it refuses the field) gets the key as the message id, once asked', async () => {
    const bodies: Record<string, unknown>[] = [];
    const fetch: FetchLike = async (_url, init) => {
      const body = JSON.parse(init!.body!);
      bodies.push(body);
      if ('key' in body) return reply(400, { error: { code: 'validation_failed', message: 'x', fields: [{ field: '(body)', message: 'Unrecognized key: "key"' }] } });
      return reply(202, { id: body.id, room: 'general', sender: 'ana', createdAt: 'T', status: 'accepted' });
    };
    const room = client({ fetch }).room('general');
    const a1 = await room.send('one', { key: 'k1' });
    const a2 = await room.send('two', { key: 'k2' });
    expect([a1.id, a1.key, a2.id, a2.key]).toEqual(['k1', 'k1', 'k2', 'k2']);
    expect(bodies.map((b) => b.key ?? `id:${b.id}`)).toEqual(['k1', 'id:k1', 'id:k2']);
  });

  it('markRead and typing go out once subscribed; read, typing and presence frames reach the room', async () => {
    const chat = client();
    const room = chat.room('general');
    room.markRead(5);
    room.markRead(3); // never backwards
    const seen: unknown[] = [];
    room.on('read', (e) => seen.push(['read', e.seq]));
    room.on('typing', (e) => seen.push(['typing', e.user]));
    room.on('presence', (u) => seen.push(['presence', u]));
    const s1 = await socketAfter(0);
    s1.open();
    await vi.waitFor(() => expect(s1.frames('subscribe').length).toBe(1));
    expect(s1.frames('read')).toEqual([]);
    s1.push({ type: 'subscribed', room: 'general', head: 9, epoch: 'E' });
    expect(s1.frames('read')).toEqual([{ type: 'read', room: 'general', seq: 5 }]);
    room.typing();
    room.typing(); // throttled
    expect(s1.frames('typing')).toEqual([{ type: 'typing', room: 'general' }]);
    s1.push(
      { type: 'presence', room: 'general', users: ['ana', 'bo'] },
      { type: 'join', room: 'general', user: 'cy' },
      { type: 'leave', room: 'general', user: 'bo' },
      { type: 'typing', room: 'general', user: 'cy' },
      { type: 'read', room: 'general', seq: 9 },
    );
    expect(seen).toEqual([['presence', ['ana', 'bo']], ['presence', ['ana', 'bo', 'cy']], ['presence', ['ana', 'cy']], ['typing', 'cy'], ['read', 9]]);
  });

  it('pause() drops the socket and plans nothing; resume() reconnects and resumes', async () => {
    const chat = client();
    chat.room('general');
    const s1 = await socketAfter(0);
    s1.open();
    s1.push({ type: 'subscribed', room: 'general', head: 0, epoch: 'E' }, msg(4));
    chat.pause();
    expect(s1.closedWith).toBe(1000);
    expect(chat.state).toEqual({ state: 'disconnected', reason: 'paused' });
    await new Promise((r) => setTimeout(r, 50));
    expect(FakeSocket.all.length).toBe(1);
    chat.resume();
    const s2 = await socketAfter(1);
    s2.open();
    await vi.waitFor(() => expect(s2.frames('subscribe')[0]).toMatchObject({ after: 4 }));
  });

  it('4429 backs off at least 5 s', async () => {
    const chat = client();
    const s1 = await socketAfter(0);
    s1.serverClose(4429, 'too many sockets');
    expect(chat.state).toMatchObject({ state: 'disconnected', code: 4429 });
    expect((chat.state as { retryInMs: number }).retryInMs).toBeGreaterThanOrEqual(5000);
  });

  it('helpers: full jitter stays within its ceiling; Retry-After; token refresh delay', () => {
    expect(fullJitter(0, 500, 30_000, () => 0.999)).toBe(499);
    expect(fullJitter(10, 500, 30_000, () => 0.999)).toBe(29_970);
    expect(fullJitter(3, 500, 30_000, () => 0)).toBe(0);
    expect(retryAfterMs('2')).toBe(2000);
    expect(retryAfterMs(null)).toBeUndefined();
    expect(refreshDelayMs(1000, 0)).toBe(1_000_000 - 60_000);
    expect(refreshDelayMs(10, 0)).toBe(8000);
  });
});

function reply(status: number, body: unknown, headers: Record<string, string> = {}) {
  return Promise.resolve({
    status,
    headers: { get: (n: string) => headers[n.toLowerCase()] ?? null },
    json: async () => body,
    text: async () => JSON.stringify(body),
  });
}
