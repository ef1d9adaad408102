import type { Committed, Delivery, LogSink } from './broker/consumer.ts';
import { CLOSE } from './errors.ts';
import { decodeRecord, seqOf } from './domain/records.ts';
import type { Hub } from './hub/hub.ts';
import {
  fingerprint,
  judgeBatch,
  judgeFirstRecord,
  needsFirstRecord,
  subscriptionStart,
  type ReadCursor,
  type StoredPosition,
} from './log-continuity.ts';
import type { Logger } from './log.ts';
import type { Applied, LogEntry, MessageStore } from './store/messages.ts';

const NOTHING: Applied = { messages: [], reads: [] };

/**
 * This node's copy of the log: turns what the consumer reads into store writes and hub pushes,
 * and carries out what log-continuity.ts decides (re-created stream, offsets lost to retention)
 * and skips records it cannot apply. Knows the store and the hub; the consumer knows neither.
 */
export class Replica implements LogSink<Applied> {
  private readonly store: MessageStore;
  private readonly hub: Hub;
  private readonly log: Logger;
  private readonly databasePath: string;
  /** Where the current subscription stands; set by open(). */
  private cursor: ReadCursor = { expected: 0, anchor: -1, anchorHash: null };
  invalidRecords = 0;

  constructor(store: MessageStore, hub: Hub, log: Logger, databasePath: string) {
    this.store = store;
    this.hub = hub;
    this.log = log;
    this.databasePath = databasePath;
    for (const g of store.gaps()) this.warnGap(g.fromOffset, g.toOffset, 'known gap in this node\'s copy of the log');
  }

  probe(): void {
    this.store.probeWrite();
  }

  async open(peekFirst: () => Promise<Delivery | undefined>): Promise<{ from: number; next: number }> {
    const before = this.position();
    if (needsFirstRecord(before)) {
      const first = await peekFirst();
      const decoded = first && decodeRecord(first.body);
      const verdict = judgeFirstRecord(before, first && { offset: first.offset, record: decoded?.status === 'ok' ? decoded.record : undefined });
      if (verdict.action === 'adopt') this.store.adoptEpoch(verdict.epoch);
      else if (verdict.action === 'reset') this.reset(verdict.epoch, verdict.why);
    }
    const { from, cursor } = subscriptionStart(this.position());
    this.cursor = cursor;
    return { from, next: cursor.expected };
  }

  commit(batch: Delivery[]): Committed<Applied> {
    const verdict = judgeBatch(this.cursor, batch);
    if (verdict.action === 'reset') {
      this.reset(null, verdict.why);
      return { resubscribe: true, error: verdict.error };
    }
    this.cursor = verdict.cursor;
    if (verdict.gap) {
      const { from, to } = verdict.gap;
      this.store.recordGap(from, to);
      this.warnGap(from, to, 'stream offsets missing: the stream dropped them (retention) before this node read them');
    }
    return { resubscribe: false, result: verdict.skip === batch.length ? NOTHING : this.append(verdict.skip === 0 ? batch : batch.slice(verdict.skip)) };
  }

  deliver(applied: Applied): void {
    if (applied.messages.length > 0) this.hub.push(applied.messages);
    if (applied.reads.length > 0) this.hub.publishReads(applied.reads);
  }

  /** Decodes and applies one batch (one transaction); returns the new messages and moved read markers, to push. */
  private append(batch: Delivery[]): Applied {
    const entries: LogEntry[] = new Array(batch.length);
    for (let i = 0; i < batch.length; i++) {
      const { offset, body } = batch[i]!;
      const decoded = decodeRecord(body);
      if (decoded.status === 'ok') entries[i] = { offset, record: decoded.record };
      else {
        // Skipped and counted, never fatal: a newer node may write kinds this one does not know.
        if (offset > this.store.lastOffset()) {
          this.invalidRecords++;
          if (decoded.status === 'unknown') this.log.warn({ offset, kind: decoded.kind, v: decoded.v }, 'skipping a stream record of a kind this node does not know');
          else this.log.warn({ offset, bytes: body.length }, 'skipping a stream record that is not a valid message');
        }
        entries[i] = { offset };
      }
    }
    // The last record's fingerprint lets the next subscribe prove the log is still the same one.
    entries[batch.length - 1]!.hash = fingerprint(batch[batch.length - 1]!.body);
    return this.store.apply(entries);
  }

  private position(): StoredPosition {
    return { lastOffset: this.store.lastOffset(), lastHash: this.store.lastHash(), epoch: this.store.epoch() };
  }

  status() {
    const gaps = this.store.gaps();
    return {
      epoch: this.store.epoch(),
      lastOffset: this.store.lastOffset(),
      invalidRecords: this.invalidRecords,
      ...(gaps.length > 0 ? { missingSeqs: gaps.map((g) => ({ from: seqOf(g.fromOffset), to: seqOf(g.toOffset) })) } : {}),
    };
  }

  private warnGap(from: number, to: number, msg: string): void {
    this.log.error({ fromSeq: seqOf(from), toSeq: seqOf(to), count: to - from + 1 }, msg);
  }

  /**
   * The stream was re-created under this node. Its old seqs must never mix with the new log's:
   * keep a copy of the old data, start over from the new log's first offset, and make every
   * client reconnect (their cursors name positions in the old log).
   */
  private reset(epoch: string | null, why: string): void {
    const backup = `${this.databasePath}.epoch-${this.store.epoch() ?? 'unknown'}-${Date.now()}.bak`;
    this.log.error({ backup, oldEpoch: this.store.epoch(), newEpoch: epoch }, `stream was re-created (${why}); old data saved, following the new log from its start`);
    this.store.resetForNewLog(epoch, backup);
    this.hub.disconnectAll(CLOSE.logReset, 'the log was reset: resubscribe without a cursor');
  }
}

