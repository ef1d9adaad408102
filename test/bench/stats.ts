/** Small numeric helpers for the results. */

export interface Distribution {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export function distribution(values: ArrayLike<number>): Distribution {
  const sorted = Float64Array.from(values as ArrayLike<number>).sort();
  let sum = 0;
  for (let i = 0; i < sorted.length; i++) sum += sorted[i]!;
  const r = (n: number) => Math.round(n * 1000) / 1000;
  return {
    count: sorted.length,
    p50: r(percentile(sorted, 50)),
    p95: r(percentile(sorted, 95)),
    p99: r(percentile(sorted, 99)),
    max: r(sorted.length ? sorted[sorted.length - 1]! : NaN),
    mean: r(sorted.length ? sum / sorted.length : NaN),
  };
}

/** count per second over `ms`, rounded to a whole number (null when it cannot be computed). */
export function perSecond(count: number, ms: number): number | null {
  if (!(ms > 0) || !Number.isFinite(count)) return null;
  return Math.round((count / ms) * 1000);
}

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** The latencies of the messages sent at least `afterMs` after the first one. */
export function sentFrom(sentTimes: ArrayLike<number>, latencies: ArrayLike<number>, afterMs: number): number[] {
  const first = earliest(sentTimes);
  const out: number[] = [];
  for (let i = 0; i < sentTimes.length; i++) if (sentTimes[i]! - first >= afterMs) out.push(latencies[i]!);
  return out;
}

/** One second of a run: the frames whose message was sent in it (second 1 is the first). */
export interface SecondOfRun {
  second: number;
  count: number;
  p50: number;
  p99: number;
  max: number;
}

/**
 * Latencies grouped by the second of the run their message was sent in, from the first send:
 * shows a warm-up (or a stall) that the run's overall percentiles hide.
 */
export function bySecond(sentTimes: ArrayLike<number>, latencies: ArrayLike<number>): SecondOfRun[] {
  const first = earliest(sentTimes);
  const buckets: number[][] = [];
  for (let i = 0; i < sentTimes.length; i++) (buckets[Math.floor((sentTimes[i]! - first) / 1000)] ??= []).push(latencies[i]!);
  const out: SecondOfRun[] = [];
  for (let s = 0; s < buckets.length; s++) {
    const d = distribution(buckets[s] ?? []);
    out.push({ second: s + 1, count: d.count, p50: d.p50, p99: d.p99, max: d.max });
  }
  return out;
}

/** The smallest of `values` (Infinity when empty); no spread, so any length. */
function earliest(values: ArrayLike<number>): number {
  let min = Infinity;
  for (let i = 0; i < values.length; i++) min = Math.min(min, values[i]!);
  return min;
}
