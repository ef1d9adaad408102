/**
 * The replay-amplification attack of issue 8 (item 2), measured: a room of `--messages` messages
 * of `--bytes` bytes, and `--abusers` sockets that each re-send
 * `{"type":"subscribe","room":R,"after":0}` every 20 ms and read whatever comes (reconnecting when
 * closed, unless `--reconnect off`). Meanwhile a probe, in this process, times other clients:
 * `GET /messages/since` of another room, and a POST -> `message` frame round trip on a socket
 * subscribed to that room. The abusers run in a child process, so the probe's timings are not
 * its own event loop's.
 *
 *   node --import tsx test/bench/replay-attack.ts [--abusers 10] [--messages 2000] [--bytes 4096]
 *     [--seconds 20] [--reconnect on|off] [--addresses distinct|one]
 *   (RABBITMQ_URL: the broker, default the local one)
 *
 * `--addresses distinct` (the default) connects abuser i from 127.0.0.(10+i), so that the ten are
 * ten clients to the server (each with its own replay budget); `one`: all from 127.0.0.1.
 *
 * Prints the probe's latency (p50/p99/max), the server's peak RSS, its CPU time, what the abusers
 * received, and the load average before and after.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { nowMs, sleep, waitFor } from './clock.ts';
import { RssSampler, steadyRss } from './memory.ts';
import { deleteStreams } from './rabbit.ts';
import { ServerProcess } from './server-process.ts';
import { distribution } from './stats.ts';

const ROOM = 'attack';
const PROBE_ROOM = 'probe';

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

interface AbuseResult {
  sockets: number;
  bytes: number;
  closes: Record<string, number>;
  errorFrames: number;
}

/** The child: `count` sockets re-subscribing every 20 ms for `seconds`, reading everything. */
async function abuse(url: string, count: number, seconds: number, reconnect: boolean, distinct: boolean): Promise<void> {
  const result: AbuseResult = { sockets: 0, bytes: 0, closes: {}, errorFrames: 0 };
  const end = Date.now() + seconds * 1000;
  const open = (i: number) => {
    if (Date.now() >= end) return;
    result.sockets++;
    const ws = new WebSocket(url, distinct ? { localAddress: `127.0.0.${10 + i}` } : {});
    let timer: NodeJS.Timeout | undefined;
    const subscribe = () => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify({ type: 'subscribe', room: ROOM, after: 0 }));
    ws.on('open', () => {
      subscribe();
      timer = setInterval(subscribe, 20);
    });
    ws.on('message', (data: Buffer) => {
      result.bytes += data.length;
      if (data.subarray(0, 15).toString() === '{"type":"error"') result.errorFrames++;
    });
    ws.on('error', () => {});
    ws.on('close', (code) => {
      clearInterval(timer);
      result.closes[code] = (result.closes[code] ?? 0) + 1;
      if (reconnect) setImmediate(() => open(i));
    });
    setTimeout(() => ws.terminate(), Math.max(0, end - Date.now())).unref();
  };
  for (let i = 0; i < count; i++) open(i);
  await sleep(seconds * 1000 + 500);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

/** CPU seconds (user + system) a process has used, from /proc. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function seed(base: string, n: number, bytes: number): Promise<void> {
  const body = 'x'.repeat(bytes);
  for (let i = 0; i < n; i += 32) {
    await Promise.all(
      Array.from({ length: Math.min(32, n - i) }, async () => {
        const res = await fetch(`${base}/message`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ room: ROOM, sender: 'seed', body }) });
        if (res.status !== 202) throw new Error(`seed POST: ${res.status} ${await res.text()}`);
      }),
    );
  }
  await waitFor(`${n} messages stored`, async () => {
    const res = await fetch(`${base}/messages/before?room=${ROOM}&limit=1`);
    const page = (await res.json()) as { head: number };
    const all = await fetch(`${base}/messages/since?room=${ROOM}&after=0&limit=1000`);
    const first = (await all.json()) as { messages: unknown[] };
    return page.head > 0 && first.messages.length === Math.min(n, 1000) ? true : undefined;
  }, { timeoutMs: 60_000, intervalMs: 200 });
}

/** A probe loop: runs `once` back to back (with `gapMs` between) until `stop`, collecting ms per try. */
async function loop(stop: AbortSignal, gapMs: number, once: () => Promise<void>, times: number[], failures: string[]): Promise<void> {
  while (!stop.aborted) {
    const t0 = nowMs();
    try {
      await once();
      times.push(nowMs() - t0);
    } catch (err) {
      failures.push((err as Error).message);
    }
    await sleep(gapMs);
  }
}

