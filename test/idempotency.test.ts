import { beforeAll, describe, expect, it } from 'vitest';
import { mintToken } from '../src/auth/tokens.ts';
import { eventually, post, readAll, storedCount, testScope, WsClient, type TestNode } from './support/harness.ts';

const scope = testScope('idem');
let node: TestNode;
const SECRET = 'idempotency-test-secret-of-enough-length';
let tokenNode: TestNode;

beforeAll(async () => {
  [node, tokenNode] = await Promise.all([scope.startNode({}, 'open.db'), scope.startNode({ AUTH_SECRET: SECRET }, 'token.db')]);
});

const json = async (res: Response) => (await res.json()) as Record<string, any>;

describe('idempotency keys are scoped to the sender (contract: key)', () => {
  it('another sender reusing my key, in another room, loses nothing: both are stored, with different ids', async () => {
    const a = await post(node.base, { room: 'sq-1', sender: 'ana', body: 'from ana', key: 'k-1' });
    const b = await post(node.base, { room: 'sq-2', sender: 'bo', body: 'from bo', key: 'k-1' });
    expect([a.status, b.status]).toEqual([202, 202]);
    const [ja, jb] = [await json(a), await json(b)];
    expect(ja.key).toBe('k-1');
    expect(ja.id).not.toBe(jb.id);
    const stored = await storedCount(node.base, 2);
    expect(stored.filter((m) => m.key === 'k-1').map((m) => [m.sender, m.room, m.body])).toEqual([
      ['ana', 'sq-1', 'from ana'],
      ['bo', 'sq-2', 'from bo'],
    ]);
  });

  it('a client numbering its keys per room loses nothing in its second room', async () => {
    for (const room of ['per-a', 'per-b']) expect((await post(node.base, { room, sender: 'cy', body: `1 in ${room}`, key: `${room}-1` })).status).toBe(202);
    const all = await eventually(async () => {
      const list = (await readAll(node.base)).filter((m) => m.sender === 'cy');
      return list.length === 2 ? list : undefined;
    });
    expect(all.map((m) => m.room)).toEqual(['per-a', 'per-b']);
  });

  it('a retry (body key or Idempotency-Key header) gets 202 with the same id and is stored once', async () => {
    const first = await json(await post(node.base, { room: 'retry', sender: 'di', body: 'once', key: 'r-1' }));
    await eventually(async () => ((await readAll(node.base, { room: 'retry' })).length === 1 ? true : undefined));
    const again = await post(node.base, { room: 'retry', sender: 'di', body: 'once' }, { 'idempotency-key': 'r-1' });
    expect(again.status).toBe(202);
    expect(await json(again)).toMatchObject({ id: first.id, key: 'r-1', createdAt: first.createdAt });
    // a retry still in flight (not yet stored here) is published again and kept once
    const raced = await Promise.all([1, 2, 3].map(() => post(node.base, { room: 'retry', sender: 'di', body: 'twice', key: 'r-2' }).then(json)));
    expect(new Set(raced.map((r) => r.id)).size).toBe(1);
    await post(node.base, { room: 'retry', sender: 'di', body: 'marker' });
    const list = await eventually(async () => {
      const l = await readAll(node.base, { room: 'retry' });
      return l.some((m) => m.body === 'marker') ? l : undefined;
    });
    expect(list.map((m) => m.body)).toEqual(['once', 'twice', 'marker']);
  });

  it('the same key with another body or room is 409 idempotency_conflict once the first is stored', async () => {
    expect((await post(node.base, { room: 'conf', sender: 'ed', body: 'first', key: 'c-1' })).status).toBe(202);
    await eventually(async () => ((await readAll(node.base, { room: 'conf' })).length === 1 ? true : undefined));
    for (const other of [{ room: 'conf', body: 'second' }, { room: 'conf-2', body: 'first' }]) {
      const res = await post(node.base, { ...other, sender: 'ed', key: 'c-1' });
      expect(res.status).toBe(409);
      expect((await json(res)).error).toMatchObject({ code: 'idempotency_conflict', key: 'c-1' });
    }
    expect((await readAll(node.base, { room: 'conf' })).map((m) => m.body)).toEqual(['first']);
  });

  it('a body key and a header that differ, and a malformed key are 400 naming the field', async () => {
    const cases: [Record<string, unknown>, Record<string, string>, string][] = [
      [{ key: 'a' }, { 'idempotency-key': 'b' }, 'key'],
      [{ key: 'has space' }, {}, 'key'],
      [{}, { 'idempotency-key': 'x'.repeat(65) }, 'key'],
    ];
    for (const [extra, headers, field] of cases) {
      const res = await post(node.base, { room: 'bad', sender: 'fa', body: 'x', ...extra }, headers);
      expect(res.status).toBe(400);
      const err = (await json(res)).error;
      expect(err.code).toBe('validation_failed');
      expect(err.fields.map((f: { field: string }) => f.field)).toContain(field);
    }
  });
});

