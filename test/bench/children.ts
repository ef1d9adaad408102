import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import type { Answer } from './ipc.ts';
import type { Scope } from './scope.ts';

export const ROOT = resolve(import.meta.dirname, '../..');
export const BENCH_DIR = import.meta.dirname;

/**
 * Open-file limit asked for in every spawned process: many sockets per process need many
 * descriptors. Without the privilege to raise the hard limit, the soft limit goes up to the hard one.
 */
const FD_LIMIT = 65536;

/** Every process this run started, so that any way out (end, error, Ctrl-C) can kill what is left. */
const live = new Set<ChildProcess>();

export const isRunning = (p: ChildProcess): boolean => p.exitCode === null && p.signalCode === null;

export function track(p: ChildProcess): void {
  live.add(p);
  p.once('exit', () => live.delete(p));
}

/** Set once the run is stopping: nothing new is spawned after that. */
let stopping = false;

/** SIGKILLs every process of this run still running and refuses new ones (synchronous: usable in an 'exit' handler). */
export function killEverything(): number {
  stopping = true;
  let n = 0;
  for (const p of live) {
    if (isRunning(p)) {
      try {
        p.kill('SIGKILL');
        n++;
      } catch {
        // already gone
      }
    }
  }
  return n;
}

export const liveChildren = (): ChildProcess[] => [...live].filter(isRunning);

/** `node [nodeArgs] --import tsx <script> ...args` behind `ulimit -n`, as one process (bash execs node). */
export function spawnNode(
  script: string,
  args: string[],
  opts: { env?: Record<string, string>; ipc: boolean; stdout: 'pipe' | 'stderr'; nodeArgs?: string[] },
): ChildProcess {
  if (stopping) throw new Error('the run is stopping: not starting another process');
  const raise = `ulimit -n ${FD_LIMIT} 2>/dev/null || ulimit -n "$(ulimit -Hn)"`;
  const argv = [...(opts.nodeArgs ?? []), '--import', 'tsx', script, ...args];
  const p = spawn('bash', ['-c', `${raise}; exec "$0" "$@"`, process.execPath, ...argv], {
    cwd: ROOT,
    env: { ...process.env, ...opts.env },
    // The children's stdout goes to the runner's stderr: stdout carries only the result line.
    stdio: ['ignore', opts.stdout === 'pipe' ? 'pipe' : 2, opts.stdout === 'pipe' ? 'pipe' : 2, ...(opts.ipc ? (['ipc'] as const) : [])],
    serialization: 'advanced',
  });
  track(p);
  return p;
}

/** A helper process that answers commands (see ipc.ts). */
export class Child {
  readonly name: string;
  readonly proc: ChildProcess;
  private nextId = 0;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private exitNote: string | undefined;

  private constructor(name: string, proc: ChildProcess) {
    this.name = name;
    this.proc = proc;
    proc.on('message', (m: Answer | { ready: true }) => {
      if (!('id' in m)) return;
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(m.result);
      else p.reject(new Error(`${this.name}: ${m.error}`));
    });
    proc.once('exit', (code, signal) => {
      this.exitNote = `${this.name} exited (${signal ?? `code ${code}`})`;
      for (const p of this.pending.values()) p.reject(new Error(this.exitNote));
      this.pending.clear();
    });
  }

  get pid(): number {
    return this.proc.pid!;
  }

  /** Starts `test/bench/<script>` and waits for its ready message; killed when `scope` closes. */
  static async start(scope: Scope, name: string, script: string, env: Record<string, string> = {}, readyTimeoutMs = 20_000): Promise<Child> {
    const proc = spawnNode(join(BENCH_DIR, script), [], { env, ipc: true, stdout: 'stderr' });
    const child = new Child(name, proc);
    scope.defer(() => child.kill());
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} not ready in ${readyTimeoutMs} ms`)), readyTimeoutMs);
      const onMessage = (m: unknown) => {
        if ((m as { ready?: boolean }).ready) done();
      };
      const onExit = (code: number | null, signal: string | null) => {
        clearTimeout(timer);
        proc.off('message', onMessage);
        reject(new Error(`${name} exited before it was ready (${signal ?? `code ${code}`})`));
      };
      const done = () => {
        clearTimeout(timer);
        proc.off('message', onMessage);
        proc.off('exit', onExit);
        resolve();
      };
      proc.on('message', onMessage);
      proc.once('exit', onExit);
    });
    return child;
  }

  /** Sends a command and waits (at most `timeoutMs`) for its answer. */
  request<T>(cmd: string, args: unknown = {}, timeoutMs = 60_000): Promise<T> {
    if (this.exitNote) return Promise.reject(new Error(this.exitNote));
    const id = ++this.nextId;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.name}: ${cmd} got no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.proc.send({ id, cmd, args });
    });
  }

  /** SIGKILL (helpers hold nothing worth a graceful stop); resolves once it is gone. */
  async kill(): Promise<void> {
    if (!isRunning(this.proc)) return;
    const gone = new Promise<void>((resolve) => this.proc.once('exit', () => resolve()));
    this.proc.kill('SIGKILL');
    await gone;
  }
}
