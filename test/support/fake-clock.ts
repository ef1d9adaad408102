import type { LaneClock } from '../../src/hub/replay-lane.ts';

/** Time that moves only when the test says so; `soon` is a real turn of the event loop. */
export class FakeClock implements LaneClock {
  t = 0;
  private timers: { at: number; fn: () => void }[] = [];
  now = () => this.t;
  later = (ms: number, fn: () => void) => {
    const timer = { at: this.t + ms, fn };
    this.timers.push(timer);
    return () => void (this.timers = this.timers.filter((x) => x !== timer));
  };
  soon = (fn: () => void) => void setImmediate(fn);
  get waiting(): boolean {
    return this.timers.length > 0;
  }
  /** Moves time on by `ms` (or to the next timer when omitted) and runs the timers due. */
  advance(ms?: number): void {
    this.t = ms === undefined ? Math.max(this.t, Math.min(...this.timers.map((x) => x.at))) : this.t + ms;
    const due = this.timers.filter((x) => x.at <= this.t);
    this.timers = this.timers.filter((x) => x.at > this.t);
    for (const x of due) x.fn();
  }
}
