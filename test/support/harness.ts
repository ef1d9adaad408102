import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Connection } from 'rabbitmq-client';
import { afterAll, inject, vi } from 'vitest';
import WebSocket from 'ws';
import { loadConfig, type Config } from '../../src/config.ts';
import type { Message } from '../../src/domain/message.ts';
import { createLogger } from '../../src/log.ts';
import { startNode, type RunningNode } from '../../src/node.ts';

export const ROOT = resolve(import.meta.dirname, '../..');

export const rabbitUrl = (): string => inject('rabbitmqUrl');

/** A stream name no other run or test file uses. */
export const uniqueStream = (tag: string): string => `test.${tag}.${Date.now().toString(36)}.${randomBytes(3).toString('hex')}`;

export async function deleteStream(name: string, url = rabbitUrl()): Promise<void> {
  const conn = new Connection({ url, connectionTimeout: 3000 });
  conn.on('error', () => {});
  try {
    await conn.onConnect(5000);
    await conn.queueDelete({ queue: name });
    // The nodes' live-signals exchange (not durable, but it would stay until the broker restarts).
    await conn.exchangeDelete({ exchange: `${name}.signals` });
  } catch {
    // best effort: a test's cleanup must not fail the test
  } finally {
    await conn.close().catch(() => {});
  }
}

import { tempDir } from './temp.ts';

export { tempDir };

/** Loopback only, and a rate limit far above what any test posts unless a test sets its own. */
const TEST_DEFAULTS = { HOST: '127.0.0.1', RATE_LIMIT_PER_MINUTE: '1000000' };

/**
 * What one test file runs on: its own stream and temp folder, and every node it starts through
 * here; all stopped and removed after the file, whatever happened.
 */
export function testScope(tag: string) {
  const stream = uniqueStream(tag);
  const dir = tempDir();
  const started: { stop(): Promise<void> }[] = [];
  afterAll(async () => {
    await Promise.all(started.map((n) => n.stop()));
    await deleteStream(stream);
    dir.remove();
  });
  const env = (db = 'chat.db') => ({ STREAM_NAME: stream, DATABASE_PATH: join(dir.path, db) });
  return {
    stream,
    dir: dir.path,
    env,
    /** A node in this process on the scope's stream, with its own SQLite file `db`. */
    async startNode(extra: Record<string, string> = {}, db?: string): Promise<TestNode> {
      const node = await startTestNode({ ...env(db), ...extra });
      started.push(node);
      return node;
    },
    /** A node in its own process (as `npm start`), stopped after the file if the test did not. */
    async spawnNode(extra: Record<string, string> = {}, db?: string): Promise<SpawnedNode> {
      const node = await spawnNode({ ...env(db), ...extra });
      started.push({ stop: () => stopNode(node) });
      return node;
    },
  };
}

export interface TestNode {
  base: string;
  ws: string;
  port: number;
  config: Config;
  node: RunningNode;
  stop(): Promise<void>;
}

