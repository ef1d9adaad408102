import { cpuSnapshot, cpuUsage, type CpuUsage } from './cpu-usage.ts';
import { say } from './progress.ts';

/**
 * What a phase started and must undo: children to kill, connections to close. Closing a scope
 * aborts its signal (loops that check it stop) and runs the cleanups in reverse order.
 */
export class Scope {
  readonly name: string;
  private readonly controller = new AbortController();
  private readonly cleanups: (() => unknown)[] = [];

  constructor(name: string) {
    this.name = name;
    open.add(this);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Registers `fn` to run when the scope closes (last registered runs first). */
  defer(fn: () => unknown): void {
    this.cleanups.push(fn);
  }

  /** Aborts the signal only (loops stop); the cleanups still run at close(). */
  abort(reason: string): void {
    if (!this.controller.signal.aborted) this.controller.abort(new Error(`${this.name}: ${reason}`));
  }

  async close(reason = 'scope closed'): Promise<void> {
    open.delete(this);
    this.abort(reason);
    while (this.cleanups.length > 0) {
      const fn = this.cleanups.pop()!;
      try {
        await withTimeout(Promise.resolve().then(fn), 10_000, `cleanup of ${this.name}`);
      } catch (err) {
        say(`${this.name}: cleanup failed: ${(err as Error).message}`);
      }
    }
  }
}

const open = new Set<Scope>();
let interrupted: string | undefined;

/** The run is being stopped (signal, overall deadline): aborts every open scope; no phase starts after this. */
export function interruptRun(reason: string): void {
  interrupted ??= reason;
  for (const s of open) s.abort(reason);
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${Math.round(ms / 1000)} s`)), ms);
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

export type PhaseOutcome<T> = ({ ok: true; value: T } | { ok: false; error: string }) & { ms: number; cpu?: CpuUsage };

/**
 * Runs one phase with its own scope and deadline. A phase that throws or overruns is recorded
 * as an error (the run goes on with the next phase); its scope is closed either way, which kills
 * what it started.
 */
export async function runPhase<T>(name: string, timeoutMs: number, fn: (scope: Scope) => Promise<T>): Promise<PhaseOutcome<T>> {
  if (interrupted) return { ok: false, error: `not run: ${interrupted}`, ms: 0 };
  const scope = new Scope(name);
  const t0 = performance.now();
  const cpu0 = cpuSnapshot();
  const cpu = () => {
    const u = cpuUsage(cpu0, cpuSnapshot());
    if (u.foreign >= 20) say(`${name}: note: other processes on this machine used ${u.foreign}% of a core meanwhile (${u.foreignTop.map((f) => `${f.comm}[${f.pid}] ${f.pct}%`).join(', ')})`);
    return u;
  };
  say(`${name}: start (timeout ${Math.round(timeoutMs / 1000)} s)`);
  try {
    const value = await withTimeout(fn(scope), timeoutMs, name);
    const ms = Math.round(performance.now() - t0);
    say(`${name}: done in ${(ms / 1000).toFixed(1)} s`);
    return { ok: true, value, ms, cpu: cpu() };
  } catch (err) {
    const ms = Math.round(performance.now() - t0);
    const error = (err as Error)?.message ?? String(err);
    say(`${name}: FAILED after ${(ms / 1000).toFixed(1)} s: ${error}`);
    return { ok: false, error, ms, cpu: cpu() };
  } finally {
    await scope.close(scope.signal.aborted ? 'aborted' : 'phase ended');
  }
}
