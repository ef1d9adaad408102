import type { Socket } from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { eventually, post, testScope, WsClient, type TestNode } from './support/harness.ts';

const scope = testScope('slow');
// Two nodes, so that each behaviour is the only thing that can close its socket: on `node` the
// ping reaper (default 30 s) cannot close the stalled reader within the test, only the buffer
// bound can; on `reaper` pings run every second and the buffer is never at issue.
let node: TestNode;
let reaper: TestNode;

beforeAll(async () => {
  [node, reaper] = await Promise.all([
    scope.startNode({ WS_MAX_BUFFERED_BYTES: String(1024 * 1024) }, 'slow.db'),
    scope.startNode({ WS_PING_INTERVAL_MS: '1000' }, 'reaper.db'),
  ]);
});

const socketCount = async () => ((await (await fetch(`${node.base}/readyz`)).json()) as { checks: { sockets: number } }).checks.sockets;

describe('sockets that cost too much are closed', () => {
  it('a socket that never reads is closed once its buffer passes the bound; others in the room are unaffected', async () => {
    const healthy = await WsClient.connect(node.ws);
    const stalled = await WsClient.connect(node.ws);
    for (const c of [healthy, stalled]) {
      c.send({ type: 'subscribe', room: 'busy' });
      await c.next((f) => f.type === 'subscribed');
    }
    (stalled.ws as unknown as { _socket: Socket })._socket.pause(); // reads nothing from here on
    expect(await socketCount()).toBe(2);
    // The healthy socket reads in this (busy) test process: rounds of 25 posts (100 KB) stay far
    // below the 1 MiB bound even when this process is descheduled for a while, so only the
    // stalled socket can reach it.
    let healthyClose: number | undefined;
    void healthy.closed.then((c) => (healthyClose = c.code));

    const body = 'x'.repeat(4000);
    let sent = 0;
    // Post until the server gives up on the stalled socket (bounded: 40 MB at most).
    await eventually(async () => {
      const batch = [];
      for (let i = 0; i < 25; i++) batch.push(post(node.base, { room: 'busy', sender: 'load', body, key: `busy-${sent + i}` }));
      for (const res of await Promise.all(batch)) expect(res.status).toBe(202);
      sent += 25;
      if (sent > 10_000) throw new Error('the stalled socket was never closed');
      return (await socketCount()) === 1 ? true : undefined;
    }, 60_000, 'the stalled socket to be closed');

    expect(healthyClose).toBeUndefined();
    await healthy.until(() => healthy.messages().length === sent || healthyClose !== undefined || undefined, 60_000, 'all messages on the healthy socket');
    expect(healthyClose).toBeUndefined();
    expect(healthy.messages()).toHaveLength(sent);
    expect(new Set(healthy.messages().map((m) => m.id)).size).toBe(sent);
    healthy.close();
  }, 150_000);

  it('a peer that stops answering pings is dropped', async () => {
    const silent = await WsClient.connect(reaper.ws, { autoPong: false });
    const { code } = await silent.closed;
    expect(code).toBe(1006); // terminated, no closing handshake
    expect(silent.ws.readyState).toBe(WebSocket.CLOSED);
  });
});
