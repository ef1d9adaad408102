import { connect } from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import { testScope, type TestNode } from './support/harness.ts';

/** Request deadlines and oversized bodies, against a real server (issue 8). */
const scope = testScope('http-limits');
let node: TestNode;

beforeAll(async () => {
  node = await scope.startNode({ HTTP_HEADERS_TIMEOUT_MS: '1000', HTTP_REQUEST_TIMEOUT_MS: '2000' }, 'limits.db');
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