/** Starts a node in this process on a random port, with real RabbitMQ and a real SQLite file. */
export async function startTestNode(env: Record<string, string>): Promise<TestNode> {
  const config = loadConfig({ ...TEST_DEFAULTS, PORT: '0', RABBITMQ_URL: rabbitUrl(), LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent', ...env });
  const node = await startNode(config, createLogger(config.logLevel));
  if (!env.RABBITMQ_URL) await waitReady(`http://127.0.0.1:${node.port}`);
  return {
    base: `http://127.0.0.1:${node.port}`,
    ws: `ws://127.0.0.1:${node.port}/ws`,
    port: node.port,
    config,
    node,
    stop: () => node.stop(),
  };
}

export interface SpawnedNode {
  base: string;
  ws: string;
  port: number;
  proc: ChildProcess;
  /** Every log line (parsed pino JSON) the process printed so far. */
  logs: Record<string, unknown>[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitForLog(pred: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
}

/** Runs the server as `npm start` does (its own process), waiting until it listens. */
export async function spawnNode(env: Record<string, string>): Promise<SpawnedNode> {
  // One process, as `npm start` runs it (tsx's CLI would add a parent that a SIGKILL leaves orphaned).
  const proc = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/main.ts')], {
    cwd: ROOT,
    env: { ...process.env, ...TEST_DEFAULTS, PORT: '0', RABBITMQ_URL: rabbitUrl(), LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  let partial = '';
  proc.stdout!.on('data', (d: Buffer) => {
    partial += d.toString();
    const lines = partial.split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      try {
        logs.push(JSON.parse(line));
      } catch {
        logs.push({ msg: line });
      }
    }
    for (const w of waiters) w();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => proc.once('exit', (code, signal) => res({ code, signal })));
  const waitForLog = (pred: (l: Record<string, unknown>) => boolean, timeoutMs = 20_000) =>
    new Promise<Record<string, unknown>>((res, rej) => {
      const check = () => {
        const hit = logs.find(pred);
        if (hit) {
          cleanup();
          res(hit);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        rej(new Error(`log line not seen in ${timeoutMs} ms; stderr: ${stderr.slice(-2000)}; last logs: ${JSON.stringify(logs.slice(-5))}`));
      }, timeoutMs);
      const onExit = () => {
        cleanup();
        rej(new Error(`server exited; stderr: ${stderr.slice(-2000)}; last logs: ${JSON.stringify(logs.slice(-5))}`));
      };
      const cleanup = () => {
        clearTimeout(timer);
        waiters.delete(check);
        proc.off('exit', onExit);
      };
      waiters.add(check);
      proc.once('exit', onExit);
      check();
    });
  const listening = await waitForLog((l) => l.msg === 'listening');
  const port = listening.port as number;
  if (!env.RABBITMQ_URL) await waitReady(`http://127.0.0.1:${port}`);
  return { base: `http://127.0.0.1:${port}`, ws: `ws://127.0.0.1:${port}/ws`, port, proc, logs, exited, waitForLog };
}

export async function post(base: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${base}/message`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

export type StoredMessage = Message;

/** Pages `GET /messages/since` with after=next until hasMore is false. */
export async function readAll(base: string, opts: { room?: string; after?: number; limit?: number } = {}): Promise<StoredMessage[]> {
  const out: StoredMessage[] = [];
  let after = opts.after ?? 0;
  for (;;) {
    const q = new URLSearchParams({ after: String(after), limit: String(opts.limit ?? 1000) });
    if (opts.room) q.set('room', opts.room);
    const res = await fetch(`${base}/messages/since?${q}`);
    if (res.status !== 200) throw new Error(`GET /messages/since: ${res.status} ${await res.text()}`);
    const page = (await res.json()) as { messages: StoredMessage[]; next: number; hasMore: boolean };
    out.push(...page.messages);
    after = page.next;
    if (!page.hasMore) return out;
  }
}

/**
 * Waits until the node answers /readyz with 200 (connected and consuming). On a timeout the error
 * carries the last /readyz answer and, given the node's `logs`, its last lines: a node that never
 * gets ready is rare and slow to reproduce, so the failure itself must say why.
 */
export async function waitReady(base: string, timeoutMs = 20_000, logs?: readonly object[]): Promise<true> {
  let last = '';
  try {
    return await eventually(
      async () => {
        const res = await fetch(`${base}/readyz`);
        if (res.status === 200) return true;
        last = `${res.status} ${await res.text()}`;
        return undefined;
      },
      timeoutMs,
      `${base}/readyz`,
    );
  } catch (err) {
    const lines = logs ? `; last log lines:\n${logs.slice(-30).map((l) => JSON.stringify(l)).join('\n')}` : '';
    throw new Error(`${(err as Error).message}; last answer: ${last}${lines}`);
  }
}

/** Re-checks `probe` until it returns a value that is not undefined (a condition to wait for, not a sleep). */
export function eventually<T>(probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000, what = 'condition'): Promise<T> {
  return vi
    .waitFor(
      async () => {
        const v = await probe();
        if (v === undefined) throw new Error('not yet');
        return v;
      },
      { timeout: timeoutMs, interval: 25 },
    )
    .catch((err: Error) => {
      throw new Error(`timed out waiting for ${what}${err.message === 'not yet' ? '' : `: ${err.message}`}`);
    });
}

/** Waits until `base` has stored at least `count` messages (optionally of one room). */
export const storedCount = (base: string, count: number, room?: string, timeoutMs?: number) =>
  eventually(async () => {
    const all = await readAll(base, { room });
    return all.length >= count ? all : undefined;
  }, timeoutMs, `${count} stored messages at ${base}`);

type Frame = Record<string, unknown> & { type: string };

/** A WebSocket test client that records every frame and lets a test await the ones it expects. */
export class WsClient {
  readonly ws: WebSocket;
  readonly frames: Frame[] = [];
  /** WebSocket messages received (with `?batch=1` one may carry several frames). */
  wsMessages = 0;
  readonly closed: Promise<{ code: number; reason: string }>;
  private readonly waiters = new Set<() => void>();

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data) => {
      this.wsMessages++;
      // One frame per line (`?batch=1`); an unbatched message is one line.
      for (const line of data.toString().split('\n')) this.frames.push(JSON.parse(line));
      for (const w of this.waiters) w();
    });
    this.closed = new Promise((res) => ws.once('close', (code, reason) => res({ code, reason: reason.toString() })));
  }

  static async connect(url: string, opts: WebSocket.ClientOptions = {}): Promise<WsClient> {
    const ws = new WebSocket(url, opts);
    const client = new WsClient(ws);
    await new Promise<void>((res, rej) => {
      ws.once('open', () => res());
      ws.once('error', rej);
    });
    return client;
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  messages(room?: string): StoredMessage[] {
    return this.frames.filter((f) => f.type === 'message' && (room === undefined || f.room === room)) as unknown as StoredMessage[];
  }

  /** Resolves with the first recorded frame (from index `from`) that matches. */
  next(pred: (f: Frame) => boolean, timeoutMs = 10_000, from = 0): Promise<Frame> {
    return this.until(() => this.frames.slice(from).find(pred), timeoutMs, 'a matching frame');
  }

  /** Resolves once `cond` holds over the recorded frames. */
  until<T>(cond: () => T | undefined, timeoutMs = 10_000, what = 'condition'): Promise<T> {
    return new Promise<T>((res, rej) => {
      const check = () => {
        const v = cond();
        if (v !== undefined && v !== false) {
          clearTimeout(timer);
          this.waiters.delete(check);
          res(v);
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        rej(new Error(`timed out waiting for ${what}; last frames: ${JSON.stringify(this.frames.slice(-3))}`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  close(): void {
    this.ws.close();
  }
}

export interface LoadResult {
  /** the ids the 202 answers gave */
  accepted: string[];
  /** keys answered 503, with how long each answer took */
  unavailable: { key: string; ms: number; retryAfter: string | null }[];
  /** keys whose request failed without an answer (connection refused or reset) */
  failed: string[];
  /** any other status: a bug */
  other: { key: string; status: number }[];
}

/**
 * Posts one message every `intervalMs` (round-robin over `bases`) until stopped; every request
 * has its own key so a test can check exactly which answered 202 ended up stored (by the ids
 * the 202s gave).
 */
export function steadyLoad(bases: string[], prefix: string, intervalMs = 10, room = 'load') {
  const result: LoadResult = { accepted: [], unavailable: [], failed: [], other: [] };
  const inflight = new Set<Promise<void>>();
  let i = 0;
  const timer = setInterval(() => {
    const key = `${prefix}-${i}`;
    const base = bases[i++ % bases.length]!;
    const started = Date.now();
    const p = post(base, { room, sender: 'load', body: key, key })
      .then(async (res) => {
        if (res.status === 202) return void result.accepted.push(((await res.json()) as { id: string }).id);
        await res.arrayBuffer();
        if (res.status === 503) result.unavailable.push({ key, ms: Date.now() - started, retryAfter: res.headers.get('retry-after') });
        else result.other.push({ key, status: res.status });
      })
      .catch(() => {
        result.failed.push(key);
      })
      .finally(() => inflight.delete(p));
    inflight.add(p);
  }, intervalMs);
  return {
    result,
    /** Stops sending and waits for every request in flight to be answered. */
    async stop(): Promise<LoadResult> {
      clearInterval(timer);
      await Promise.all(inflight);
      return result;
    },
  };
}

/** Asserts that `node` stored each of `ids` exactly once (and returns its full list). */
export async function expectStoredOnce(base: string, ids: string[], timeoutMs = 30_000): Promise<StoredMessage[]> {
  const wanted = new Set(ids);
  const all = await eventually(async () => {
    const list = await readAll(base);
    const have = new Set(list.map((m) => m.id));
    for (const id of wanted) if (!have.has(id)) return undefined;
    return list;
  }, timeoutMs, `${ids.length} accepted ids stored at ${base}`);
  const counts = new Map<string, number>();
  for (const m of all) counts.set(m.id, (counts.get(m.id) ?? 0) + 1);
  const doubled = [...counts].filter(([, n]) => n > 1);
  if (doubled.length > 0) throw new Error(`stored more than once at ${base}: ${JSON.stringify(doubled.slice(0, 5))}`);
  const seqs = all.map((m) => m.seq);
  for (let k = 1; k < seqs.length; k++) if (seqs[k]! <= seqs[k - 1]!) throw new Error(`seq not ascending at ${base}: ${seqs[k - 1]} then ${seqs[k]}`);
  return all;
}

export async function readyz(base: string): Promise<{ status: number; checks: Record<string, unknown> }> {
  const res = await fetch(`${base}/readyz`);
  const body = (await res.json()) as { checks?: Record<string, unknown>; error?: { checks: Record<string, unknown> } };
  return { status: res.status, checks: body.checks ?? body.error?.checks ?? {} };
}

export async function stopNode(node: SpawnedNode, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (node.proc.exitCode === null && node.proc.signalCode === null) node.proc.kill(signal);
  await node.exited;
}
