/**
 * Publish-confirm latency and the single-stream write ceiling on a three-node RabbitMQ cluster
 * (stream replicated three ways) against a single node, both private and started here from the
 * installed rabbitmq-server; then the failover as a publisher sees it: SIGKILL the leader and
 * time until a publish is confirmed again.
 *
 *   npm run bench:cluster            (BENCH_CLUSTER_MESSAGES=2000 by default)
 *
 * Latency: one publish at a time, each awaited (what one POST waits for). Ceiling: a window of
 * 500 publishes in flight, 200-byte bodies, confirms awaited: the stream's accepted writes per
 * second on this machine. Prints one JSON object.
 */
import { Connection } from 'rabbitmq-client';
import { startRabbitCluster } from '../support/rabbit-cluster.ts';
import { startPrivateRabbit } from '../support/rabbit-node.ts';
import { distribution, perSecond } from './stats.ts';

const N = Number(process.env.BENCH_CLUSTER_MESSAGES ?? 2000);
const WINDOW = 500;
const BODY = Buffer.alloc(200, 'x');

async function connect(url: string | string[]): Promise<Connection> {
  const urls = Array.isArray(url) ? url : [url];
  const conn = new Connection({ url: urls[0], hosts: urls.map((u) => new URL(u).host), retryLow: 100, retryHigh: 500, noDelay: true });
  conn.on('error', () => {});
  await conn.onConnect(30_000);
  return conn;
}

async function measure(conn: Connection, stream: string, replicas?: number) {
  await conn.queueDeclare({
    queue: stream,
    durable: true,
    arguments: { 'x-queue-type': 'stream', ...(replicas && { 'x-initial-cluster-size': replicas }) },
  });
  const pub = conn.createPublisher({ confirm: true, maxAttempts: 1 });
  for (let i = 0; i < 200; i++) await pub.send({ routingKey: stream, durable: true }, BODY); // warm-up
  const lat: number[] = [];
  for (let i = 0; i < N; i++) {
    const t = performance.now();
    await pub.send({ routingKey: stream, durable: true }, BODY);
    lat.push(performance.now() - t);
  }
  const total = N * 10;
  const t0 = performance.now();
  let sent = 0;
  const lane = async () => {
    while (sent < total) {
      sent++;
      await pub.send({ routingKey: stream, durable: true }, BODY);
    }
  };
  await Promise.all(Array.from({ length: WINDOW }, lane));
  const ms = performance.now() - t0;
  await pub.close();
  return { confirmLatencyMs: distribution(lat), ceiling: { messages: total, window: WINDOW, perSecond: perSecond(total, ms) } };
}

async function failover(cluster: Awaited<ReturnType<typeof startRabbitCluster>>, stream: string) {
  const leader = await cluster.streamLeader(stream);
  const others = cluster.nodes.filter((n) => n !== leader).map((n) => n.url);
  const conn = await connect(others);
  const pub = conn.createPublisher({ confirm: true, maxAttempts: 1 });
  await pub.send({ routingKey: stream, durable: true }, BODY);
  const killed = performance.now();
  await leader.kill();
  // Publish every 50 ms, each with a 1 s deadline; the first confirm ends the outage.
  for (;;) {
    const ok = await Promise.race([
      pub.send({ routingKey: stream, durable: true }, BODY).then(() => true, () => false),
      new Promise<boolean>((r) => setTimeout(() => r(false), 1000)),
    ]);
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const confirmedAgainMs = Math.round(performance.now() - killed);
  const t = performance.now();
  const newLeader = await cluster.streamLeader(stream);
  await pub.close().catch(() => {});
  await conn.close();
  return { killed: leader.name, newLeader: newLeader.name, confirmedAgainMs, leaderQueryMs: Math.round(performance.now() - t) };
}

const single = await startPrivateRabbit();
let out: Record<string, unknown> = {};
try {
  const conn = await connect(single.url);
  out.singleNode = await measure(conn, 'bench.single');
  await conn.close();
} finally {
  await single.destroy();
}
const t0 = Date.now();
const cluster = await startRabbitCluster();
try {
  out.clusterFormedMs = Date.now() - t0;
  const conn = await connect(cluster.urls[0]!);
  out.cluster = await measure(conn, 'bench.cluster', 3);
  await conn.close();
  out.failover = await failover(cluster, 'bench.cluster');
} finally {
  await cluster.destroy();
}
out = { messages: N, bodyBytes: BODY.length, ...out };
console.log(JSON.stringify(out, null, 2));
