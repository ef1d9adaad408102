import { createHash } from 'node:crypto';
import type { Delivery, LogHandler } from './broker/consumer.ts';
import { CLOSE } from './errors.ts';
import { decodeLogRecord, type Message } from './domain/message.ts';
import type { Hub } from './hub/hub.ts';
import type { Logger } from './log.ts';
import type { LogEntry, MessageStore } from './store/messages.ts';

/**
 * This node's copy of the log: turns what the consumer reads into store writes and hub pushes,
 * and watches the log's continuity (re-created stream, offsets lost to retention, records that
 * are not messages). Knows the store and the hub; the consumer knows neither.
 */
export class Replica implements LogHandler<Message[]> {
  private readonly store: MessageStore;
  private readonly hub: Hub;
  private readonly log: Logger;
  private readonly databasePath: string;
  invalidRecords = 0;

  constructor(store: MessageStore, hub: Hub, log: Logger, databasePath: string) {
    this.store = store;
    this.hub = hub;
    this.log = log;
    this.databasePath = databasePath;
    for (const g of store.gaps()) this.warnGap(g.fromOffset, g.toOffset, 'known gap in this node\'s copy of the log');
  }

  startOffset(): number {
    return this.store.lastOffset() + 1;
  }

  /** Decodes and stores one batch (one transaction); returns the new messages, to push. */
  persist(batch: Delivery[]): Message[] {
    const entries: LogEntry[] = new Array(batch.length);
    for (let i = 0; i < batch.length; i++) {
      const { offset, body } = batch[i]!;
      const decoded = decodeLogRecord(body);
      if (decoded?.kind === 'message') entries[i] = { offset, record: decoded.record };
      else if (decoded?.kind === 'epoch') entries[i] = { offset, epoch: decoded.epoch };
      else {
        if (offset > this.store.lastOffset()) {
          this.invalidRecords++;
          this.log.warn({ offset, bytes: body.length }, 'skipping a stream record that is not a valid message');
        }
        entries[i] = { offset };
      }
    }
    // The last record's fingerprint lets the next subscribe prove the log is still the same one.
    if (batch.length > 0) entries[batch.length - 1]!.hash = fingerprint(batch[batch.length - 1]!.body);
    return this.store.append(entries);
  }

  /**
   * The record at this node's last offset, read again at subscribe: if it is not the one stored,
   * the stream was re-created (and has grown past this node's position). False means: reset done.
   */
  checkAnchor(anchor: Delivery): boolean {
    const known = this.store.lastHash();
    if (known === null || anchor.offset !== this.store.lastOffset() || fingerprint(anchor.body) === known) return true;
    this.reset(null, `the record at offset ${anchor.offset} is not the one this node stored there`);
    return false;
  }

  deliver(stored: Message[]): void {
    this.hub.publish(stored);
  }

  /** Compares the stream's first record with the log this node's offsets belong to. */
  checkFirst(first: Delivery | undefined): void {
    if (!first || first.offset !== 0) return; // empty, or its head was removed by retention
    const decoded = decodeLogRecord(first.body);
    if (decoded?.kind !== 'epoch') return;
    const mine = this.store.epoch();
    if (mine === null) this.store.adoptEpoch(decoded.epoch);
    else if (mine !== decoded.epoch) this.reset(decoded.epoch, `the stream's epoch is ${decoded.epoch}, this node's data is from epoch ${mine}`);
  }

  onRewind(requested: number, got: number): void {
    this.reset(null, `the stream delivered offset ${got} where this node expected ${requested}: it is shorter than what this node has read`);
  }

  onGap(from: number, to: number): void {
    this.store.recordGap(from, to);
    this.warnGap(from, to, 'stream offsets missing: the stream dropped them (retention) before this node read them');
  }

  status() {
    const gaps = this.store.gaps();
    return {
      epoch: this.store.epoch(),
      lastOffset: this.store.lastOffset(),
      invalidRecords: this.invalidRecords,
      ...(gaps.length > 0 ? { missingSeqs: gaps.map((g) => ({ from: g.fromOffset + 1, to: g.toOffset + 1 })) } : {}),
    };
  }

  private warnGap(from: number, to: number, msg: string): void {
    this.log.error({ fromSeq: from + 1, toSeq: to + 1, count: to - from + 1 }, msg);
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

const fingerprint = (body: Buffer) => createHash('sha1').update(body).digest('base64url');
