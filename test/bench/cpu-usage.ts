import { readdirSync, readFileSync } from 'node:fs';

/**
 * Who used the CPU during a phase, from /proc: this run's processes (the runner and its
 * descendants), the machine's broker (beam.smp under init), kernel threads, and everything else on the machine (foreign: another
 * test run, say), in percent of one core. The machine has few cores and everything shares them,
 * so a busy neighbour shows here instead of silently lowering the figures.
 */

export const TICK_MS = 10; // USER_HZ is 100 on Linux

interface Proc {
  ppid: number;
  comm: string;
  ticks: number;
}

export interface CpuSnapshot {
  at: number;
  procs: Map<number, Proc>;
  machineBusyTicks: number;
}

export interface CpuUsage {
  /** percent of one core, averaged over the phase */
  bench: number;
  broker: number;
  /** kernel threads (network softirq work of the loopback traffic shows up here) */
  kernel: number;
  foreign: number;
  /** the busiest foreign processes */
  foreignTop: { pid: number; comm: string; pct: number }[];
  /** all cores busy, percent of one core (200 = two cores fully busy) */
  machine: number;
}

function readProc(pid: number): Proc | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const f = stat.slice(close + 2).split(' ');
    // fields after comm: state(0) ppid(1) ... utime(11) stime(12)
    return { ppid: Number(f[1]), comm, ticks: Number(f[11]) + Number(f[12]) };
  } catch {
    return undefined;
  }
}

/** CPU time (user + system) one process has used so far, in ticks of TICK_MS; undefined once it is gone. */
export function processTicks(pid: number): number | undefined {
  return readProc(pid)?.ticks;
}

export function cpuSnapshot(): CpuSnapshot {
  const procs = new Map<number, Proc>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const p = readProc(Number(name));
    if (p) procs.set(Number(name), p);
  }
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  const busy = cpu[0]! + cpu[1]! + cpu[2]! + cpu[5]! + cpu[6]! + (cpu[7] ?? 0);
  return { at: performance.now(), procs, machineBusyTicks: busy };
}

export function cpuUsage(a: CpuSnapshot, b: CpuSnapshot, self = process.pid): CpuUsage {
  const ms = b.at - a.at;
  const pct = (ticks: number) => Math.round(((ticks * TICK_MS) / ms) * 1000) / 10;
  const ours = (pid: number): boolean => {
    for (let p = pid, hops = 0; p > 1 && hops < 50; hops++) {
      if (p === self) return true;
      p = b.procs.get(p)?.ppid ?? a.procs.get(p)?.ppid ?? 0;
    }
    return false;
  };
  let bench = 0;
  let broker = 0;
  let kernel = 0;
  let foreign = 0;
  const foreignBy: { pid: number; comm: string; ticks: number }[] = [];
  for (const [pid, end] of b.procs) {
    const start = a.procs.get(pid);
    const ticks = end.ticks - (start && start.comm === end.comm ? start.ticks : 0);
    if (ticks <= 0) continue;
    if (ours(pid)) bench += ticks;
    // The machine's broker runs under init; a beam.smp started by someone's tests is foreign.
    else if (end.comm === 'beam.smp' && end.ppid === 1) broker += ticks;
    else if (pid === 2 || end.ppid === 2) kernel += ticks;
    else {
      foreign += ticks;
      foreignBy.push({ pid, comm: end.comm, ticks });
    }
  }
  foreignBy.sort((x, y) => y.ticks - x.ticks);
  return {
    bench: pct(bench),
    broker: pct(broker),
    kernel: pct(kernel),
    foreign: pct(foreign),
    foreignTop: foreignBy.slice(0, 3).map((f) => ({ pid: f.pid, comm: f.comm, pct: pct(f.ticks) })),
    machine: pct(b.machineBusyTicks - a.machineBusyTicks),
  };
}
