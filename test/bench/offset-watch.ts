import { nowMs } from './clock.ts';
import type { ServerProcess } from './server-process.ts';

/**
 * Polls the server's /readyz `checks.lastOffset` (the last stream offset committed to its SQLite)
 * and remembers when each value was first seen, so a phase can tell when a given offset was stored.
 */
export class OffsetWatch {
  readonly samples: { at: number; offset: number }[] = [];
  private timer: NodeJS.Timeout | undefined;
  private busy = false;

  constructor(private readonly server: ServerProcess, everyMs = 100) {
    this.timer = setInterval(() => void this.poll(), everyMs);
  }

  private async poll(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const { lastOffset } = await this.server.checks();
      const at = nowMs();
      const last = this.samples[this.samples.length - 1];
      if (!last || last.offset !== lastOffset) this.samples.push({ at, offset: lastOffset });
    } catch {
      // a slow answer under load: the next poll will do
    } finally {
      this.busy = false;
    }
  }

  get latest(): number {
    return this.samples[this.samples.length - 1]?.offset ?? -1;
  }

  /** When an offset >= `offset` was first seen stored (undefined if not yet). */
  reachedAt(offset: number): number | undefined {
    return this.samples.find((s) => s.offset >= offset)?.at;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
