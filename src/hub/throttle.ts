/**
 * "At most once per key every `intervalMs`", in memory bounded by the keys used within the last
 * interval: a Map keeps insertion order, and a key is re-inserted when it passes, so the oldest
 * entries are always at the front and are dropped from there.
 */
export class KeyThrottle {
  private readonly intervalMs: number;
  private readonly last = new Map<string, number>();

  constructor(intervalMs: number) {
    this.intervalMs = intervalMs;
  }

  /** True (and remembered) when `key` has not passed within the interval before `now`. */
  pass(key: string, now: number): boolean {
    for (const [k, at] of this.last) {
      if (now - at < this.intervalMs) break;
      this.last.delete(k);
    }
    if (this.last.has(key)) return false;
    this.last.set(key, now);
    return true;
  }

  get size(): number {
    return this.last.size;
  }
}
