import { beforeAll, describe, expect, it, vi } from 'vitest';
import { testScope, WsClient, type TestNode } from './support/harness.ts';

const scope = testScope('wsip');
let node: TestNode;

beforeAll(async () => {
  node = await scope.startNode({ WS_MAX_SOCKETS_PER_IP: '3' }, 'wsip.db');
});

/** A socket the server kept: it answers a subscribe. */
const openSocket = async (): Promise<WsClient> => {
  const c = await WsClient.connect(node.ws);
  c.send({ type: 'subscribe', room: 'ip' });
  await c.next((f) => f.type === 'subscribed');
  return c;
};

describe('WS_MAX_SOCKETS_PER_IP (open mode)', () => {
  it('closes the (N+1)th concurrent socket from one address with 4429; a closed one frees its slot', async () => {
    const open = [await openSocket(), await openSocket(), await openSocket()];
    const extra = await WsClient.connect(node.ws);
    expect(await extra.closed).toEqual({ code: 4429, reason: 'too many sockets from this address' });
    open[0]!.close();
    await open[0]!.closed;
    // the server counts the slot free once it has seen the close too
    const again = await vi.waitFor(openSocket, { timeout: 5000, interval: 50 });
    const over = await WsClient.connect(node.ws);
    expect((await over.closed).code).toBe(4429);
    again.close();
    open[1]!.close();
    open[2]!.close();
  });
});
