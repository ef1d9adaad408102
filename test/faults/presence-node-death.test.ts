import { afterAll, describe, expect, it } from 'vitest';
import { brokerProbe, listBindings } from '../support/broker-objects.ts';
import { rabbitUrl, stopNode, testScope, WsClient } from '../support/harness.ts';

const scope = testScope('presencekill');
// Short heartbeats so that the test is quick; the defaults (4 s, 12 s) keep the contract's 15 s.
const FAST = { PRESENCE_HEARTBEAT_MS: '300', PRESENCE_TTL_MS: '1500' };
const clients: WsClient[] = [];
afterAll(() => clients.forEach((c) => c.close()));

async function join(url: string, room: string): Promise<WsClient> {
  const c = await WsClient.connect(url);
  clients.push(c);
  c.send({ type: 'subscribe', room });
  await c.next((f) => f.type === 'presence');
  return c;
}

describe('a node killed without saying goodbye', () => {
  it('its users leave on the other nodes within the TTL, and its queue leaves the broker', async () => {
    const room = 'kill-room';
    const [victim, witness] = await Promise.all([scope.spawnNode(FAST, 'victim.db'), scope.startNode(FAST, 'witness.db')]);
    const ana = await join(`${victim.ws}?user=ana`, room);
    const bob = await join(`${witness.ws}?user=bob`, room);
    expect(bob.frames.find((f) => f.type === 'presence')!.users).toEqual(expect.arrayContaining(['ana', 'bob']));
    await ana.next((f) => f.type === 'join' && f.user === 'bob');

    // Both nodes' queues, as the broker lists them (undefined when rabbitmqctl cannot reach it).
    const listed = listBindings(`${scope.stream}.signals`);

    const killedAt = Date.now();
    await stopNode(victim, 'SIGKILL');
    expect(await bob.next((f) => f.type === 'leave', 15_000)).toEqual({ type: 'leave', room, user: 'ana' });
    expect(Date.now() - killedAt).toBeLessThan(15_000);
    const res = await fetch(`${witness.base}/rooms/${room}/presence`);
    expect(await res.json()).toEqual({ room, users: ['bob'] });

    // The broker dropped the dead node's exclusive queue with its connection; the witness's stays.
    if (listed) {
      const probe = await brokerProbe(rabbitUrl());
      try {
        const queues = [...new Set(listed.filter((b) => b.key === room).map((b) => b.queue))];
        expect(queues).toHaveLength(2);
        const exists: boolean[] = [];
        for (const q of queues) exists.push(await probe.queueExists(q)); // one at a time: a 404 closes the probe's channel
        expect(exists.filter(Boolean)).toHaveLength(1);
      } finally {
        await probe.close();
      }
    }
  }, 60_000);
});
