import { createHash } from 'node:crypto';
import type { LogRecord } from './domain/records.ts';

/**
 * Is the stream still the log this node's stored offsets belong to? Every answer to that is
 * here, as pure functions over what the node stored and what the stream delivered; the Replica
 * carries them out (store writes, client resets) and the consumer only moves bytes.
 *
 * Three ways the log can change under a node:
 * - **gap**: retention removed offsets before this node read them (the log is the same; the
 *   node records the hole and reads on);
 * - **reset**: the stream was deleted and re-created, so offsets start over. Told by the epoch
 *   record at offset 0 (written by whoever created the stream), by the record at the node's
 *   last offset not being the one it stored (the anchor), or by the stream delivering an offset
 *   below the one asked for (shorter than what the node has read);
 * - **same log**: everything else.
 */

/** What a node stored about its position in the log. */
export interface StoredPosition {
  /** Last offset stored (or skipped); -1 when nothing was read yet. */
  lastOffset: number;
  /** Fingerprint of the record at lastOffset; null when unknown (stored by an older version). */
  lastHash: string | null;
  /** The log the stored seqs belong to; null until its epoch record was read. */
  epoch: string | null;
}

/** A record's identity for the anchor check: stored for the last record of every batch. */
export const fingerprint = (body: Buffer): string => createHash('sha1').update(body).digest('base64url');

/** Whether a (re)subscribe should first read the stream's first record: only a node with data has something to compare. */
export const needsFirstRecord = (stored: StoredPosition): boolean => stored.lastOffset >= 0;

export type FirstRecordVerdict =
  | { action: 'same' }
  /** Data read before the log was named (an older version): take the stream's epoch as ours. */
  | { action: 'adopt'; epoch: string }
  | { action: 'reset'; epoch: string; why: string };

/**
 * Compares the stream's first record (undefined when none arrived in time) with the log the
 * stored offsets belong to.
 */
export function judgeFirstRecord(stored: StoredPosition, first: { offset: number; record: LogRecord | undefined } | undefined): FirstRecordVerdict {
  // Empty, or its head was removed by retention: nothing to compare.
  if (!first || first.offset !== 0 || first.record?.kind !== 'epoch') return { action: 'same' };
  const theirs = first.record.epoch;
  if (stored.epoch === null) return { action: 'adopt', epoch: theirs };
  if (stored.epoch !== theirs) return { action: 'reset', epoch: theirs, why: `the stream's epoch is ${theirs}, this node's data is from epoch ${stored.epoch}` };
  return { action: 'same' };
}

/** Where one subscription stands in the log. */
export interface ReadCursor {
  /** The next offset this node has not stored. */
  expected: number;
  /** Offset of the already-stored record read again to prove the log is the same; -1 when none (or checked). */
  anchor: number;
  /** Its stored fingerprint (null: unknown, not checked). */
  anchorHash: string | null;
}

/**
 * A subscription starts one record early: the last stored record comes back first and must be
 * the same record. (A stream re-created shorter than the node's position would otherwise make
 * the broker wait, silently, until the new log reaches it.)
 */
export function subscriptionStart(stored: StoredPosition): { from: number; cursor: ReadCursor } {
  const anchor = stored.lastOffset;
  return { from: Math.max(anchor, 0), cursor: { expected: stored.lastOffset + 1, anchor, anchorHash: stored.lastHash } };
}

export type BatchVerdict =
  /** Store `batch.slice(skip)` (the re-read anchor is skipped); record `gap` first when set. */
  | { action: 'apply'; skip: number; gap?: { from: number; to: number }; cursor: ReadCursor }
  /** The stream is not the log the node stored: nothing of this batch is stored or acked. */
  | { action: 'reset'; why: string; error: string };

/** Judges one batch (offsets ascending, as delivered) against where the subscription stands. */
export function judgeBatch(cursor: ReadCursor, batch: readonly { offset: number; body: Buffer }[]): BatchVerdict {
  let skip = 0;
  const { anchor } = cursor;
  if (anchor >= 0 && batch[0]!.offset === anchor) {
    if (cursor.anchorHash !== null && fingerprint(batch[0]!.body) !== cursor.anchorHash) {
      return {
        action: 'reset',
        why: `the record at offset ${anchor} is not the one this node stored there`,
        error: `the record at offset ${anchor} changed: the stream was re-created`,
      };
    }
    skip = 1;
  }
  // The anchor is only ever the first record of the subscription's first batch.
  const checked: ReadCursor = anchor >= 0 ? { ...cursor, anchor: -1, anchorHash: null } : cursor;
  if (skip === batch.length) return { action: 'apply', skip, cursor: checked };
  const first = batch[skip]!.offset;
  const { expected } = cursor;
  if (first < expected) {
    return {
      action: 'reset',
      why: `the stream delivered offset ${first} where this node expected ${expected}: it is shorter than what this node has read`,
      error: `stream rewound from offset ${expected} to ${first}: re-created`,
    };
  }
  const next: ReadCursor = { ...checked, expected: batch[batch.length - 1]!.offset + 1 };
  // A stream spends one offset on its own bookkeeping entry (the tracking snapshot) at the start
  // of every segment, and never delivers it: a batch can begin one past where the last ended
  // with nothing lost. Retention removes whole segments (that entry and at least one record),
  // so a real hole is always two offsets or more.
  return first > expected + 1 ? { action: 'apply', skip, gap: { from: expected, to: first - 1 }, cursor: next } : { action: 'apply', skip, cursor: next };
}