async function main(): Promise<void> {
  const abusers = Number(option('abusers', '10'));
  const messages = Number(option('messages', '2000'));
  const bytes = Number(option('bytes', '4096'));
  const seconds = Number(option('seconds', '20'));
  const reconnect = option('reconnect', 'on') === 'on';
  const distinct = option('addresses', 'distinct') === 'distinct';
  const rabbitmqUrl = process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
  const dir = mkdtempSync(join(tmpdir(), 'replay-attack-'));
  const streamName = `bench.replay.${Date.now().toString(36)}`;
  const server = await ServerProcess.start({ databasePath: join(dir, 'chat.db'), streamName, rabbitmqUrl });
  try {
    console.error(`seeding ${messages} x ${bytes} B into "${ROOM}"`);
    await seed(server.base, messages, bytes);
    const rssBefore = await steadyRss(server.pid);
    const probeWs = new WebSocket(server.wsUrl);
    await new Promise((resolve, reject) => probeWs.once('open', resolve).once('error', reject));
    const waiting = new Map<string, () => void>();
    probeWs.on('message', (data: Buffer) => {
      const f = JSON.parse(data.toString()) as { type: string; body?: string };
      if (f.type === 'message' && f.body) waiting.get(f.body)?.();
    });
    probeWs.send(JSON.stringify({ type: 'subscribe', room: PROBE_ROOM }));
    await sleep(200);

    const load0 = loadavg();
    const cpu0 = cpuSeconds(server.pid);
    const sampler = new RssSampler(server.pid, 100);
    console.error(`attack: ${abusers} sockets for ${seconds} s (reconnect ${reconnect ? 'on' : 'off'}, ${distinct ? 'one address each' : 'one address'})`);
    const child = spawn(process.execPath, ['--import', 'tsx', import.meta.filename, '--abuse', server.wsUrl, String(abusers), String(seconds), reconnect ? 'on' : 'off', distinct ? 'distinct' : 'one'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let childOut = '';
    child.stdout!.on('data', (d) => (childOut += d));
    const childDone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    await sleep(500); // the attack is under way

    const stop = new AbortController();
    const since: number[] = [];
    const roundTrip: number[] = [];
    const failures: string[] = [];
    let n = 0;
    const probes = Promise.all([
      loop(stop.signal, 50, async () => {
        const res = await fetch(`${server.base}/messages/since?room=${PROBE_ROOM}&after=0&limit=20`, { signal: AbortSignal.timeout(30_000) });
        if (res.status !== 200) throw new Error(`since: ${res.status}`);
        await res.arrayBuffer();
      }, since, failures),
      loop(stop.signal, 100, async () => {
        const body = `probe-${n++}`;
        const seen = new Promise<void>((resolve, reject) => {
          const t = setTimeout(() => reject(new Error('no frame in 30 s')), 30_000);
          waiting.set(body, () => {
            clearTimeout(t);
            waiting.delete(body);
            resolve();
          });
        });
        seen.catch(() => {}); // awaited below; a POST that fails first must not leave it unhandled
        const res = await fetch(`${server.base}/message`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ room: PROBE_ROOM, sender: 'probe', body }), signal: AbortSignal.timeout(30_000) });
        if (res.status !== 202) throw new Error(`post: ${res.status}`);
        await res.arrayBuffer();
        await seen;
      }, roundTrip, failures),
    ]);
    await sleep(Math.max(0, seconds * 1000 - 1000));
    stop.abort();
    await probes;
    await childDone;
    const peak = sampler.stop();
    const cpu = cpuSeconds(server.pid) - cpu0;
    const load1 = loadavg();
    const rssAfter = await steadyRss(server.pid);
    probeWs.close();
    const abuse = JSON.parse(childOut.trim().split('\n').pop() || '{}') as AbuseResult;
    const mb = (b: number) => Math.round(b / 1024 / 1024);
    const summary = {
      abusers,
      messages,
      bytes,
      seconds,
      reconnect,
      addresses: distinct ? 'distinct' : 'one',
      probeSinceMs: distribution(since),
      probeRoundTripMs: distribution(roundTrip),
      probeFailures: failures.length,
      firstFailures: failures.slice(0, 3),
      serverRssMiB: { before: mb(rssBefore), peak: mb(peak), after: mb(rssAfter) },
      serverCpuSeconds: Math.round(cpu * 100) / 100,
      abuserSockets: abuse.sockets,
      abuserMiB: mb(abuse.bytes ?? 0),
      abuserCloses: abuse.closes,
      abuserErrorFrames: abuse.errorFrames,
      loadavg: { before: load0.map((x) => x.toFixed(2)), after: load1.map((x) => x.toFixed(2)) },
    };
    console.log(JSON.stringify(summary, null, 2));
  } finally {
    await server.stop();
    await deleteStreams(rabbitmqUrl, [streamName]);
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--abuse') {
  await abuse(process.argv[3]!, Number(process.argv[4]), Number(process.argv[5]), process.argv[6] === 'on', process.argv[7] === 'distinct');
} else {
  await main();
}
