/**
 * One socket's replays, paced by what they cost (issue 8: replay amplification).
 *
 * A subscribe with a cursor costs the history it replays, not one frame. Each socket gets one
 * lane, and every replay of that socket runs through it:
 * - one page in flight per socket: the next page is read from storage only once the previous one
 *   has left the process (the send callback), so output follows the client's read speed and at
 *   most one page per socket waits in memory;
 * - pages are charged by their bytes to a token bucket (`burstBytes`, refilled at
 *   `bytesPerSecond`); once it is spent the lane waits for the refill. The bucket belongs to the
 *   client (a token's user, or an open-mode address), not the socket: its sockets share it, and
 *   reconnecting does not refill it;
 * - one pending replay per room: a new replay of a room replaces the one still pending;
 * - restarting an unfinished replay while the bucket is spent is refused (`admit`), and a client
 *   that keeps doing so is told to go (`flood`).
 * So a client's replay output, over all its sockets, is at most burstBytes + bytesPerSecond x
 * seconds + one page: a page is sent only while the bucket is positive, and charged in the same
 * synchronous step.
 */
import { TokenBucket } from '../token-bucket.ts';

export interface ReplayBudget {
  /** Replay bytes a socket may receive at once. */
  burstBytes: number;
  /** Refill of the bucket, bytes per second: a socket's sustained replay rate. */
  bytesPerSecond: number;
  /** Size a page aims at (a page holds at least one message, so it may pass it by one). */
  pageBytes: number;
  /** Restarts refused (without a calm spell: the bucket full again) before the verdict is `flood`. */
  maxRefusals: number;
}

export const DEFAULT_REPLAY_BUDGET: Readonly<ReplayBudget> = Object.freeze({
  burstBytes: 4 * 1024 * 1024,
  bytesPerSecond: 1024 * 1024,
  pageBytes: 64 * 1024,
  maxRefusals: 10,
});

/**
 * One replay's next step: reads and sends a page of about `maxBytes`. When it sent anything
 * (`bytes` > 0) it calls `onFlushed` exactly once, when the page has left the process (with an
 * error if it never will). `done`: the replay caught up (nothing more to send).
 */
export type ReplayStep = (maxBytes: number, onFlushed: (err?: Error) => void) => { bytes: number; done: boolean };

/** `ok`, or refused with when to retry; `flood` means refused too often: close the socket (1008). */
export type ReplayVerdict = { kind: 'ok' } | { kind: 'refused' | 'flood'; retryAfterSeconds: number };

/** Time as the lane sees it (a fake one in unit tests). */
export interface LaneClock {
  now(): number;
  /** Runs `fn` after `ms`; returns what cancels it. */
  later(ms: number, fn: () => void): () => void;
  /** Runs `fn` once pending I/O had its turn (between pages, so other sockets are served). */
  soon(fn: () => void): void;
}

export const realClock: LaneClock = {
  now: () => Date.now(),
  later: (ms, fn) => {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  },
  soon: (fn) => void setImmediate(fn),
};

export const OK: ReplayVerdict = Object.freeze({ kind: 'ok' });

/** Replay bytes a client may receive: a token bucket of bytes, shared by the lanes of its sockets. */
export class ReplayBucket {
  private readonly clock: LaneClock;
  private readonly bytes: TokenBucket;

  constructor(budget: Readonly<ReplayBudget> = DEFAULT_REPLAY_BUDGET, clock: LaneClock = realClock) {
    this.clock = clock;
    this.bytes = TokenBucket.perSecond(budget.burstBytes, budget.bytesPerSecond, clock.now());
  }

  /** Bytes that may be sent now (refilled to this moment); zero or less: wait. */
  available(): number {
    return this.bytes.refill(this.clock.now());
  }

  /** Full again: the client has been calm for a while (and the bucket can be forgotten). */
  get full(): boolean {
    return this.available() >= this.bytes.capacity;
  }

  /** Milliseconds until the bucket is positive again (at least 1). */
  waitMs(): number {
    this.available();
    return Math.max(1, Math.ceil(this.bytes.msUntilPositive()));
  }

  /** Debt of at most one page: the bucket goes below zero and the next page waits for it. */
  charge(bytes: number): void {
    this.bytes.spend(bytes, this.clock.now());
  }
}

export class ReplayLane {
  private readonly budget: Readonly<ReplayBudget>;
  private readonly clock: LaneClock;
  private readonly bucket: ReplayBucket;
  /** Pending replays by room, served round-robin in this order. */
  private readonly jobs = new Map<string, ReplayStep>();
  /** This socket's refused restarts since its client was last calm. */
  private refusals = 0;
  private inFlight = false;
  private cancelWait: (() => void) | undefined;
  private closed = false;

  /** `bucket`: the client's, shared with its other sockets; by default this socket's own. */
  constructor(budget: Readonly<ReplayBudget> = DEFAULT_REPLAY_BUDGET, clock: LaneClock = realClock, bucket = new ReplayBucket(budget, clock)) {
    this.budget = budget;
    this.clock = clock;
    this.bucket = bucket;
  }

  /** Replays waiting to send (their next page). */
  get pending(): number {
    return this.jobs.size;
  }

  /**
   * Whether a new replay of `room` may start: refused when it would restart one still pending
   * while the bucket is spent. A refused restart changes nothing (the pending replay goes on).
   */
  admit(room: string): ReplayVerdict {
    if (this.bucket.full) this.refusals = 0; // calm again: past refusals are forgiven
    if (!this.jobs.has(room) || this.bucket.available() > 0) return OK;
    this.refusals++;
    const retryAfterSeconds = Math.ceil(this.bucket.waitMs() / 1000);
    return { kind: this.refusals > this.budget.maxRefusals ? 'flood' : 'refused', retryAfterSeconds };
  }

  /** Queues the replay of `room`, replacing that room's pending one; its first page may go at once. */
  start(room: string, step: ReplayStep): void {
    if (this.closed) return;
    this.jobs.delete(room);
    this.jobs.set(room, step);
    this.pump();
  }

  /** Drops the pending replay of `room` (unsubscribed). A page already sent still completes. */
  cancel(room: string): void {
    this.jobs.delete(room);
  }

  /** The socket is gone: nothing more is sent, no timer is left behind. */
  close(): void {
    this.closed = true;
    this.jobs.clear();
    this.cancelWait?.();
    this.cancelWait = undefined;
  }

  private pump(): void {
    while (!this.closed && !this.inFlight && this.cancelWait === undefined && this.jobs.size > 0) {
      if (this.bucket.available() <= 0) {
        this.cancelWait = this.clock.later(this.bucket.waitMs(), () => {
          this.cancelWait = undefined;
          this.pump();
        });
        return;
      }
      const [room, step] = this.jobs.entries().next().value!;
      this.jobs.delete(room);
      this.inFlight = true;
      const { bytes, done } = step(this.budget.pageBytes, (err) => this.flushed(err));
      this.bucket.charge(bytes);
      // To the back of the queue (other rooms take their turn), unless replaced meanwhile.
      if (!done && !this.jobs.has(room)) this.jobs.set(room, step);
      if (bytes === 0) this.inFlight = false;
    }
  }

  private flushed(err?: Error): void {
    if (err) return this.close(); // the socket failed: nothing more will reach it
    this.inFlight = false;
    this.clock.soon(() => this.pump());
  }
}
