import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deleteStream, eventually, expectStoredOnce, readyz, spawnNode, steadyLoad, stopNode, tempDir, uniqueStream, waitReady, type SpawnedNode } from '../support/harness.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';

const stream = uniqueStream('link');
const dir = tempDir();
let proxy: TcpProxy;
let node: SpawnedNode;
let witness: SpawnedNode;

beforeAll(async () => {
  const broker = new URL(process.env.RABBITMQ_URL || 'amqp://guest:guest@127.0.0.1:5672');
  proxy = await startTcpProxy(Number(broker.port || 5672), broker.hostname);
  const viaProxy = `amqp://${broker.username}:${broker.password}@127.0.0.1:${proxy.port}`;
  [node, witness] = await Promise.all([
    spawnNode({ STREAM_NAME: stream, DATABASE_PATH: `${dir.path}/proxied.db`, RABBITMQ_URL: viaProxy, RABBITMQ_HEARTBEAT_SECONDS: '2', PUBLISH_TIMEOUT_MS: '1000' }),
    spawnNode({ STREAM_NAME: stream, DATABASE_PATH: `${dir.path}/witness.db` }),
  ]);
  await waitReady(node.base);
});
afterAll(async () => {
  await Promise.all([node, witness].filter(Boolean).map((n) => stopNode(n)));
  await proxy?.close();
  await deleteStream(stream);
  dir.remove();
});

describe('the TCP link to the broker', () => {
  it('cut: the node reconnects and loses nothing', async () => {
    const load = steadyLoad([node.base], 'cut', 10);
    await eventually(() => (load.result.accepted.length >= 50 ? true : undefined));
    const connectedBefore = node.logs.filter((l) => l.msg === 'broker connected').length;
    proxy.cut();
    await eventually(() => (node.logs.filter((l) => l.msg === 'broker connected').length > connectedBefore ? true : undefined), 15_000, 'a reconnect');
    await waitReady(node.base);
    const before = load.result.accepted.length;
    await eventually(() => (load.result.accepted.length >= before + 50 ? true : undefined));
    const { accepted, other } = await load.stop();
    expect(other).toEqual([]);
    const onNode = await expectStoredOnce(node.base, accepted);
    expect(onNode).toEqual(await expectStoredOnce(witness.base, accepted));
  }, 60_000);

  it('stalled: publishes answer 503 within the deadline, heartbeats notice the dead link, the node recovers', async () => {
    const load = steadyLoad([node.base], 'stall', 20);
    await eventually(() => (load.result.accepted.length >= 20 ? true : undefined));
    proxy.stall();
    const stalledAt = Date.now();
    // Nothing is closed: only missed heartbeats can tell the node its link is dead.
    await eventually(async () => ((await readyz(node.base)).checks.broker === 'disconnected' ? true : undefined), 15_000, 'the node to notice');
    expect(Date.now() - stalledAt).toBeLessThan(8000);
    await eventually(() => (load.result.unavailable.length >= 5 ? true : undefined), 10_000, '503s while stalled');
    proxy.resume();
    await waitReady(node.base, 30_000, node.logs);
    const before = load.result.accepted.length;
    await eventually(() => (load.result.accepted.length >= before + 20 ? true : undefined), 20_000);
    const { accepted, unavailable, other, failed } = await load.stop();
    expect(other).toEqual([]);
    expect(failed).toEqual([]);
    expect(Math.max(...unavailable.map((u) => u.ms))).toBeLessThan(2500);
    const onNode = await expectStoredOnce(node.base, accepted);
    expect(onNode).toEqual(await expectStoredOnce(witness.base, accepted));
  }, 90_000);
});
