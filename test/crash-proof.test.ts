import { connect } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testScope, WsClient, type SpawnedNode } from './support/harness.ts';

// The node runs in its own process: "stays up" means that process never exits.
const scope = testScope('crash');
let node: SpawnedNode;
let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;

beforeAll(async () => {
  node = await scope.spawnNode({}, 'crash.db');
  void node.exited.then((e) => (exited = e));
});

const alive = async () => {
  expect(exited, `the node exited: ${JSON.stringify(exited)}; last logs ${JSON.stringify(node.logs.slice(-3))}`).toBeUndefined();
  expect((await fetch(`${node.base}/healthz`)).status).toBe(200);
};

afterAll(async () => {
  // Nothing the fuzzing did was allowed to escape a handler, even contained ones are bugs to see.
  const contained = (node?.logs ?? []).filter((l) => l.msg === 'handler failed; contained');
  expect(contained.map((l) => l.where)).toEqual([]);
});

const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);

/** Sends `frame`, then a ping; resolves with every frame answered up to the pong, or the close code. */
async function exchange(frame: string | Buffer): Promise<{ frames: Record<string, unknown>[]; closed?: number }> {
  const c = await WsClient.connect(node.ws);
  c.ws.send(frame, { binary: Buffer.isBuffer(frame) });
  c.send({ type: 'ping' });
  const outcome = await Promise.race([c.next((f) => f.type === 'pong', 10_000).then(() => undefined), c.closed.then((e) => e.code)]);
  c.ws.terminate();
  return { frames: c.frames, closed: outcome };
}

