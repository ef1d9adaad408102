import { Child } from './children.ts';
import type { Scope } from './scope.ts';
import type { ClientStats, OpenResult, VerifyResult } from './ws-clients.ts';

/** Runner side of a set of client processes (ws-clients.ts or peer-socketio-clients.ts): spreads sockets, sums what they saw. */
export class WsFleet {
  readonly children: Child[];
  /** subscribers per room, summed over processes */
  readonly perRoom: Record<string, number> = {};
  subscribed = 0;

  private constructor(children: Child[]) {
    this.children = children;
  }

  static async start(scope: Scope, processes: number, script = 'ws-clients.ts', name = 'ws-clients'): Promise<WsFleet> {
    const children = await Promise.all(Array.from({ length: processes }, (_, i) => Child.start(scope, `${name}#${i}`, script)));
    const fleet = new WsFleet(children);
    scope.defer(() => fleet.close().catch(() => {}));
    return fleet;
  }

  /** Opens `total` sockets spread evenly (socket i subscribes to room i % rooms); fails if any could not subscribe. */
  async open(url: string, total: number, rooms: number, track: boolean, timeoutMs: number): Promise<{ ms: number }> {
    const n = this.children.length;
    let first = 0;
    const results = await Promise.all(
      this.children.map((c, k) => {
        const count = Math.floor(total / n) + (k < total % n ? 1 : 0);
        const args = { url, count, firstIndex: first, rooms, track, timeoutMs: Math.min(20_000, timeoutMs) };
        first += count;
        return c.request<OpenResult>('open', args, timeoutMs);
      }),
    );
    let ms = 0;
    let failed = 0;
    let sample: string | undefined;
    for (const r of results) {
      this.subscribed += r.subscribed;
      failed += r.failed;
      sample ??= r.failureSample;
      ms = Math.max(ms, r.ms);
      for (const [room, k] of Object.entries(r.perRoom)) this.perRoom[room] = (this.perRoom[room] ?? 0) + k;
    }
    if (failed > 0) throw new Error(`${failed} of ${total} sockets could not subscribe (first failure: ${sample})`);
    return { ms };
  }

  async reset(latency = true): Promise<void> {
    await Promise.all(this.children.map((c) => c.request('reset', { latency })));
  }

  async stats(): Promise<ClientStats> {
    const all = await Promise.all(this.children.map((c) => c.request<ClientStats>('stats')));
    const sum: ClientStats = { sockets: 0, open: 0, frames: 0, firstAt: 0, lastAt: 0, outOfOrder: 0, errorFrames: 0, unexpectedCloses: {} };
    for (const s of all) {
      sum.sockets += s.sockets;
      sum.open += s.open;
      sum.frames += s.frames;
      if (s.firstAt > 0) sum.firstAt = sum.firstAt === 0 ? s.firstAt : Math.min(sum.firstAt, s.firstAt);
      sum.lastAt = Math.max(sum.lastAt, s.lastAt);
      sum.outOfOrder += s.outOfOrder;
      sum.errorFrames += s.errorFrames;
      sum.errorSample ??= s.errorSample;
      for (const [code, k] of Object.entries(s.unexpectedCloses)) sum.unexpectedCloses[code] = (sum.unexpectedCloses[code] ?? 0) + k;
    }
    return sum;
  }

  async verify(acceptedByRoom: Record<string, string[]>, timeoutMs = 60_000): Promise<VerifyResult> {
    const all = await Promise.all(this.children.map((c) => c.request<VerifyResult>('verify', { acceptedByRoom }, timeoutMs)));
    return all.reduce(
      (a, r) => ({
        lost: a.lost + r.lost,
        duplicates: a.duplicates + r.duplicates,
        unexpected: a.unexpected + r.unexpected,
        expected: a.expected + r.expected,
        lostSample: a.lostSample ?? r.lostSample,
      }),
      { lost: 0, duplicates: 0, unexpected: 0, expected: 0 } as VerifyResult,
    );
  }

  async latencies(): Promise<Float64Array> {
    return this.gather('latencies');
  }

  /** The send time (epoch ms) of each of latencies(), same order. */
  async sentTimes(): Promise<Float64Array> {
    return this.gather('sentTimes');
  }

  private async gather(what: 'latencies' | 'sentTimes'): Promise<Float64Array> {
    const parts = await Promise.all(this.children.map((c) => c.request<Float64Array>(what)));
    const out = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  /** Frames expected when each of `messagesPerRoom` reaches every subscriber of its room. */
  expectedFrames(messagesPerRoom: Record<string, number>): number {
    let n = 0;
    for (const [room, k] of Object.entries(messagesPerRoom)) n += k * (this.perRoom[room] ?? 0);
    return n;
  }

  async close(): Promise<void> {
    await Promise.all(this.children.map((c) => c.request('close', {}, 15_000).catch(() => {})));
    this.subscribed = 0;
  }
}
