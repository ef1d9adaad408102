import { beforeAll, describe, expect, it } from 'vitest';
import { mintToken } from '../src/auth/tokens.ts';
import { eventually, post, readAll, storedCount, testScope, WsClient, type TestNode } from './support/harness.ts';

const scope = testScope('readstate');
const SECRET = 'read-state-test-secret-0123456789';
let a: TestNode;
let b: TestNode;

beforeAll(async () => {
  [a, b] = await Promise.all([scope.startNode({}, 'a.db'), scope.startNode({}, 'b.db')]);
});

type RoomSummary = { room: string; head: number; lastMessage: { seq: number; body: string } | null; lastRead: number; unread: number; unreadCapped?: boolean };
type RoomsPage = { rooms: RoomSummary[]; next?: string };

const markRead = (base: string, room: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${base}/rooms/${room}/read`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
const rooms = async (base: string, query: string, headers: Record<string, string> = {}) => {
  const res = await fetch(`${base}/rooms?${query}`, { headers });
  return { status: res.status, body: (await res.json()) as RoomsPage & { error?: { code: string } } };
};
const say = async (base: string, room: string, sender: string, body: string) => {
  const res = await post(base, { room, sender, body });
  expect(res.status).toBe(202);
};
const markerOn = (base: string, user: string, room: string, seq: number) =>
  eventually(async () => {
    const { body } = await rooms(base, `user=${user}&rooms=${room}`);
    return body.rooms[0]?.lastRead === seq ? body.rooms[0] : undefined;
  }, 15_000, `${user}'s marker in ${room} at ${seq} on ${base}`);

describe('read markers through the log', () => {
  it('202 after the confirm; identical on two nodes; clamped; never backwards', async () => {
    for (let i = 0; i < 5; i++) await say(a.base, 'rs', i % 2 ? 'ana' : 'bob', `m${i}`);
    const all = await storedCount(a.base, 5, 'rs');
    await storedCount(b.base, 5, 'rs');
    const res = await markRead(a.base, 'rs', { user: 'ana', seq: all[2]!.seq });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ room: 'rs', user: 'ana', seq: all[2]!.seq, status: 'accepted' });
    await markerOn(a.base, 'ana', 'rs', all[2]!.seq);
    await markerOn(b.base, 'ana', 'rs', all[2]!.seq);
    // backwards: accepted (it is a valid request) but changes nothing
    expect((await markRead(b.base, 'rs', { user: 'ana', seq: all[0]!.seq })).status).toBe(202);
    // clamped: far past the head becomes the head at that point of the log
    expect((await markRead(b.base, 'rs', { user: 'ana', seq: 1_000_000_000 })).status).toBe(202);
    const head = all[4]!.seq;
    const onA = await markerOn(a.base, 'ana', 'rs', head);
    const onB = await markerOn(b.base, 'ana', 'rs', head);
    expect(onA).toEqual(onB);
    expect(onA).toMatchObject({ room: 'rs', head, lastRead: head, unread: 0, lastMessage: { seq: head, body: 'm4' } });
    // a later message from someone else is unread; the user's own is not
    await say(a.base, 'rs', 'bob', 'later');
    await say(a.base, 'rs', 'ana', 'mine');
    const after = await eventually(async () => {
      const { body } = await rooms(b.base, 'user=ana&rooms=rs');
      return body.rooms[0]!.lastMessage?.body === 'mine' ? body.rooms[0] : undefined;
    });
    expect(after).toMatchObject({ lastRead: head, unread: 1 });
  });

  it('a new node replaying the log from the start ends with the same read state', async () => {
    await markRead(a.base, 'rs', { user: 'bob', seq: 2 });
    const expected = await markerOn(a.base, 'bob', 'rs', 2).then(async () => (await rooms(a.base, 'user=bob')).body);
    const c = await scope.startNode({}, 'c.db');
    await storedCount(c.base, (await readAll(a.base)).length);
    for (const user of ['ana', 'bob']) {
      const want = (await rooms(a.base, `user=${user}`)).body;
      await eventually(async () => {
        const got = (await rooms(c.base, `user=${user}`)).body;
        return JSON.stringify(got) === JSON.stringify(want) ? true : undefined;
      }, 15_000, `the same list for ${user} on the new node`);
    }
    expect(expected.rooms.find((r) => r.room === 'rs')!.lastRead).toBe(2);
    await c.stop();
  });

  it("multi-device: a marker set on one socket reaches the same user's other socket on another node, not others", async () => {
    await say(a.base, 'sync', 'bob', 'hello');
    const [m] = await storedCount(b.base, 1, 'sync');
    const phone = await WsClient.connect(`${a.ws}?user=ana`);
    const laptop = await WsClient.connect(`${b.ws}?user=ana`);
    const other = await WsClient.connect(`${b.ws}?user=cy`);
    for (const c of [phone, laptop, other]) {
      c.send({ type: 'subscribe', room: 'sync' });
      await c.next((f) => f.type === 'subscribed');
    }
    phone.send({ type: 'read', room: 'sync', seq: m!.seq });
    expect(await phone.next((f) => f.type === 'accepted')).toEqual({ type: 'accepted', kind: 'read', room: 'sync', user: 'ana', seq: m!.seq, status: 'accepted' });
    expect(await laptop.next((f) => f.type === 'read')).toEqual({ type: 'read', room: 'sync', seq: m!.seq });
    expect(await phone.next((f) => f.type === 'read')).toEqual({ type: 'read', room: 'sync', seq: m!.seq });
    // cy's socket got nothing. Node b pushed ana's marker to its sockets before laptop saw it, so a
    // leak would already be written to cy's socket: the answer to a frame sent now comes after it.
    other.send({ type: 'no-such-frame' });
    const answer = await other.next((f) => f.type === 'error');
    expect(other.frames.slice(0, other.frames.indexOf(answer)).filter((f) => f.type === 'read')).toEqual([]);
    // and a marker of cy's own arrives, alone
    other.send({ type: 'read', room: 'sync', seq: m!.seq });
    expect(await other.next((f) => f.type === 'read')).toEqual({ type: 'read', room: 'sync', seq: m!.seq });
    expect(other.frames.filter((f) => f.type === 'read')).toHaveLength(1);
    for (const c of [phone, laptop, other]) c.close();
  });

  it('an anonymous open-mode socket cannot send read; bad read frames get errors', async () => {
    const anon = await WsClient.connect(a.ws);
    anon.send({ type: 'read', room: 'sync', seq: 1 });
    expect(await anon.next((f) => f.type === 'error')).toMatchObject({ code: 'validation_failed', field: 'user' });
    const ana = await WsClient.connect(`${a.ws}?user=ana`);
    for (const [i, frame] of [
      { type: 'read', room: 'sync', seq: -1 },
      { type: 'read', room: 'sync', seq: 1.5 },
      { type: 'read', room: 'sync', seq: '3' },
      { type: 'read', room: 'bad room', seq: 1 },
    ].entries()) {
      ana.send(frame);
      const errors = await ana.until(() => { const e = ana.frames.filter((f) => f.type === 'error'); return e.length > i ? e : undefined; });
      expect(errors[i]).toMatchObject({ code: 'validation_failed', kind: 'read' });
    }
    anon.close();
    ana.close();
  });

  it.each([
    ['a negative seq', 'rs', { user: 'ana', seq: -1 }, 400, 'validation_failed'],
    ['a fractional seq', 'rs', { user: 'ana', seq: 2.5 }, 400, 'validation_failed'],
    ['a string seq', 'rs', { user: 'ana', seq: '2' }, 400, 'validation_failed'],
    ['no seq', 'rs', { user: 'ana' }, 400, 'validation_failed'],
    ['no user in open mode', 'rs', { seq: 1 }, 400, 'validation_failed'],
    ['an invalid user', 'rs', { user: 'a\u0000b', seq: 1 }, 400, 'validation_failed'],
    ['an unknown field', 'rs', { user: 'ana', seq: 1, extra: true }, 400, 'validation_failed'],
    ['an invalid room', 'no%20room', { user: 'ana', seq: 1 }, 400, 'validation_failed'],
  ])('POST /rooms/{room}/read with %s -> %s %s', async (_n, room, body, status, code) => {
    const res = await markRead(a.base, room, body);
    expect(res.status).toBe(status);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code);
  });

  it.each([
    ['no user in open mode', 'limit=5', 'validation_failed'],
    ['limit 0', 'user=ana&limit=0', 'validation_failed'],
    ['limit 201', 'user=ana&limit=201', 'validation_failed'],
    ['a bad room in rooms', 'user=ana&rooms=a,no%20room', 'validation_failed'],
    ['a bad cursor', 'user=ana&after=zzz', 'validation_failed'],
    ['a repeated user', 'user=ana&user=bob', 'validation_failed'],
  ])('GET /rooms with %s -> 400', async (_n, q, code) => {
    const { status, body } = await rooms(a.base, q);
    expect(status).toBe(400);
    expect(body.error!.code).toBe(code);
  });
});

