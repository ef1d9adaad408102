import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { join } from 'node:path';
import WebSocket from 'ws';
import { isRunning, ROOT, spawnNode } from './children.ts';
import { sleep } from './clock.ts';
import { processMemory } from './memory.ts';
import { say } from './progress.ts';

export interface ServerOptions {
  databasePath: string;
  streamName: string;
  rabbitmqUrl: string;
  /** Any further variables (e.g. CONSUMER_PREFETCH). */
  env?: Record<string, string>;
  /** node flags before `--import tsx` (e.g. --cpu-prof) */
  nodeArgs?: string[];
}

/**
 * The per-sender rate limit the bench asks for. Config validation may cap the variable lower; the
 * runner then falls back to the next value (and the load is spread over many senders anyway).
 */
export const RATE_LIMITS = ['100000000', '1000000'];

export interface ReadyChecks {
  lastOffset: number;
  sockets: number;
  [k: string]: unknown;
}

/** The real server, run as `npm start` runs it, in its own process. */
export class ServerProcess {
  readonly proc: ChildProcess;
  readonly port: number;
  readonly base: string;
  readonly wsUrl: string;
  readonly rateLimit: string;
  /** Log lines at warn or above, counted by message. */
  readonly warnings = new Map<string, number>();
  private stderrTail = '';
  /** The inspector's address, when started with `--inspect=127.0.0.1:0` (see collectGarbage). */
  private inspectorUrl: string | undefined;
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(proc: ChildProcess, port: number, rateLimit: string) {
    this.proc = proc;
    this.port = port;
    this.rateLimit = rateLimit;
    this.base = `http://127.0.0.1:${port}`;
    this.wsUrl = `ws://127.0.0.1:${port}/ws`;
    this.exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
    let partial = '';
    proc.stdout!.on('data', (d: Buffer) => {
      partial += d.toString();
      const lines = partial.split('\n');
      partial = lines.pop()!;
      for (const line of lines) this.onLogLine(line);
    });
    proc.stderr!.on('data', (d: Buffer) => {
      this.stderrTail = (this.stderrTail + d.toString()).slice(-4000);
      this.inspectorUrl ??= /Debugger listening on (ws:\/\/\S+)/.exec(this.stderrTail)?.[1];
    });
  }

  get pid(): number {
    return this.proc.pid!;
  }

  /** Starts the server and waits until /readyz says it is consuming. */
  static async start(o: ServerOptions): Promise<ServerProcess> {
    let lastError: Error | undefined;
    for (const rateLimit of RATE_LIMITS) {
      const port = await freePort();
      const proc = spawnNode(join(ROOT, 'src/main.ts'), [], {
        ipc: false,
        stdout: 'pipe',
        nodeArgs: o.nodeArgs,
        env: {
          PORT: String(port),
          HOST: '127.0.0.1',
          RABBITMQ_URL: o.rabbitmqUrl,
          DATABASE_PATH: o.databasePath,
          STREAM_NAME: o.streamName,
          LOG_LEVEL: 'warn',
          RATE_LIMIT_PER_MINUTE: rateLimit,
          // Every bench client connects from 127.0.0.1: the open-mode per-address cap would refuse them.
          WS_MAX_SOCKETS_PER_IP: '1000000',
          ...o.env,
        },
      });
      const server = new ServerProcess(proc, port, rateLimit);
      try {
        await server.waitReady(30_000);
        if (rateLimit !== RATE_LIMITS[0]) say(`server: RATE_LIMIT_PER_MINUTE=${RATE_LIMITS[0]} was refused; running with ${rateLimit}`);
        return server;
      } catch (err) {
        lastError = err as Error;
        await server.kill();
        // Only a refused rate limit is worth another try.
        if (!/RATE_LIMIT_PER_MINUTE/.test(server.stderrTail)) break;
      }
    }
    throw lastError ?? new Error('server did not start');
  }

