import { connect } from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import { LINGER_BYTES } from '../src/http/messages.ts';
import { testScope, type TestNode } from './support/harness.ts';

/** Request deadlines and oversized bodies, against a real server (issue 8). */
const scope = testScope('http-limits');
let node: TestNode;
/** Default deadlines: the 2 s request deadline above would cut a lingering close for its own reason. */
let plain: TestNode;

beforeAll(async () => {
  [node, plain] = await Promise.all([
    scope.startNode({ HTTP_HEADERS_TIMEOUT_MS: '1000', HTTP_REQUEST_TIMEOUT_MS: '2000' }, 'limits.db'),
    scope.startNode({}, 'plain.db'),
  ]);
});

/** Sends `head`, then `drip` every 100 ms until the server closes; resolves with what it answered and when. */
function trickle(head: string, drip: string): Promise<{ answer: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = connect(node.port, '127.0.0.1');
    let answer = '';
    const timer = setInterval(() => {
      if (!socket.destroyed && socket.writable) socket.write(drip);
    }, 100);
    socket.on('connect', () => socket.write(head));
    socket.on('data', (d) => (answer += d.toString('latin1')));
    socket.on('error', () => {}); // a reset is a close too
    socket.on('close', () => {
      clearInterval(timer);
      resolve({ answer, ms: Date.now() - started });
    });
    setTimeout(() => {
      clearInterval(timer);
      socket.destroy();
      reject(new Error(`not cut after 15 s; got ${JSON.stringify(answer)}`));
    }, 15_000).unref();
  });
}

describe('request deadlines (HTTP_HEADERS_TIMEOUT_MS=1000, HTTP_REQUEST_TIMEOUT_MS=2000)', () => {
  it('headers trickled slower than the deadline: 408 and closed within the bound', async () => {
    const { answer, ms } = await trickle('GET /healthz HTTP/1.1\r\nHost: x\r\n', 'X-Slow: y\r\n');
    // Node checks every min(1000, headers timeout) ms: cut by 1 s + 1 s, plus room for a busy machine.
    expect(ms).toBeLessThan(6000);
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(answer).toContain('"code":"request_timeout"');
  });

  it('a body trickled slower than the deadline: 408 and closed within the bound', async () => {
    const head = 'POST /message HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2000\r\n\r\n{"room":"r","sender":"s","body":"';
    const { answer, ms } = await trickle(head, 'a');
    expect(ms).toBeLessThan(7000);
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
  });
});

describe('a body over the limit', () => {
  it('a 10 MB POST is refused from its Content-Length, and a client still writing it reads the 413, 10 times out of 10', async () => {
    const body = Buffer.alloc(10 * 1024 * 1024, 'a');
    for (let i = 0; i < 10; i++) {
      const res = await fetch(`${node.base}/message`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      expect(res.status).toBe(413);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('too_large');
    }
  });
});

/**
 * A POST with a body over the limit, written as a browser or fetch writes it: the headers, then the
 * body in 64 KB pieces, each once the previous one was taken (write callback) and a few ms apart,
 * while reading whatever the server answers. Resolves when the connection is closed, with the
 * bytes read, the body bytes written, and the first socket error (a reset, a write to a closed
 * connection) if any.
 */
function slowOversizedPost(framing: 'content-length' | 'chunked', total: number): Promise<{ answer: string; written: number; error: string | undefined }> {
  return new Promise((resolve) => {
    // allowHalfOpen: the server's half-close after its 413 must not end our side; we go on writing.
    const socket = connect({ port: plain.port, host: '127.0.0.1', allowHalfOpen: true });
    const read: Buffer[] = [];
    let written = 0;
    let error: string | undefined;
    socket.on('data', (d) => read.push(d));
    socket.on('error', (err: NodeJS.ErrnoException) => (error ??= err.code ?? err.message));
    socket.on('close', () => resolve({ answer: Buffer.concat(read).toString('utf8'), written, error }));
    const write = (data: string | Buffer) => new Promise<boolean>((done) => socket.write(data, (err) => done(!err)));
    const piece = Buffer.alloc(64 * 1024, 'a');
    socket.on('connect', async () => {
      const framingHeader = framing === 'chunked' ? 'Transfer-Encoding: chunked' : `Content-Length: ${total}`;
      if (!(await write(`POST /message HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${framingHeader}\r\n\r\n`))) return;
      while (written < total) {
        const n = Math.min(piece.length, total - written);
        const data = framing === 'chunked' ? Buffer.concat([Buffer.from(`${n.toString(16)}\r\n`), piece.subarray(0, n), Buffer.from('\r\n')]) : piece.subarray(0, n);
        if (socket.destroyed || !(await write(data))) return;
        written += n;
        await new Promise((r) => setTimeout(r, 2)); // pacing only: a slow uploader
      }
      if (framing === 'chunked' && !(await write('0\r\n\r\n'))) return;
      socket.end();
    });
  });
}

/** Splits a raw HTTP/1.1 response (one, with Content-Length) into its head and its body. */
function parseResponse(raw: string): { head: string; body: string; declared: number } {
  const at = raw.indexOf('\r\n\r\n');
  const head = at < 0 ? raw : raw.slice(0, at);
  return { head, body: at < 0 ? '' : raw.slice(at + 4), declared: Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1]) };
}

describe('a body over the limit is refused with a lingering close (answer, half-close, discard a bounded amount)', () => {
  it.each(['content-length', 'chunked'] as const)('%s: a client still slowly writing its body reads the whole JSON 413 and can finish writing: no reset', async (framing) => {
    const total = 1024 * 1024; // over the request limit (~28 KB), well under LINGER_BYTES
    const { answer, written, error } = await slowOversizedPost(framing, total);
    expect(error).toBeUndefined();
    expect(written).toBe(total);
    const { head, body, declared } = parseResponse(answer);
    expect(head).toMatch(/^HTTP\/1\.1 413 /);
    expect(head).toMatch(/\r\nconnection: close/i);
    expect(Buffer.byteLength(body)).toBe(declared);
    expect(JSON.parse(body)).toMatchObject({ error: { code: 'too_large' } });
  });

  it.each(['content-length', 'chunked'] as const)('%s: the discarding is bounded: a client that goes on writing is cut, after it had the 413', async (framing) => {
    const total = 4 * LINGER_BYTES;
    const { answer, written } = await slowOversizedPost(framing, total);
    expect(parseResponse(answer).head).toMatch(/^HTTP\/1\.1 413 /);
    expect(written).toBeLessThan(total);
  }, 60_000);
});