describe('read state in token mode', () => {
  let t: TestNode;
  const token = (sub: string, rs: string[]) => mintToken(SECRET, { sub, rooms: rs, ttlSeconds: 600 });
  beforeAll(async () => {
    t = await scope.startNode({ AUTH_SECRET: SECRET }, 't.db');
  });

  it('uses sub, refuses a differing user, and keeps forbidden rooms invisible', async () => {
    const ana = { authorization: `Bearer ${await token('ana', ['team-*', 'lobby'])}` };
    const zed = { authorization: `Bearer ${await token('zed', ['*'])}` };
    for (const room of ['team-a', 'secret']) expect((await post(t.base, { room, body: `hi ${room}` }, zed)).status).toBe(202);
    // ana posted in 'secret' back when her token allowed it
    const old = { authorization: `Bearer ${await token('ana', ['*'])}` };
    expect((await post(t.base, { room: 'secret', body: 'mine' }, old)).status).toBe(202);
    expect((await post(t.base, { room: 'team-a', body: 'mine too' }, old)).status).toBe(202);
    const list = await eventually(async () => {
      const { status, body } = await rooms(t.base, '', ana);
      expect(status).toBe(200);
      return body.rooms.length === 2 ? body : undefined;
    });
    // lobby is listed from the token (no activity yet); secret is not, though ana posted there
    expect(list.rooms.map((r) => r.room)).toEqual(['team-a', 'lobby']);
    expect(list.rooms[0]).toMatchObject({ unread: 1, lastRead: 0 });
    expect(list.rooms[1]).toEqual({ room: 'lobby', head: 0, lastMessage: null, lastRead: 0, unread: 0 });
    expect((await rooms(t.base, 'rooms=secret', ana)).status).toBe(403);
    expect((await rooms(t.base, 'user=bob', ana)).status).toBe(403);
    expect((await markRead(t.base, 'team-a', { seq: 1, user: 'bob' }, ana)).status).toBe(403);
    expect((await markRead(t.base, 'secret', { seq: 1 }, ana)).status).toBe(403);
    expect((await fetch(`${t.base}/messages/before?room=secret`, { headers: ana })).status).toBe(403);
    expect((await fetch(`${t.base}/rooms`)).status).toBe(401);
    const head = list.rooms[0]!.head;
    expect((await markRead(t.base, 'team-a', { seq: head }, ana)).status).toBe(202);
    await eventually(async () => ((await rooms(t.base, 'rooms=team-a', ana)).body.rooms[0]!.lastRead === head ? true : undefined));
  });
});
