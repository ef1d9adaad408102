/**
 * Where the SDK keeps each room's cursor so that an app restart resumes exactly. Sync or async:
 * `localStorage` and React Native's `AsyncStorage` both fit as they are.
 */
export interface CursorStorage {
  getItem(key: string): string | null | undefined | Promise<string | null | undefined>;
  setItem(key: string, value: string): void | Promise<void>;
}

/** A room's position: the highest seq delivered and the log (epoch) it belongs to. */
export interface Cursor {
  seq: number;
  epoch: string | null;
}

/** In-memory storage: cursors last as long as the process (the default). */
export function memoryStorage(): CursorStorage & { readonly data: Map<string, string> } {
  const data = new Map<string, string>();
  return {
    data,
    getItem: (k) => data.get(k) ?? null,
    setItem: (k, v) => void data.set(k, v),
  };
}

export function parseCursor(raw: string | null | undefined): Cursor | undefined {
  if (!raw) return undefined;
  try {
    const c = JSON.parse(raw) as Partial<Cursor>;
    if (typeof c.seq === 'number' && Number.isSafeInteger(c.seq) && c.seq >= 0) return { seq: c.seq, epoch: typeof c.epoch === 'string' ? c.epoch : null };
  } catch {
    // a corrupt entry is as good as none
  }
  return undefined;
}

/**
 * Writes one key's latest value, one write at a time: a burst of messages becomes at most two
 * writes, and an async store never sees an older value land after a newer one.
 */
export class CoalescedWriter {
  private latest: string | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly storage: CursorStorage,
    private readonly key: string,
    private readonly onError: (err: unknown) => void,
  ) {}

  write(value: string): void {
    this.latest = value;
    this.running ??= this.drain();
  }

  /** Resolves once every value written so far is stored. */
  flush(): Promise<void> {
    return this.running ?? Promise.resolve();
  }

  private async drain(): Promise<void> {
    while (this.latest !== undefined) {
      const v = this.latest;
      this.latest = undefined;
      try {
        await this.storage.setItem(this.key, v);
      } catch (err) {
        this.onError(err);
      }
    }
    this.running = undefined;
  }
}