describe('the deprecated `id` is a key like any other, scoped to its sender', () => {
  it('the same id from two senders in two rooms (HTTP and WebSocket): both 202, both stored and delivered, with different ids', async () => {
    const watcher = await WsClient.connect(node.ws);
    for (const room of ['legacy-1', 'legacy-2']) watcher.send({ type: 'subscribe', room });
    await watcher.until(() => watcher.frames.filter((f) => f.type === 'subscribed').length === 2 || undefined);
    const a = await post(node.base, { room: 'legacy-1', sender: 'gus', body: 'from gus', id: 'n-1' });
    expect(a.status).toBe(202);
    const ja = await json(a);
    const publisher = await WsClient.connect(node.ws);
    publisher.send({ type: 'publish', room: 'legacy-2', sender: 'hal', body: 'from hal', id: 'n-1' });
    const jb = await publisher.next((f) => f.type === 'accepted' || f.type === 'error');
    expect(jb).toMatchObject({ type: 'accepted', key: 'n-1' });
    expect(ja).toMatchObject({ key: 'n-1' });
    expect(ja.id).not.toBe(jb.id);
    const delivered = await watcher.until(() => (watcher.messages().length === 2 ? watcher.messages() : undefined), 15_000, 'both messages pushed');
    expect(delivered.map((m) => [m.id, m.sender, m.room, m.body, m.key])).toEqual([
      [ja.id, 'gus', 'legacy-1', 'from gus', 'n-1'],
      [jb.id, 'hal', 'legacy-2', 'from hal', 'n-1'],
    ]);
    const stored = [...(await readAll(node.base, { room: 'legacy-1' })), ...(await readAll(node.base, { room: 'legacy-2' }))];
    expect(stored.map((m) => m.id)).toEqual([ja.id, jb.id]);
    watcher.close();
    publisher.close();
  });

  it('the same sender repeating an id: same content is the same id, stored once; other content is 409', async () => {
    const first = await json(await post(node.base, { room: 'legacy-r', sender: 'ivy', body: 'once', id: 'n-1' }));
    await storedCount(node.base, 1, 'legacy-r');
    const again = await post(node.base, { room: 'legacy-r', sender: 'ivy', body: 'once', id: 'n-1' });
    expect(again.status).toBe(202);
    expect(await json(again)).toMatchObject({ id: first.id, key: 'n-1', createdAt: first.createdAt });
    const other = await post(node.base, { room: 'legacy-r', sender: 'ivy', body: 'another', id: 'n-1' });
    expect(other.status).toBe(409);
    expect((await json(other)).error).toMatchObject({ code: 'idempotency_conflict', key: 'n-1', id: first.id });
    await post(node.base, { room: 'legacy-r', sender: 'ivy', body: 'marker' });
    const list = await eventually(async () => {
      const l = await readAll(node.base, { room: 'legacy-r' });
      return l.some((m) => m.body === 'marker') ? l : undefined;
    });
    expect(list.map((m) => [m.id, m.body])).toEqual([
      [first.id, 'once'],
      [expect.any(String), 'marker'],
    ]);
  });

  it('an id and a key (body or Idempotency-Key header) that differ are a 400 naming id', async () => {
    for (const [extra, headers] of [
      [{ id: 'a', key: 'b' }, {}],
      [{ id: 'a' }, { 'idempotency-key': 'b' }],
    ] as const) {
      const res = await post(node.base, { room: 'bad', sender: 'fa', body: 'x', ...extra }, headers);
      expect(res.status).toBe(400);
      expect((await json(res)).error).toMatchObject({ code: 'validation_failed', fields: [{ field: 'id' }] });
    }
  });
});

describe('nothing is answered 202 that the store would refuse', () => {
  it('a token whose sub is not well-formed Unicode, or holds a bidi override, is refused (401), never 202', async () => {
    for (const sub of ['ana\ud800', 'ana\u202eexe', 'a\u200bna']) {
      const token = await mintToken(SECRET, { sub, rooms: ['*'], ttlSeconds: 600 });
      const res = await post(tokenNode.base, { room: 'r', body: 'x' }, { authorization: `Bearer ${token}` });
      expect(res.status, JSON.stringify(sub)).toBe(401);
    }
  });

  it('a sender with a bidirectional override or a zero-width space is 400', async () => {
    for (const sender of ['ana\u202egpj.exe', 'a\u200bna', '\u2066x']) {
      const res = await post(node.base, { room: 'r', sender, body: 'x' });
      expect(res.status).toBe(400);
      expect((await json(res)).error.fields[0].field).toBe('sender');
    }
  });
});
