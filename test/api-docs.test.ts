import SwaggerParser from '@apidevtools/swagger-parser';
import specs from '@asyncapi/specs';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import { beforeAll, describe, expect, it } from 'vitest';
import { mintToken } from '../src/auth/tokens.ts';
import { ERRORS, type ErrorCode } from '../src/errors.ts';
import { DOCUMENTED } from '../src/http/api-docs.ts';
import { post, testScope, type TestNode } from './support/harness.ts';

const scope = testScope('api-docs');
const SECRET = 'api-docs-test-secret-0123456789abcdef';
const METRICS_TOKEN = 'metrics-token-for-the-api-docs-test';

/** Codes a test cannot provoke without breaking the broker or the database; said here, not skipped silently. */
const NOT_DRIVEN = new Set(['POST /message broker_unavailable', 'POST /rooms/{room}/read broker_unavailable', 'GET /readyz not_ready']);

let node: TestNode;
let ana: string;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
let openapi: any, asyncapi: any;
beforeAll(async () => {
  node = await scope.startNode({ AUTH_SECRET: SECRET, METRICS_TOKEN, RATE_LIMIT_PER_MINUTE: '2', MAX_MESSAGE_BYTES: '64' });
  ana = await mintToken(SECRET, { sub: 'ana', rooms: ['docs-*'], ttlSeconds: 600 });
  // Fetched once: a keep-alive connection left idle while a validator runs can race the server's keep-alive timeout.
  openapi = await (await fetch(`${node.base}/openapi.json`, { headers: { Connection: 'close' } })).json();
  asyncapi = await (await fetch(`${node.base}/asyncapi.json`, { headers: { Connection: 'close' } })).json();
});
const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });
const postTo = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${node.base}${path}`, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });

/** How to make the server answer each documented (operation, code), for real. */
const provoke: Record<string, () => Promise<Response>> = {
  'POST /message invalid_json': () => post(node.base, '{', bearer(ana)),
  'POST /message validation_failed': () => post(node.base, { room: 'docs-a' }, bearer(ana)),
  'POST /message unauthorized': () => post(node.base, { room: 'docs-a', body: 'x' }),
  'POST /message forbidden': () => post(node.base, { room: 'elsewhere', body: 'x' }, bearer(ana)),
  'POST /message sender_mismatch': () => post(node.base, { room: 'docs-a', sender: 'bob', body: 'x' }, bearer(ana)),
  'POST /message too_large': () => post(node.base, { room: 'docs-a', body: 'x'.repeat(65) }, bearer(ana)),
  'POST /message unsupported_media_type': () => fetch(`${node.base}/message`, { method: 'POST', body: '{}', headers: { 'content-type': 'text/plain', ...bearer(ana) } }),
  'POST /message idempotency_conflict': async () => {
    // A sender of its own (the rate limit is 2 a minute): the key's first message must be stored on this node first.
    const keyed = await mintToken(SECRET, { sub: 'keyed', rooms: ['docs-*'], ttlSeconds: 600 });
    expect((await post(node.base, { room: 'docs-keys', body: 'first', key: 'k1' }, bearer(keyed))).status).toBe(202);
    await expect.poll(async () => ((await (await fetch(`${node.base}/messages/since?after=0&room=docs-keys`, { headers: bearer(keyed) })).json()) as { messages: unknown[] }).messages.length, { timeout: 30_000 }).toBe(1);
    return post(node.base, { room: 'docs-keys', body: 'second', key: 'k1' }, bearer(keyed));
  },
  'POST /message rate_limited': async () => {
    const limited = await mintToken(SECRET, { sub: 'limited', rooms: ['*'], ttlSeconds: 600 });
    for (;;) {
      const res = await post(node.base, { room: 'docs-rate', body: 'x' }, bearer(limited));
      if (res.status !== 202) return res;
    }
  },
  'GET /messages/since validation_failed': () => fetch(`${node.base}/messages/since?after=1&since=1`, { headers: bearer(ana) }),
  'GET /messages/since unauthorized': () => fetch(`${node.base}/messages/since?after=0`),
  'GET /messages/since forbidden': () => fetch(`${node.base}/messages/since?after=0&room=elsewhere`, { headers: bearer(ana) }),
  'GET /messages/since epoch_mismatch': () => fetch(`${node.base}/messages/since?after=0&room=docs-a&epoch=not-this-one`, { headers: bearer(ana) }),
  'GET /messages/before validation_failed': () => fetch(`${node.base}/messages/before?before=1`, { headers: bearer(ana) }),
  'GET /messages/before unauthorized': () => fetch(`${node.base}/messages/before?room=docs-a`),
  'GET /messages/before forbidden': () => fetch(`${node.base}/messages/before?room=elsewhere`, { headers: bearer(ana) }),
  'GET /rooms validation_failed': () => fetch(`${node.base}/rooms?limit=0`, { headers: bearer(ana) }),
  'GET /rooms unauthorized': () => fetch(`${node.base}/rooms`),
  'GET /rooms forbidden': () => fetch(`${node.base}/rooms?rooms=elsewhere`, { headers: bearer(ana) }),
  'GET /rooms sender_mismatch': () => fetch(`${node.base}/rooms?user=bob`, { headers: bearer(ana) }),
  'POST /rooms/{room}/read invalid_json': () => postTo('/rooms/docs-a/read', '{', bearer(ana)),
  'POST /rooms/{room}/read validation_failed': () => postTo('/rooms/docs-a/read', { seq: -1 }, bearer(ana)),
  'POST /rooms/{room}/read unauthorized': () => postTo('/rooms/docs-a/read', { seq: 0 }),
  'POST /rooms/{room}/read forbidden': () => postTo('/rooms/elsewhere/read', { seq: 0 }, bearer(ana)),
  'POST /rooms/{room}/read sender_mismatch': () => postTo('/rooms/docs-a/read', { seq: 0, user: 'bob' }, bearer(ana)),
  'POST /rooms/{room}/read too_large': () => postTo('/rooms/docs-a/read', { seq: 0, pad: 'x'.repeat(5000) }, bearer(ana)),
  'POST /rooms/{room}/read unsupported_media_type': () => fetch(`${node.base}/rooms/docs-a/read`, { method: 'POST', body: '{}', headers: { 'content-type': 'text/plain', ...bearer(ana) } }),
  'POST /rooms/{room}/read rate_limited': async () => {
    const limited = await mintToken(SECRET, { sub: 'limited-reader', rooms: ['*'], ttlSeconds: 600 });
    for (;;) {
      const res = await postTo('/rooms/docs-rate/read', { seq: 0 }, bearer(limited));
      if (res.status !== 202) return res;
    }
  },
  'GET /rooms/{room}/presence validation_failed': () => fetch(`${node.base}/rooms/bad%20room/presence`, { headers: bearer(ana) }),
  'GET /rooms/{room}/presence unauthorized': () => fetch(`${node.base}/rooms/docs-a/presence`),
  'GET /rooms/{room}/presence forbidden': () => fetch(`${node.base}/rooms/elsewhere/presence`, { headers: bearer(ana) }),
  'GET /metrics unauthorized': () => fetch(`${node.base}/metrics`),
  'GET /ws upgrade_required': () => fetch(`${node.base}/ws`),
};
/** The success answer of each operation. */
const succeed: Record<string, [() => Promise<Response>, number]> = {
  'POST /message': [() => post(node.base, { room: 'docs-a', body: 'hello' }, bearer(ana)), 202],
  'GET /messages/since': [() => fetch(`${node.base}/messages/since?after=0&room=docs-a`, { headers: bearer(ana) }), 200],
  'GET /messages/before': [() => fetch(`${node.base}/messages/before?room=docs-a`, { headers: bearer(ana) }), 200],
  'GET /rooms': [() => fetch(`${node.base}/rooms`, { headers: bearer(ana) }), 200],
  'POST /rooms/{room}/read': [() => postTo('/rooms/docs-a/read', { seq: 0 }, bearer(ana)), 202],
  'GET /demo': [() => fetch(`${node.base}/demo`), 200],
  'GET /demo/app.js': [() => fetch(`${node.base}/demo/app.js`), 200],
  'GET /rooms/{room}/presence': [() => fetch(`${node.base}/rooms/docs-a/presence`, { headers: bearer(ana) }), 200],
  'GET /healthz': [() => fetch(`${node.base}/healthz`), 200],
  'GET /readyz': [() => fetch(`${node.base}/readyz`), 200],
  'GET /metrics': [() => fetch(`${node.base}/metrics`, { headers: bearer(METRICS_TOKEN) }), 200],
  'GET /openapi.json': [() => fetch(`${node.base}/openapi.json`), 200],
  'GET /asyncapi.json': [() => fetch(`${node.base}/asyncapi.json`), 200],
};

describe('API documents', () => {
  it('GET /openapi.json is a valid OpenAPI 3.1 document (swagger-parser)', async () => {
    const doc = openapi;
    expect(doc.openapi).toBe('3.1.0');
    await expect(SwaggerParser.validate(structuredClone(doc))).resolves.toBeTruthy();
    // the request body is the validating zod schema's: its fields and limits
    const body = doc.paths['/message'].post.requestBody.content['application/json'].schema;
    expect(body.required).toEqual(expect.arrayContaining(['room', 'body']));
    expect(body.properties.room.pattern).toBe('^[A-Za-z0-9_.:-]{1,64}$');
    expect(body.additionalProperties).toBe(false);
    // `id` is documented as what it is now: a deprecated name of `key`
    expect(body.properties.id).toMatchObject({ deprecated: true, pattern: body.properties.key.pattern, description: expect.stringContaining('`key`') });
  });

  it('GET /asyncapi.json is a valid AsyncAPI 3.0 document (the official JSON schema, @asyncapi/specs)', async () => {
    const doc = asyncapi;
    expect(doc.asyncapi).toBe('3.0.0');
    // The AsyncAPI schema bundles its own copy of the draft-07 meta-schema: do not add Ajv's too.
    const ajv = new Ajv({ strict: false, allErrors: true, meta: false, validateSchema: false });
    (addFormats as unknown as (a: Ajv) => void)(ajv);
    const validate = ajv.compile(specs.schemas['3.0.0'] as object);
    const valid = validate(doc);
    expect(validate.errors ?? [], JSON.stringify(validate.errors?.slice(0, 3))).toEqual([]);
    expect(valid).toBe(true);
    const names = Object.keys(doc.channels.chat.messages);
    expect(names).toEqual(expect.arrayContaining(['subscribe', 'publish', 'message', 'subscribed', 'error', 'read', 'typing', 'readMarker', 'typingSignal', 'presence', 'join', 'leave']));
    expect(doc.channels.chat.messages.subscribe.payload.properties.last).toMatchObject({ type: 'integer', minimum: 1, maximum: 1000 });
    expect(doc.channels.chat.messages.read.payload.required).toEqual(expect.arrayContaining(['type', 'room', 'seq']));
  });

  it('documents every route the app serves (from the Hono app\'s own route table), and nothing it does not serve', () => {
    // Hono lists middleware as method ALL; the 405 catch-alls are ALL too. What is served is GET/POST.
    const served = node.node
      .routes()
      .filter((r) => r.method === 'GET' || r.method === 'POST')
      .map((r) => `${r.method} ${r.path.replace(/:([A-Za-z]+)/g, '{$1}')}`);
    const documented = Object.entries(openapi.paths as Record<string, Record<string, unknown>>).flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`));
    expect(served.length).toBeGreaterThan(10);
    expect([...new Set(served)].sort()).toEqual([...new Set(documented)].sort());
  });

  it('every documented operation answers as documented, for each documented error code (real requests)', async () => {
    const doc = openapi;
    const driven: string[] = [];
    for (const [path, methods] of Object.entries(doc.paths as Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: { properties?: { error?: { properties: { code: { enum: string[] } } } } } }> }> }>>)) {
      for (const [method, operation] of Object.entries(methods)) {
        const name = `${method.toUpperCase()} ${path}`;
        expect(DOCUMENTED[path]?.[method as 'get' | 'post'], name).toBeDefined();
        const ok = succeed[name];
        if (ok) {
          const res = await ok[0]().catch((err) => {
            throw new Error(`${name}: ${err.cause?.code ?? err.message}`);
          });
          expect(res.status, name).toBe(ok[1]);
          expect(Object.keys(operation.responses), name).toContain(String(ok[1]));
        }
        for (const [status, response] of Object.entries(operation.responses)) {
          const codes = response.content?.['application/json']?.schema.properties?.error?.properties.code.enum ?? [];
          for (const code of codes) {
            expect(String(ERRORS[code as ErrorCode].status)).toBe(status);
            const key = `${name} ${code}`;
            if (NOT_DRIVEN.has(key)) continue;
            expect(provoke[key], `no request drives ${key}`).toBeDefined();
            const res = await provoke[key]!().catch((err) => {
              throw new Error(`${key}: ${err.cause?.code ?? err.message}`);
            });
            expect({ key, status: res.status, code: ((await res.json()) as { error: { code: string } }).error.code }).toEqual({ key, status: Number(status), code });
            driven.push(key);
          }
        }
      }
    }
    expect(driven.length).toBe(Object.keys(provoke).length);
  });
});
