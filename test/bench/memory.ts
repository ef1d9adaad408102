import { readFileSync } from 'node:fs';
import { sleep } from './clock.ts';
import { median } from './stats.ts';

/** Resident memory of a process from /proc/<pid>/status: current (VmRSS) and peak (VmHWM), bytes. */
export function processMemory(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
    if (!m) throw new Error(`no ${key} in /proc/${pid}/status`);
    return Number(m[1]) * 1024;
  };
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** The soft open-files limit of a running process (from /proc/<pid>/limits). */
export function openFilesLimit(pid: number): number {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
  return !m || m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

/** Median of a few RSS samples `gapMs` apart (one sample catches a GC in the middle). */
export async function steadyRss(pid: number, samples = 5, gapMs = 200, signal?: AbortSignal): Promise<number> {
  const seen: number[] = [];
  for (let i = 0; i < samples; i++) {
    if (i > 0) await sleep(gapMs, signal);
    seen.push(processMemory(pid).rss);
  }
  return median(seen);
}

/** Samples VmRSS every `everyMs` until stopped; `peak` is the largest seen. */
export class RssSampler {
  peak = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(pid: number, everyMs = 200) {
    const take = () => {
      try {
        this.peak = Math.max(this.peak, processMemory(pid).rss);
      } catch {
        // process gone: keep what was seen
      }
    };
    take();
    this.timer = setInterval(take, everyMs);
  }

  stop(): number {
    clearInterval(this.timer);
    return this.peak;
  }
}
