import { request as httpRequest } from 'node:http';
import { beforeAll, describe, expect, it } from 'vitest';
import { freePort } from './support/rabbit-node.ts';
import { post, readyz, storedCount, testScope, type TestNode } from './support/harness.ts';

const scope = testScope('errors');
let node: TestNode;

beforeAll(async () => {
  node = await scope.startNode({ MAX_MESSAGE_BYTES: '100' }, 'a.db');
});

const errorOf = async (res: Response) => ((await res.json()) as { error: { code: string; message: string; fields?: { field: string }[] } }).error;
const valid = { room: 'general', sender: 'ana', body: 'hi' };

describe('POST /message errors: each is JSON with a code, and nothing is published', () => {
  const cases: { name: string; body: unknown; headers?: Record<string, string>; status: number; code: string; field?: string }[] = [
    { name: 'malformed JSON', body: '{"room": "general",', status: 400, code: 'invalid_json' },
    { name: 'invalid UTF-8', body: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]).toString('latin1'), status: 400, code: 'invalid_json' },
    { name: 'not an object', body: '[1,2]', status: 400, code: 'validation_failed' },
    { name: 'missing room', body: { sender: 'ana', body: 'x' }, status: 400, code: 'validation_failed', field: 'room' },
    { name: 'missing sender (open mode)', body: { room: 'general', body: 'x' }, status: 400, code: 'validation_failed', field: 'sender' },
    { name: 'missing body', body: { room: 'general', sender: 'ana' }, status: 400, code: 'validation_failed', field: 'body' },
    { name: 'empty body', body: { ...valid, body: '' }, status: 400, code: 'validation_failed', field: 'body' },
    { name: 'body of wrong type', body: { ...valid, body: 42 }, status: 400, code: 'validation_failed', field: 'body' },
    { name: 'room with a space', body: { ...valid, room: 'a b' }, status: 400, code: 'validation_failed', field: 'room' },
    { name: 'room too long', body: { ...valid, room: 'r'.repeat(65) }, status: 400, code: 'validation_failed', field: 'room' },
    { name: 'room with a control character', body: { ...valid, room: 'gen\u0007' }, status: 400, code: 'validation_failed', field: 'room' },
    { name: 'sender with a control character', body: { ...valid, sender: 'an\u0000a' }, status: 400, code: 'validation_failed', field: 'sender' },
    { name: 'sender with a lone surrogate', body: `{"room":"general","sender":"an\\ud800a","body":"x"}`, status: 400, code: 'validation_failed', field: 'sender' },
    { name: 'sender too long', body: { ...valid, sender: 's'.repeat(65) }, status: 400, code: 'validation_failed', field: 'sender' },
    { name: 'bad id', body: { ...valid, id: 'has space' }, status: 400, code: 'validation_failed', field: 'id' },
    { name: 'unknown field', body: { ...valid, extra: 'x'.repeat(10) }, status: 400, code: 'validation_failed' },
    { name: 'body over MAX_MESSAGE_BYTES (multi-byte)', body: { ...valid, body: 'é'.repeat(51) }, status: 413, code: 'too_large' },
    { name: 'request over the body limit', body: { ...valid, body: 'x'.repeat(10_000) }, status: 413, code: 'too_large' },
    { name: 'text/plain', body: JSON.stringify(valid), headers: { 'content-type': 'text/plain' }, status: 415, code: 'unsupported_media_type' },
  ];

  it.each(cases)('$name -> $status $code', async ({ body, headers, status, code, field }) => {
    const res = await post(node.base, body, headers);
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toMatch(/application\/json/);
    const err = await errorOf(res);
    expect(err.code).toBe(code);
    expect(err.message.length).toBeGreaterThan(5);
    if (field) expect(err.fields?.map((f) => f.field)).toContain(field);
  });

  it('stored none of them: the next accepted message is the log\'s next record', async () => {
    const before = (await readyz(node.base)).checks.lastOffset as number;
    for (const { body, headers, status } of cases) expect((await post(node.base, body, headers)).status).toBe(status);
    const res = await post(node.base, { ...valid, room: 'after-errors', body: 'exactly 100 bytes: ' + 'x'.repeat(81) });
    expect(res.status).toBe(202);
    const [stored] = await storedCount(node.base, 1, 'after-errors');
    expect(stored!.seq).toBe(before + 2); // seq = offset + 1: nothing else reached the log
    expect((await readyz(node.base)).checks.lastOffset).toBe(before + 1);
  });

  it('a 10 MB body is refused from its Content-Length, before it is read', async () => {
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(`${node.base}/message`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(10 * 1024 * 1024) } }, (res) => {
        let b = '';
        res.on('data', (d) => (b += d));
        res.on('end', () => resolve({ status: res.statusCode!, body: b }));
      });
      req.on('error', reject);
      req.write('{"room":"general","body":"'); // the rest never comes: the answer must not wait for it
    });
    expect(status).toBe(413);
    expect(JSON.parse(body).error.code).toBe('too_large');
  });
});

