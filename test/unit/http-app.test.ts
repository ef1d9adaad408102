import { VERSION } from '../../src/version.ts';
import { describe, expect, it } from 'vitest';
import { createAcceptor } from '../../src/accept.ts';
import { keyedId } from '../../src/domain/id.ts';
import { RateLimiter } from '../../src/auth/rate-limit.ts';
import { mintToken, verifyToken } from '../../src/auth/tokens.ts';
import { BrokerUnavailableError } from '../../src/broker/errors.ts';
import { AppError } from '../../src/errors.ts';
import { createApp, type AppDeps } from '../../src/http/app.ts';
import { apiDocRoutes } from '../../src/http/api-docs.ts';
import { metricsRoutes } from '../../src/http/operations.ts';
import { Metrics } from '../../src/metrics.ts';
import { createLogger } from '../../src/log.ts';
import type { Encoded, Page, PageQuery } from '../../src/store/messages.ts';

/**
 * The HTTP edge alone: the app over a real acceptor whose publish is a stub, and a stub reader.
 * Every error code the API can answer, with its status, headers and exact JSON.
 */

const SECRET = 'unit-test-secret';

function build(opts: { auth?: boolean; publish?: (record: Buffer) => Promise<void>; ready?: boolean; perMinute?: number; readPage?: (q: PageQuery) => Encoded<Page> } = {}) {
  const published: Buffer[] = [];
  const queries: PageQuery[] = [];
  const accept = createAcceptor({
    publish: opts.publish ?? (async (record) => void published.push(record)),
    limiter: new RateLimiter(opts.perMinute ?? 600),
    maxMessageBytes: 100,
  });
  const deps: AppDeps = {
    accept,
    authenticate: opts.auth ? (token) => verifyToken(token, SECRET) : undefined,
    readPage:
      opts.readPage ??
      ((q) => {
        queries.push(q);
        return { messagesJson: Buffer.from('[]'), next: q.after ?? 0, hasMore: false, epoch: 'e1' };
      }),
    epoch: () => 'e1',
    readBefore: () => ({ messagesJson: Buffer.from('[]'), prev: null, hasMore: false, head: 0, epoch: 'e1' }),
    markRead: async () => ({ room: 'r', user: 'u', seq: 0, status: 'accepted' }),
    listRooms: () => ({ rooms: [] }),
    maxMessageBytes: 100,
    log: createLogger('silent'),
    readiness: () => ({ ok: opts.ready ?? true, checks: { database: 'open' } }),
  };
  const app = createApp(deps);
  return { app, published, queries, deps };
}

const postJson = (body: unknown, headers: Record<string, string> = {}) => ({
  method: 'POST',
  headers: { 'content-type': 'application/json', ...headers },
  body: typeof body === 'string' ? body : JSON.stringify(body),
});
const valid = { room: 'general', sender: 'ana', body: 'hi' };

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- compared with toEqual
async function answer(res: Response): Promise<{ status: number; body: any }> {
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  return { status: res.status, body: await res.json() };
}

describe('HTTP app (no broker, no store): success', () => {
  it('POST /message: 202 with what was accepted, and exactly one record published', async () => {
    const { app, published } = build();
    const { status, body } = await answer(await app.request('/message', postJson(valid)));
    expect(status).toBe(202);
    expect(body).toEqual({ id: expect.any(String), room: 'general', sender: 'ana', createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/), status: 'accepted' });
    expect(published).toHaveLength(1);
    expect(JSON.parse(published[0]!.toString())).toEqual({ kind: 'message', id: body.id, room: 'general', sender: 'ana', body: 'hi', createdAt: Date.parse(body.createdAt) });
  });

  it('POST /message: a client `id` is the deprecated name of `key`: the stored id is derived from (sender, id), never the id itself', async () => {
    const { app, published } = build();
    const { status, body } = await answer(await app.request('/message', postJson({ ...valid, id: 'm1' })));
    expect(status).toBe(202);
    expect(body).toMatchObject({ id: keyedId('ana', 'm1'), key: 'm1', status: 'accepted' });
    expect(JSON.parse(published[0]!.toString())).toMatchObject({ kind: 'message', id: keyedId('ana', 'm1'), key: 'm1' });
    // the same as sending it as `key`, or as `key` and `id` together
    expect((await answer(await app.request('/message', postJson({ ...valid, key: 'm1' })))).body.id).toBe(keyedId('ana', 'm1'));
    expect((await answer(await app.request('/message', postJson({ ...valid, key: 'm1', id: 'm1' })))).body.id).toBe(keyedId('ana', 'm1'));
    expect((await answer(await app.request('/message', postJson({ ...valid, id: 'm1' }, { 'Idempotency-Key': 'm1' })))).body.id).toBe(keyedId('ana', 'm1'));
    expect(published).toHaveLength(4);
  });

  it('POST /message: `id` and `key` (body or header) that differ are a 400 naming id', async () => {
    const { app, published } = build();
    for (const [body, headers] of [
      [{ ...valid, id: 'm1', key: 'm2' }, {}],
      [{ ...valid, id: 'm1' }, { 'Idempotency-Key': 'm2' }],
    ] as const) {
      const res = await answer(await app.request('/message', postJson(body, headers)));
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'validation_failed', fields: [{ field: 'id', message: expect.stringContaining('key') }] });
    }
    expect(published).toHaveLength(0);
  });

  it('GET /messages/since: the page from the reader, the query parsed', async () => {
    const { app, queries } = build();
    const { status, body } = await answer(await app.request('/messages/since?after=5&room=general&limit=7'));
    expect(status).toBe(200);
    expect(body).toEqual({ messages: [], next: 5, hasMore: false, epoch: 'e1' });
    expect(queries).toEqual([{ room: 'general', after: 5, limit: 7 }]);
  });

  it('health and readiness', async () => {
    expect(await answer(await build().app.request('/healthz'))).toEqual({ status: 200, body: { status: 'ok', version: VERSION } });
    expect(await answer(await build().app.request('/readyz'))).toEqual({ status: 200, body: { status: 'ready', checks: { database: 'open' } } });
  });
});

