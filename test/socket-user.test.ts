import { beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { upgradeUser } from '../src/hub/websocket.ts';
import { testScope, WsClient, type TestNode } from './support/harness.ts';

const scope = testScope('wsuser');
let node: TestNode;

beforeAll(async () => {
  node = await scope.startNode({}, 'u.db');
});

/** The status and JSON body of a refused upgrade. */
const refused = (url: string) =>
  new Promise<{ status: number; type: string | undefined; body: { error: { code: string; fields?: { field: string }[] } } }>((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('open', () => reject(new Error('upgrade was accepted')));
    ws.once('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, type: res.headers['content-type'], body: JSON.parse(text) }));
    });
  });

describe("a socket's user in open mode (?user= on the upgrade URL)", () => {
  it('is taken from ?user= and reported by the auth frame', async () => {
    const c = await WsClient.connect(`${node.ws}?user=${encodeURIComponent('Ana María')}`);
    c.send({ type: 'auth', token: 'ignored' });
    expect(await c.next((f) => f.type === 'authorized')).toEqual({ type: 'authorized', sub: 'Ana María', exp: null });
    c.close();
  });

  it('is absent without ?user=: the socket reads and posts anonymously', async () => {
    const c = await WsClient.connect(node.ws);
    c.send({ type: 'auth', token: 'ignored' });
    expect(await c.next((f) => f.type === 'authorized')).toEqual({ type: 'authorized', sub: null, exp: null });
    c.send({ type: 'subscribe', room: 'anon' });
    await c.next((f) => f.type === 'subscribed');
    c.close();
  });

  it.each([
    ['a control character', `user=${encodeURIComponent('a\u0007b')}`],
    ['more than 64 characters', `user=${'x'.repeat(65)}`],
    ['an empty name', 'user='],
    ['a repeated parameter', 'user=a&user=b'],
  ])('with %s is refused before the upgrade with a JSON 400', async (_name, query) => {
    const r = await refused(`${node.ws}?${query}`);
    expect(r.status).toBe(400);
    expect(r.type).toMatch(/application\/json/);
    expect(r.body.error.code).toBe('validation_failed');
    expect(r.body.error.fields?.[0]?.field).toBe('user');
  });

  it('follows the sender rules exactly (unit)', () => {
    expect(upgradeUser('/ws')).toBeUndefined();
    expect(upgradeUser('/ws?batch=1&user=bob')).toBe('bob');
    expect(upgradeUser(`/ws?user=${'é'.repeat(64)}`)).toBe('é'.repeat(64));
    expect(() => upgradeUser(`/ws?user=${encodeURIComponent('\u0085')}`)).toThrow(/control/);
  });
});
