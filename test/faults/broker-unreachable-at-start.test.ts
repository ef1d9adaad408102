import { describe, expect, it } from 'vitest';
import { post, readyz, stopNode, testScope, waitReady } from '../support/harness.ts';
import { freePort } from '../support/rabbit-node.ts';
import { startTcpProxy } from '../support/tcp-proxy.ts';

const scope = testScope('nobroker');
const { stream, dir } = scope;

describe('starting while the broker is unreachable', () => {
  it('keeps retrying with a clear log line and /readyz 503, then comes up by itself', async () => {
    const port = await freePort();
    const node = await scope.spawnNode({ STREAM_NAME: stream, DATABASE_PATH: `${dir}/n.db`, RABBITMQ_URL: `amqp://guest:guest@127.0.0.1:${port}` });
    await node.waitForLog((l) => l.msg === 'broker unreachable; retrying');
    const r = await readyz(node.base);
    expect(r.status).toBe(503);
    expect(r.checks.broker).toBe('disconnected');
    const res = await post(node.base, { room: 'r', sender: 'ana', body: 'too early' });
    expect(res.status).toBe(503);
    expect((await fetch(`${node.base}/healthz`)).status).toBe(200);
    // several attempts later it is still alive
    await node.waitForLog(() => node.logs.filter((l) => l.msg === 'broker unreachable; retrying').length >= 2, 20_000);
    expect(node.proc.exitCode).toBeNull();

    // the broker appears on that port
    const broker = new URL(process.env.RABBITMQ_URL || 'amqp://guest:guest@127.0.0.1:5672');
    const proxy = await startTcpProxy(Number(broker.port || 5672), broker.hostname, port);
    try {
      await waitReady(node.base, 30_000);
      expect((await post(node.base, { room: 'r', sender: 'ana', body: 'now' })).status).toBe(202);
    } finally {
      await stopNode(node);
      await proxy.close();
    }
  }, 60_000);
});