describe('HTTP app (no broker, no store): every error code, exact', () => {
  it('400 invalid_json', async () => {
    const { app, published } = build();
    const res = await app.request('/message', postJson('{"room":'));
    const { status, body } = await answer(res);
    expect(status).toBe(400);
    expect(body.error.code).toBe('invalid_json');
    expect(body.error.message).toMatch(/^The request body is not valid JSON: /);
    expect(await answer(await app.request('/message', { ...postJson(''), body: new Uint8Array([0x7b, 0xff]) }))).toEqual({
      status: 400,
      body: { error: { code: 'invalid_json', message: 'The request body is not valid UTF-8.' } },
    });
    expect(published).toHaveLength(0);
  });

  it('400 validation_failed, naming the fields', async () => {
    const { app, published } = build();
    expect(await answer(await app.request('/message', postJson({ room: 'a b', sender: 'ana', body: 'x' })))).toEqual({
      status: 400,
      body: {
        error: {
          code: 'validation_failed',
          message: 'Invalid room: must be 1-64 characters of A-Z a-z 0-9 _ . : -.',
          fields: [{ field: 'room', message: 'must be 1-64 characters of A-Z a-z 0-9 _ . : -' }],
        },
      },
    });
    expect(await answer(await app.request('/message', postJson({ room: 'general', body: 'x' })))).toEqual({
      status: 400,
      body: { error: { code: 'validation_failed', message: 'Invalid sender: is required.', fields: [{ field: 'sender', message: 'is required' }] } },
    });
    expect(await answer(await app.request('/messages/since'))).toEqual({
      status: 400,
      body: {
        error: {
          code: 'validation_failed',
          message: 'Invalid after|since: exactly one of after and since is required.',
          fields: [{ field: 'after|since', message: 'exactly one of after and since is required' }],
        },
      },
    });
    expect(published).toHaveLength(0);
  });

  it('401 unauthorized, with WWW-Authenticate', async () => {
    const { app } = build({ auth: true });
    for (const headers of [{}, { authorization: 'Bearer not.a.token' }, { authorization: 'Basic abc' }] as Record<string, string>[]) {
      const res = await app.request('/message', postJson(valid, headers));
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
      const { status, body } = await answer(res);
      expect(status).toBe(401);
      expect(body.error.code).toBe('unauthorized');
    }
    expect(await answer(await app.request('/messages/since?after=0'))).toEqual({
      status: 401,
      body: { error: { code: 'unauthorized', message: 'A bearer token is required.' } },
    });
  });

  it('403 forbidden and sender_mismatch', async () => {
    const { app, published } = build({ auth: true });
    const token = await mintToken(SECRET, { sub: 'ana', rooms: ['general'], ttlSeconds: 60 });
    const authorization = `Bearer ${token}`;
    expect(await answer(await app.request('/message', postJson({ room: 'secret', body: 'x' }, { authorization })))).toEqual({
      status: 403,
      body: { error: { code: 'forbidden', message: 'The token does not allow room "secret".', room: 'secret' } },
    });
    expect(await answer(await app.request('/messages/since?after=0&room=secret', { headers: { authorization } }))).toEqual({
      status: 403,
      body: { error: { code: 'forbidden', message: 'The token does not allow room "secret".', room: 'secret' } },
    });
    expect(await answer(await app.request('/message', postJson({ room: 'general', sender: 'bob', body: 'x' }, { authorization })))).toEqual({
      status: 403,
      body: { error: { code: 'sender_mismatch', message: 'sender must be the token subject "ana" (or left out).' } },
    });
    expect(published).toHaveLength(0);
  });

  it('404 not_found', async () => {
    expect(await answer(await build().app.request('/nope'))).toEqual({ status: 404, body: { error: { code: 'not_found', message: 'No endpoint at /nope.' } } });
  });

  it('405 method_not_allowed on every served path, Allow derived from its routes: mounted routers and optional routes too', async () => {
    const app = createApp({
      ...build().deps,
      presence: async () => [],
      routes: [metricsRoutes(new Metrics(), undefined), apiDocRoutes(100)],
    });
    expect(app.routes.filter((r) => r.method !== 'ALL').length).toBeGreaterThan(10);
    for (const [method, path, allow, named] of [
      ['GET', '/message', 'POST', undefined],
      ['DELETE', '/messages/since', 'GET, HEAD', undefined],
      ['POST', '/healthz', 'GET, HEAD', undefined],
      ['PUT', '/readyz', 'GET, HEAD', undefined],
      ['POST', '/ws', 'GET, HEAD', undefined],
      ['POST', '/metrics', 'GET, HEAD', undefined],
      ['DELETE', '/openapi.json', 'GET, HEAD', undefined],
      ['PUT', '/asyncapi.json', 'GET, HEAD', undefined],
      // a route with a parameter is named by its pattern
      ['POST', '/rooms/general/presence', 'GET, HEAD', '/rooms/:room/presence'],
      ['GET', '/rooms/general/read', 'POST', '/rooms/:room/read'],
    ] as const) {
      const res = await app.request(path, { method });
      expect(res.headers.get('allow')).toBe(allow);
      expect(await answer(res)).toEqual({
        status: 405,
        body: { error: { code: 'method_not_allowed', message: `${method} is not allowed on ${named ?? path}; use ${allow}.` } },
      });
    }
  });

  it('409 epoch_mismatch, naming the current epoch', async () => {
    expect(await answer(await build().app.request('/messages/since?after=3&epoch=old'))).toEqual({
      status: 409,
      body: { error: { code: 'epoch_mismatch', message: 'The cursor belongs to an earlier log (the stream was re-created); start over without a cursor.', epoch: 'e1' } },
    });
  });

  it('413 too_large: the body over MAX_MESSAGE_BYTES, and the request over its limit', async () => {
    const { app, published } = build();
    expect(await answer(await app.request('/message', postJson({ ...valid, body: 'é'.repeat(51) })))).toEqual({
      status: 413,
      body: { error: { code: 'too_large', message: 'body is over 100 UTF-8 bytes.', field: 'body', maxBytes: 100 } },
    });
    const res = await app.request('/message', postJson({ ...valid, body: 'x'.repeat(10_000) }));
    expect(res.headers.get('connection')).toBe('close');
    expect(await answer(res)).toEqual({ status: 413, body: { error: { code: 'too_large', message: 'The request body is over 4696 bytes.', maxBytes: 4696 } } });
    expect(published).toHaveLength(0);
  });

  it('415 unsupported_media_type', async () => {
    const res = await build().app.request('/message', postJson(valid, { 'content-type': 'text/plain' }));
    expect(await answer(res)).toEqual({ status: 415, body: { error: { code: 'unsupported_media_type', message: 'Content-Type must be application/json.' } } });
  });

  it('426 upgrade_required on a plain GET /ws', async () => {
    expect(await answer(await build().app.request('/ws'))).toEqual({
      status: 426,
      body: { error: { code: 'upgrade_required', message: 'This endpoint speaks WebSocket only.' } },
    });
  });

  it('429 rate_limited, with Retry-After', async () => {
    const { app, published } = build({ perMinute: 2 });
    for (let i = 0; i < 2; i++) expect((await app.request('/message', postJson(valid))).status).toBe(202);
    const res = await app.request('/message', postJson(valid));
    expect(res.headers.get('retry-after')).toBe('30');
    expect(await answer(res)).toEqual({
      status: 429,
      body: { error: { code: 'rate_limited', message: 'Too many messages from "ana"; retry in 30 s.', retryAfter: 30 } },
    });
    expect(published).toHaveLength(2);
  });

  it('500 internal: an unexpected error says nothing of itself', async () => {
    const { app } = build({
      readPage: () => {
        throw new Error('disk on fire');
      },
    });
    expect(await answer(await app.request('/messages/since?after=0'))).toEqual({ status: 500, body: { error: { code: 'internal', message: 'Internal error.' } } });
  });

  it('503 broker_unavailable, with Retry-After: the broker layer\'s error, mapped at the edge', async () => {
    const { app } = build({
      publish: async () => {
        throw new BrokerUnavailableError('not connected');
      },
    });
    const res = await app.request('/message', postJson(valid));
    expect(res.headers.get('retry-after')).toBe('2');
    expect(await answer(res)).toEqual({
      status: 503,
      body: { error: { code: 'broker_unavailable', message: 'The message broker is unavailable; retry shortly.', reason: 'not connected' } },
    });
  });

  it('503 not_ready, with the checks', async () => {
    expect(await answer(await build({ ready: false }).app.request('/readyz'))).toEqual({
      status: 503,
      body: { error: { code: 'not_ready', message: 'This node is not ready.', checks: { database: 'open' } } },
    });
  });
});