describe('one frame cannot stop the process', () => {
  it('{"type": <array nested 6000 deep>} is answered unknown_type and the node stays up', async () => {
    const { frames, closed } = await exchange(`{"type":${nested(6000)}}`);
    expect(closed).toBeUndefined();
    expect(frames[0]).toMatchObject({ type: 'error', code: 'unknown_type' });
    expect(String(frames[0]!.message)).toContain('an array');
    await alive();
  });

  it.each([
    ['room', (d: string) => `{"type":"subscribe","room":${d}}`],
    ['after', (d: string) => `{"type":"subscribe","room":"r","after":${d}}`],
    ['body', (d: string) => `{"type":"publish","room":"r","sender":"a","body":${d}}`],
    ['a field of its own', (d: string) => `{"type":"publish","room":"r","sender":"a","body":"b","x":${d}}`],
    ['token', (d: string) => `{"type":"auth","token":${d}}`],
  ])('a value nested 6000 deep as %s is answered with an error frame', async (_name, make) => {
    const { frames, closed } = await exchange(make(nested(6000)));
    expect(closed).toBeUndefined();
    expect(frames.map((f) => f.type)).toContain('pong');
    await alive();
  });

  it('a POST whose body nests 6000 deep is a JSON 400', async () => {
    const res = await fetch(`${node.base}/message`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"room":"r","sender":"a","body":${nested(6000)}}` });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('validation_failed');
    await alive();
  });
});

// Property-based: whatever a client sends, the node answers with JSON (an error or a result) or a
// close code, and stays up. Bounded in runs and time so that it costs a few seconds of `npm test`.
const FUZZ = { numRuns: 60, interruptAfterTimeLimit: 4000, seed: Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31) };

const deep = fc.integer({ min: 1, max: 6000 }).map(nested);
// Values as JSON text: a value nested thousands deep cannot go through JSON.stringify (that is the bug).
const jsonish = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v) ?? 'null'),
  deep,
  fc.string({ unit: 'binary' }).map((v) => JSON.stringify(v)),
  fc.constantFrom('null', '-1', '9007199254740993', '1e308', '""', '"r"', '{"__proto__":{"x":1}}'),
);
const quoted = (...names: string[]) => fc.constantFrom(...names.map((n) => JSON.stringify(n)));
const FIELDS = {
  type: fc.oneof(quoted('subscribe', 'unsubscribe', 'publish', 'auth', 'ping', 'read', 'typing', '__proto__', 'constructor'), jsonish),
  room: fc.oneof(quoted('fuzz', 'général', 'r'.repeat(65)), jsonish),
  after: jsonish,
  last: jsonish,
  epoch: jsonish,
  sender: fc.oneof(quoted('ana', 'a\u202eb'), jsonish),
  body: fc.oneof(quoted('hi'), jsonish),
  key: fc.oneof(quoted('k-1'), jsonish),
  token: jsonish,
};
/** A JSON object text with some of the fields (as raw JSON texts); `type` is optional when `withType` is false. */
const objectText = (withType: boolean) =>
  fc.record(FIELDS, { requiredKeys: withType ? ['type'] : [] }).map((o) => `{${Object.entries(o).map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`);
const frameText = fc.oneof(
  objectText(true),
  deep.map((d) => `{"type":${d}}`),
  fc.string({ unit: 'binary', maxLength: 200 }),
  jsonish,
);

describe('fuzz: the node stays up and answers in JSON or with a close code', () => {
  it('WebSocket frames', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(frameText, fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a))), async (frame) => {
        const { frames, closed } = await exchange(frame);
        for (const f of frames) {
          expect(typeof f.type).toBe('string');
          if (f.type === 'error') expect(typeof f.code === 'string' && typeof f.message === 'string').toBe(true);
        }
        // A publish is answered after the broker (or the acceptor's promise) settles, so its
        // error frame may follow the pong of a ping sent after it: the pong need not be last.
        if (closed === undefined) expect(frames.some((f) => f.type === 'pong')).toBe(true);
        else expect(closed).toBeGreaterThanOrEqual(1000);
      }),
      FUZZ,
    );
    await alive();
  });

  it('POST /message bodies and content types', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(objectText(false), frameText),
        fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain', 'application/json;;', ''),
        async (body, type) => {
          const res = await fetch(`${node.base}/message`, { method: 'POST', headers: type ? { 'content-type': type } : {}, body });
          expect(res.headers.get('content-type')).toMatch(/^application\/json/);
          const json = (await res.json()) as { error?: { code: unknown; message: unknown }; id?: unknown };
          if (res.status === 202) expect(typeof json.id).toBe('string');
          else expect([400, 403, 409, 413, 415]).toContain(res.status), expect(typeof json.error?.code).toBe('string');
        },
      ),
      FUZZ,
    );
    await alive();
  });

  it('query strings of GET /messages/since', async () => {
    const param = fc.tuple(fc.constantFrom('room', 'after', 'since', 'limit', 'epoch', 'x', ''), fc.oneof(fc.string(), fc.nat().map(String), fc.constantFrom('0', '1', '1700000000', '-1', '1e3', '2026-01-01')));
    await fc.assert(
      fc.asyncProperty(fc.array(param, { maxLength: 5 }), async (params) => {
        const q = params.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
        const res = await fetch(`${node.base}/messages/since?${q}`);
        expect(res.headers.get('content-type')).toMatch(/^application\/json/);
        expect([200, 400, 409]).toContain(res.status);
        await res.arrayBuffer();
      }),
      FUZZ,
    );
    await alive();
  });

  it('raw request heads (any bytes in the request line and headers)', async () => {
    const headerChars = fc.string({ unit: 'binary-ascii', maxLength: 100 });
    const head = fc.oneof(
      fc.tuple(fc.constantFrom('GET', 'POST', 'PUT', 'G T', ''), fc.constantFrom('/healthz', '/message', '/ws', '/x', '*', ''), fc.array(fc.tuple(headerChars, headerChars), { maxLength: 4 })).map(
        ([m, p, hs]) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${hs.map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`,
      ),
      headerChars.map((s) => `${s}\r\n\r\n`),
    );
    await fc.assert(
      fc.asyncProperty(head, async (text) => {
        const answer = await rawRequest(text);
        if (answer === '') return; // closed without an answer: allowed for bytes that are not HTTP at all
        expect(answer).toMatch(/^HTTP\/1\.1 \d{3} /);
        const [headers, body = ''] = answer.split('\r\n\r\n');
        if (body !== '') {
          expect(headers).toMatch(/content-type: application\/json/i);
          expect(() => JSON.parse(body)).not.toThrow();
        }
      }),
      FUZZ,
    );
    await alive();
  });
});

/** Writes raw bytes, half-closes, and returns whatever the server answered before closing. */
function rawRequest(text: string): Promise<string> {
  return new Promise((resolve) => {
    const sock = connect(node.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', () => {});
    sock.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    sock.write(Buffer.from(text, 'latin1'));
    sock.end();
    setTimeout(() => sock.destroy(), 3000).unref();
  });
}
