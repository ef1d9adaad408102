/**
 * Server CPU per relayed typing frame with many sockets in one room, and message delivery
 * latency with and without a typing storm in the same room.
 *
 *   node --import tsx test/bench/typing-fanout.ts [sockets=1000] [typers=500]
 *
 * One server process (as `npm start`), `sockets` open-mode sockets (each its own user) in one
 * room. Cost: 20 rounds of 5 distinct users typing at once (distinct users: the 2 s throttle is
 * per user and room; 5: the room's burst), each relayed to the other sockets-1; the server's
 * CPU time (from /proc) divided by the frames relayed gives the cost per typing relayed and per
 * frame delivered. Storm: `typers` more users type at once; messages posted meanwhile are timed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { processTicks, TICK_MS } from './cpu-usage.ts';
import { deleteStreams } from './rabbit.ts';
import { ServerProcess } from './server-process.ts';

const sockets = Number(process.argv[2] ?? 1000);
const typers = Math.min(Number(process.argv[3] ?? 500), sockets);
const rabbitmqUrl = process.env.RABBITMQ_URL || 'amqp://guest:guest@127.0.0.1:5672';
const room = 'bench-typing';
const stream = `bench.typing.${Date.now().toString(36)}`;
const dir = mkdtempSync(join(tmpdir(), 'typing-bench-'));

const server = await ServerProcess.start({
  databasePath: join(dir, 'chat.db'),
  streamName: stream,
  rabbitmqUrl,
  env: { LOG_LEVEL: 'warn', WS_MAX_SOCKETS_PER_IP: '100000', WS_MAX_SOCKETS_PER_USER: '100000' },
});

let typingSeen = 0;
const messageSeen = new Map<string, number>();
const clients: WebSocket[] = [];
const open = (i: number) =>
  new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(`${server.wsUrl}?user=u${i}`);
    ws.once('error', reject);
    ws.on('message', (data) => {
      const text = data.toString();
      if (text.includes('"type":"typing"')) typingSeen++;
      else if (i === 0 && text.includes('"type":"message"')) {
        const body = JSON.parse(text).body as string;
        if (!messageSeen.has(body)) messageSeen.set(body, performance.now());
      } else if (text.includes('"type":"presence"')) ws.emit('subscribed-presence');
    });
    ws.once('open', () => {
      ws.send(JSON.stringify({ type: 'subscribe', room }));
      ws.once('subscribed-presence', () => resolve(ws));
    });
  });

const until = async (cond: () => boolean, timeoutMs: number, what: string) => {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

/** Posts `n` messages one after the other; returns each one's POST -> delivered-to-a-socket latency (ms). */
async function messageLatencies(tag: string, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let k = 0; k < n; k++) {
    const body = `${tag}-${k}`;
    const t0 = performance.now();
    // A fresh connection per post: a pooled one may have been closed by the server's keep-alive timeout meanwhile.
    const res = await fetch(`${server.base}/message`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', connection: 'close' },
      body: JSON.stringify({ room, sender: 'poster', body }),
    });
    if (res.status !== 202) throw new Error(`POST ${res.status}`);
    await until(() => messageSeen.has(body), 10_000, `message ${body}`);
    out.push(messageSeen.get(body)! - t0);
  }
  return out;
}
const p50 = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
const max = (xs: number[]) => Math.max(...xs);

try {
  for (let i = 0; i < sockets; i += 100) clients.push(...(await Promise.all(Array.from({ length: Math.min(100, sockets - i) }, (_, k) => open(i + k)))));
  console.log(`${sockets} sockets subscribed to ${room}`);
  await new Promise((r) => setTimeout(r, 1000)); // let join frames settle

  const quiet = await messageLatencies('quiet', 20);

  // Cost: rounds of `burst` distinct users typing at once (within the room's budget, so every
  // one is relayed to the other sockets-1), a little over 2 s apart so the budget refills.
  const burst = 5; // the room's typing burst (LIVE_SIGNAL_DEFAULTS)
  const rounds = 20;
  let used = 0;
  let relayed = 0;
  typingSeen = 0;
  const ticks0 = processTicks(server.pid)!;
  for (let k = 0; k < rounds; k++) {
    const roundStart = performance.now();
    for (let i = 0; i < burst; i++) clients[used++]!.send(JSON.stringify({ type: 'typing', room }));
    relayed += burst;
    await until(() => typingSeen >= relayed * (sockets - 1), 60_000, `${relayed * (sockets - 1)} typing frames`);
    await new Promise((r) => setTimeout(r, Math.max(0, 2100 - (performance.now() - roundStart))));
  }
  const serverMs = (processTicks(server.pid)! - ticks0) * TICK_MS;
  const delivered = typingSeen;

  // Storm: `typers` more distinct users type at once. The room's budget relays a burst and drops
  // the rest; messages posted meanwhile must not wait behind it.
  typingSeen = 0;
  const stormTicks0 = processTicks(server.pid)!;
  for (let i = 0; i < typers && used < sockets; i++) clients[used++]!.send(JSON.stringify({ type: 'typing', room }));
  const storm = await messageLatencies('storm', 20);
  const stormServerMs = (processTicks(server.pid)! - stormTicks0) * TICK_MS;

  console.log(
    JSON.stringify(
      {
        machine: `${(await import('node:os')).cpus().length} cores, ${(await import('node:os')).cpus()[0]?.model}`,
        sockets,
        typingRelayed: relayed,
        framesDelivered: delivered,
        serverCpuMs: serverMs,
        serverCpuPerTypingRelayedMs: +(serverMs / relayed).toFixed(3),
        serverCpuPerFrameDeliveredUs: +((serverMs * 1000) / delivered).toFixed(2),
        storm: { typingIn: Math.min(typers, sockets - rounds * burst), framesDelivered: typingSeen, serverCpuMs: stormServerMs },
        messageLatencyQuietMs: { p50: +p50(quiet).toFixed(1), max: +max(quiet).toFixed(1) },
        messageLatencyDuringStormMs: { p50: +p50(storm).toFixed(1), max: +max(storm).toFixed(1) },
      },
      null,
      2,
    ),
  );
} catch (err) {
  const tail = (server as unknown as { stderrTail: string }).stderrTail;
  console.error(`failed: ${(err as Error).message}; server exit ${server.proc.exitCode ?? server.proc.signalCode ?? 'still running'}; stderr: ${tail.slice(-1500)}`);
  process.exitCode = 1;
} finally {
  for (const ws of clients) ws.terminate();
  await server.stop();
  await deleteStreams(rabbitmqUrl, [stream]).catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}