  private onLogLine(line: string): void {
    if (!line.trim()) return;
    let entry: { level?: number; msg?: string };
    try {
      entry = JSON.parse(line);
    } catch {
      entry = { level: 40, msg: line.slice(0, 200) };
    }
    if ((entry.level ?? 0) >= 40) {
      const key = entry.msg ?? '(no msg)';
      this.warnings.set(key, (this.warnings.get(key) ?? 0) + 1);
    }
  }

  async waitReady(timeoutMs: number): Promise<void> {
    let exited = false;
    void this.exited.then(() => (exited = true));
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      if (exited) throw new Error(`server exited: ${this.stderrTail.trim().split('\n').slice(-3).join(' | ')}`);
      try {
        const res = await fetch(`${this.base}/readyz`, { signal: AbortSignal.timeout(2000) });
        last = `${res.status} ${(await res.text()).slice(0, 300)}`;
        if (res.status === 200) return;
      } catch (err) {
        last = (err as Error).message;
      }
      if (Date.now() > deadline) throw new Error(`server not ready in ${timeoutMs} ms (last /readyz: ${last}); stderr: ${this.stderrTail.trim().slice(-500)}`);
      await sleep(100);
    }
  }

  /** The checks of /readyz (lastOffset, sockets, ...). */
  async checks(): Promise<ReadyChecks> {
    const res = await fetch(`${this.base}/readyz`, { signal: AbortSignal.timeout(5000) });
    const json = (await res.json()) as { checks?: ReadyChecks; error?: { checks?: ReadyChecks } };
    const checks = json.checks ?? json.error?.checks;
    if (!checks) throw new Error(`/readyz answered ${res.status} without checks`);
    return checks;
  }

  /**
   * A full garbage collection in the server, through its inspector (started with
   * `--inspect=127.0.0.1:0`): RSS read right after it is the memory in use, not in use plus
   * whatever garbage the last minutes left, which varies by megabytes from run to run. Returns
   * the JavaScript heap in use after it (bytes).
   */
  async collectGarbage(timeoutMs = 30_000): Promise<number> {
    if (!this.inspectorUrl) throw new Error('the server was started without --inspect=127.0.0.1:0');
    const ws = new WebSocket(this.inspectorUrl);
    try {
      await once(ws, 'open');
      // Answered in order: the heap usage is read once the collection is over.
      const answered = new Promise<number>((resolve, reject) => {
        ws.on('message', (data) => {
          const m = JSON.parse(String(data)) as { id?: number; error?: { message?: string }; result?: { usedSize?: number } };
          if (m.error) reject(new Error(`inspector: ${m.error.message}`));
          else if (m.id === 2) resolve(m.result?.usedSize ?? NaN);
        });
      });
      ws.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' }));
      ws.send(JSON.stringify({ id: 2, method: 'Runtime.getHeapUsage' }));
      return await Promise.race([answered, sleep(timeoutMs).then(() => Promise.reject(new Error(`no garbage collection in ${timeoutMs} ms`)))]);
    } finally {
      ws.close();
    }
  }

  memory(): { rss: number; hwm: number } {
    return processMemory(this.pid);
  }

  /** Graceful stop (SIGTERM, as a deployment would), SIGKILL if it takes longer than `graceMs`. */
  async stop(graceMs = 8000): Promise<{ code: number | null; signal: NodeJS.Signals | null; forced: boolean }> {
    if (!isRunning(this.proc)) return { ...(await this.exited), forced: false };
    this.proc.kill('SIGTERM');
    const timedOut = await Promise.race([this.exited.then(() => false), sleep(graceMs).then(() => true)]);
    if (timedOut) await this.kill();
    return { ...(await this.exited), forced: timedOut };
  }

  async kill(): Promise<void> {
    if (isRunning(this.proc)) this.proc.kill('SIGKILL');
    await this.exited;
  }

  warningsObject(): Record<string, number> {
    return Object.fromEntries(this.warnings);
  }
}

/** A port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}
