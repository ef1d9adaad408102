import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestNode, tempDir, uniqueStream, waitReady, WsClient, type TestNode } from '../support/harness.ts';
import { findRabbitServer, startPrivateRabbit, type PrivateRabbit } from '../support/rabbit-node.ts';

// A broker of this test's own, so restarting it disturbs nothing else.
describe.skipIf(!findRabbitServer())('typing and presence across a broker restart', () => {
  const dir = tempDir();
  const stream = uniqueStream('signalsbounce');
  let rabbit: PrivateRabbit;
  let a: TestNode;
  let b: TestNode;
  const clients: WsClient[] = [];

  beforeAll(async () => {
    rabbit = await startPrivateRabbit();
    // A TTL shorter than the outage: the nodes forget each other's users meanwhile, so presence
    // comes back only if it is re-announced.
    const env = { STREAM_NAME: stream, RABBITMQ_URL: rabbit.url, RABBITMQ_HEARTBEAT_SECONDS: '2', PRESENCE_HEARTBEAT_MS: '300', PRESENCE_TTL_MS: '1500' };
    [a, b] = await Promise.all([startTestNode({ ...env, DATABASE_PATH: `${dir.path}/a.db` }), startTestNode({ ...env, DATABASE_PATH: `${dir.path}/b.db` })]);
    await Promise.all([waitReady(a.base), waitReady(b.base)]);
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await Promise.all([a, b].filter(Boolean).map((n) => n.stop()));
    await rabbit?.destroy();
    dir.remove();
  });

  it('works again once the broker is back, without a restart, and presence is re-announced', async () => {
    const room = 'bounce';
    const ana = await WsClient.connect(`${a.ws}?user=ana`);
    const bob = await WsClient.connect(`${b.ws}?user=bob`);
    clients.push(ana, bob);
    ana.send({ type: 'subscribe', room });
    await ana.next((f) => f.type === 'presence');
    bob.send({ type: 'subscribe', room });
    expect((await bob.next((f) => f.type === 'presence')).users).toEqual(expect.arrayContaining(['ana', 'bob']));

    await rabbit.stop();
    // Cut off, each node knows only its own users once the TTL passes.
    expect(await bob.next((f) => f.type === 'leave', 20_000)).toEqual({ type: 'leave', room, user: 'ana' });
    await rabbit.start();
    await Promise.all([waitReady(a.base, 60_000), waitReady(b.base, 60_000)]);

    // Re-announced after the reconnect: ana is back on b, bob on a, with no client doing anything.
    expect(await bob.next((f) => f.type === 'join' && f.user === 'ana', 20_000)).toEqual({ type: 'join', room, user: 'ana' });
    const presence = async (n: TestNode) => ((await (await fetch(`${n.base}/rooms/${room}/presence`)).json()) as { users: string[] }).users;
    for (const n of [a, b]) {
      await eventually(async () => ((await presence(n)).join() === 'ana,bob' ? true : undefined), 10_000, `both users present on ${n.base}`);
    }

    // The room is bound again: typing crosses.
    ana.send({ type: 'typing', room });
    expect(await bob.next((f) => f.type === 'typing', 10_000)).toEqual({ type: 'typing', room, user: 'ana' });
  }, 120_000);
});
