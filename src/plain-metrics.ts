import type { Registry } from 'prom-client';

/**
 * Metrics updated on every post or request, kept as plain numbers and turned into Prometheus
 * samples only at scrape. prom-client's own counters and histograms validate and hash their
 * label set on every call, which showed as several microseconds per POST.
 */

type Labels = Record<string, string>;

interface Series {
  labels: Labels;
  /** per bucket (not cumulative), then the +Inf bucket */
  counts: number[];
  sum: number;
  count: number;
}

/** Counts by label set (`key` names the set; `labels` is read only the first time a key is seen). */
export class PlainCounter {
  readonly name: string;
  readonly help: string;
  readonly type = 'counter';
  readonly aggregator = 'sum';
  private readonly series = new Map<string, { labels: Labels; value: number }>();

  constructor(o: { name: string; help: string; registers: Registry[] }) {
    this.name = o.name;
    this.help = o.help;
    for (const r of o.registers) r.registerMetric(this as never);
  }

  inc(key: string, labels: () => Labels, by = 1): void {
    const s = this.series.get(key);
    if (s) s.value += by;
    else this.series.set(key, { labels: labels(), value: by });
  }

  get() {
    const values = [...this.series.values()].map((s) => ({ labels: s.labels, value: s.value }));
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    this.series.clear();
  }
}

/** A histogram by label set, with the same exposition as prom-client's (cumulative buckets, +Inf, _sum, _count). */
export class PlainHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly buckets: readonly number[];
  private readonly series = new Map<string, Series>();

  constructor(o: { name: string; help: string; buckets: number[]; registers: Registry[] }) {
    this.name = o.name;
    this.help = o.help;
    this.buckets = [...o.buckets].sort((a, b) => a - b);
    for (const r of o.registers) r.registerMetric(this as never);
  }

  observe(key: string, labels: () => Labels, value: number): void {
    let s = this.series.get(key);
    if (!s) this.series.set(key, (s = { labels: labels(), counts: new Array<number>(this.buckets.length + 1).fill(0), sum: 0, count: 0 }));
    let i = 0;
    while (i < this.buckets.length && value > this.buckets[i]!) i++;
    s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  /** For the text exposition: bucket lines carry `le` first, then the series' labels, as prom-client writes them. */
  getForPromString() {
    const values: { labels: Labels; sharedLabels?: Labels; value: number; metricName: string }[] = [];
    for (const s of this.series.values()) {
      let acc = 0;
      for (let i = 0; i < this.buckets.length; i++) {
        acc += s.counts[i]!;
        values.push({ labels: { le: String(this.buckets[i]) }, sharedLabels: s.labels, value: acc, metricName: `${this.name}_bucket` });
      }
      values.push({ labels: { le: '+Inf' }, sharedLabels: s.labels, value: s.count, metricName: `${this.name}_bucket` });
      values.push({ labels: {}, sharedLabels: s.labels, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: {}, sharedLabels: s.labels, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  get() {
    const data = this.getForPromString();
    return { ...data, values: data.values.map(({ labels, sharedLabels, ...v }) => ({ ...v, labels: { ...sharedLabels, ...labels } })) };
  }

  reset(): void {
    this.series.clear();
  }
}