describe('GET /messages/since errors', () => {
  it.each([
    ['', 'after|since'],
    ['after=1&since=0', 'after&since'],
    ['after=-1', 'after'],
    ['after=abc', 'after'],
    ['after=1.5', 'after'],
    ['since=yesterday', 'since'],
    ['since=2026-13-45T00:00:00Z', 'since'],
    ['after=0&limit=0', 'limit'],
    ['after=0&limit=1001', 'limit'],
    ['after=0&limit=x', 'limit'],
    ['after=0&room=bad%20room', 'room'],
  ])('?%s -> 400 validation_failed naming %s', async (query, field) => {
    const res = await fetch(`${node.base}/messages/since?${query}`);
    expect(res.status).toBe(400);
    const err = await errorOf(res);
    expect(err.code).toBe('validation_failed');
    expect(err.fields?.map((f) => f.field)).toContain(field);
  });
});

describe('routing errors', () => {
  it('unknown path -> 404 JSON', async () => {
    const res = await fetch(`${node.base}/nope`);
    expect(res.status).toBe(404);
    expect((await errorOf(res)).code).toBe('not_found');
  });
  it.each([
    ['GET', '/message', 'POST'],
    ['PUT', '/message', 'POST'],
    ['POST', '/messages/since', 'GET, HEAD'],
    ['DELETE', '/healthz', 'GET, HEAD'],
  ])('%s %s -> 405 with Allow: %s', async (method, path, allow) => {
    const res = await fetch(`${node.base}${path}`, { method });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe(allow);
    expect((await errorOf(res)).code).toBe('method_not_allowed');
  });
  it('GET /ws without an upgrade -> 426', async () => {
    const res = await fetch(`${node.base}/ws`);
    expect(res.status).toBe(426);
    expect((await errorOf(res)).code).toBe('upgrade_required');
  });
});

describe('broker down', () => {
  it('POST answers 503 broker_unavailable with Retry-After within seconds, and /readyz says why', async () => {
    const deadPort = await freePort();
    const down = await scope.startNode({ RABBITMQ_URL: `amqp://guest:guest@127.0.0.1:${deadPort}` }, 'down.db');
    try {
      const started = Date.now();
      const res = await post(down.base, valid);
      expect(res.status).toBe(503);
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
      expect((await errorOf(res)).code).toBe('broker_unavailable');
      expect(Date.now() - started).toBeLessThan(3000);
      const ready = await fetch(`${down.base}/readyz`);
      expect(ready.status).toBe(503);
      const body = (await ready.json()) as { error: { code: string; checks: { broker: string } } };
      expect(body.error.code).toBe('not_ready');
      expect(body.error.checks.broker).toBe('disconnected');
      expect((await fetch(`${down.base}/healthz`)).status).toBe(200);
    } finally {
      await down.stop();
    }
  });
});
