import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, expectStoredOnce, readyz, spawnNode, steadyLoad, stopNode, tempDir, uniqueStream, waitReady, type SpawnedNode } from '../support/harness.ts';
import { findRabbitServer, startPrivateRabbit, type PrivateRabbit } from '../support/rabbit-node.ts';

// A broker of this test's own, so restarting it disturbs nothing else.
describe.skipIf(!findRabbitServer())('RabbitMQ restarted while clients post at a steady rate', () => {
  const dir = tempDir();
  const stream = uniqueStream('brokerrestart');
  let rabbit: PrivateRabbit;
  let nodes: SpawnedNode[] = [];

  beforeAll(async () => {
    rabbit = await startPrivateRabbit();
    const env = { STREAM_NAME: stream, RABBITMQ_URL: rabbit.url, PUBLISH_TIMEOUT_MS: '2000' };
    nodes = await Promise.all([
      spawnNode({ ...env, DATABASE_PATH: `${dir.path}/a.db` }),
      spawnNode({ ...env, DATABASE_PATH: `${dir.path}/b.db` }),
    ]);
    await Promise.all(nodes.map((n) => waitReady(n.base)));
  });
  afterAll(async () => {
    await Promise.all(nodes.map((n) => stopNode(n)));
    await rabbit?.destroy();
    dir.remove();
  });

  it('answers 503 quickly during the outage, reconnects by itself, and stores every 202 once on every node', async () => {
    const load = steadyLoad(nodes.map((n) => n.base), 'br', 10);
    await eventually(() => (load.result.accepted.length >= 100 ? true : undefined));

    await rabbit.kill(); // a crash, not a clean stop
    await eventually(() => (load.result.unavailable.length >= 20 ? true : undefined), 20_000, '503s during the outage');
    for (const n of nodes) expect((await readyz(n.base)).status).toBe(503);

    await rabbit.start();
    await Promise.all(nodes.map((n) => waitReady(n.base, 60_000, n.logs)));
    const before = load.result.accepted.length;
    await eventually(() => (load.result.accepted.length >= before + 100 ? true : undefined), 20_000, 'accepted again after the restart');
    const { accepted, unavailable, failed, other } = await load.stop();

    expect(other).toEqual([]);
    expect(failed).toEqual([]);
    // never a hang: every 503 within the publish deadline plus a little, each with Retry-After
    expect(Math.max(...unavailable.map((u) => u.ms))).toBeLessThan(3000);
    expect(unavailable.every((u) => Number(u.retryAfter) > 0)).toBe(true);

    const [onA, onB] = await Promise.all(nodes.map((n) => expectStoredOnce(n.base, accepted)));
    expect(onA).toEqual(onB);
    for (const n of nodes) expect(n.logs.some((l) => l.msg === 'broker connected' && n.logs.indexOf(l) > 5)).toBe(true);
  }, 120_000);
});