describe('HTTP app: query hygiene and /readyz in token mode (issue 8)', () => {
  it('400 for a `since` that can only be epoch seconds, naming the fix; 0, ms and ISO still pass', async () => {
    const { app } = build();
    for (const s of ['1', '1795300000', '99999999999']) {
      const { status, body } = await answer(await app.request(`/messages/since?since=${s}`));
      expect(status).toBe(400);
      expect(body.error.code).toBe('validation_failed');
      expect(body.error.fields).toEqual([{ field: 'since', message: 'looks like epoch seconds: send epoch milliseconds (seconds x 1000) or an ISO 8601 date-time' }]);
    }
    for (const s of ['0', '100000000000', String(Date.now()), '1970-01-02']) expect((await app.request(`/messages/since?since=${s}`)).status).toBe(200);
  });

  it('400 naming a repeated query parameter, on every GET endpoint', async () => {
    const { app, queries } = build();
    for (const [path, field] of [
      ['/messages/since?after=1&after=2', 'after'],
      ['/messages/since?room=a&room=b&after=0', 'room'],
      ['/messages/before?room=a&room=b', 'room'],
      ['/rooms?user=a&limit=1&limit=2', 'limit'],
      ['/healthz?x=1&x=2', 'x'],
      ['/readyz?x=1&x=2', 'x'],
    ] as const) {
      const { status, body } = await answer(await app.request(path));
      expect(status, path).toBe(400);
      expect(body.error.code).toBe('validation_failed');
      expect(body.error.fields).toEqual([{ field, message: 'is given more than once' }]);
    }
    expect(queries).toEqual([]);
  });

  const readiness = (ok: boolean) => () => ({ ok, checks: { database: 'open', consumer: { lastOffset: 41, lag: 3 }, sockets: 17 }, failing: ok ? [] : ['consumer'] });
  const tokenApp = (ok: boolean) =>
    createApp({
      accept: createAcceptor({ publish: async () => {}, limiter: new RateLimiter(600), maxMessageBytes: 100 }),
      authenticate: (token) => verifyToken(token, SECRET),
      readPage: () => ({ messagesJson: Buffer.from('[]'), next: 0, hasMore: false, epoch: 'e1' }),
      epoch: () => 'e1',
      readBefore: () => ({ messagesJson: Buffer.from('[]'), prev: null, hasMore: false, head: 0, epoch: 'e1' }),
      markRead: async () => ({ room: 'r', user: 'u', seq: 0, status: 'accepted' }),
      listRooms: () => ({ rooms: [] }),
      maxMessageBytes: 100,
      log: createLogger('silent'),
      metricsToken: 'scrape-me',
      readiness: readiness(ok),
    });

  it('/readyz in token mode: anonymous callers see ready or which check fails, no figures; a token or METRICS_TOKEN sees them', async () => {
    expect(await answer(await tokenApp(true).request('/readyz'))).toEqual({ status: 200, body: { status: 'ready' } });
    expect(await answer(await tokenApp(false).request('/readyz'))).toEqual({
      status: 503,
      body: { error: { code: 'not_ready', message: 'This node is not ready.', failing: ['consumer'] } },
    });
    expect(await answer(await tokenApp(true).request('/readyz', { headers: { authorization: 'Bearer not.a.token' } }))).toEqual({ status: 200, body: { status: 'ready' } });
    const full = { status: 'ready', checks: readiness(true)().checks };
    const token = await mintToken(SECRET, { sub: 'ana', rooms: ['general'], ttlSeconds: 60 });
    expect(await answer(await tokenApp(true).request('/readyz', { headers: { authorization: `Bearer ${token}` } }))).toEqual({ status: 200, body: full });
    expect(await answer(await tokenApp(true).request('/readyz', { headers: { authorization: 'Bearer scrape-me' } }))).toEqual({ status: 200, body: full });
  });
});
