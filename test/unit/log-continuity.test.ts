import { describe, expect, it } from 'vitest';
import { epochRecord } from '../../src/domain/records.ts';
import { fingerprint, judgeBatch, judgeFirstRecord, needsFirstRecord, subscriptionStart, type StoredPosition } from '../../src/log-continuity.ts';

const body = (s: string) => Buffer.from(s);
const rec = (offset: number, text = `r${offset}`) => ({ offset, body: body(text) });
const fresh: StoredPosition = { lastOffset: -1, lastHash: null, epoch: null };
const stored = (lastOffset: number, lastText = `r${lastOffset}`, epoch: string | null = 'e1'): StoredPosition => ({
  lastOffset,
  lastHash: fingerprint(body(lastText)),
  epoch,
});

describe('log continuity: the stream\'s first record', () => {
  it('is only read by a node that has stored something', () => {
    expect(needsFirstRecord(fresh)).toBe(false);
    expect(needsFirstRecord(stored(0))).toBe(true);
  });

  it('same epoch, no record, a head removed by retention, or a first record that is no epoch: the same log', () => {
    const e1 = { offset: 0, record: epochRecord('e1') };
    expect(judgeFirstRecord(stored(5), e1)).toEqual({ action: 'same' });
    expect(judgeFirstRecord(stored(5), undefined)).toEqual({ action: 'same' });
    expect(judgeFirstRecord(stored(5), { offset: 3, record: epochRecord('e2') })).toEqual({ action: 'same' });
    expect(judgeFirstRecord(stored(5), { offset: 0, record: undefined })).toEqual({ action: 'same' });
    expect(judgeFirstRecord(stored(5), { offset: 0, record: { kind: 'message', id: 'a', room: 'r', sender: 's', body: 'b', createdAt: 1 } })).toEqual({
      action: 'same',
    });
  });

  it('data from before the log was named adopts the stream\'s epoch', () => {
    expect(judgeFirstRecord(stored(5, 'r5', null), { offset: 0, record: epochRecord('e9') })).toEqual({ action: 'adopt', epoch: 'e9' });
  });

  it('another epoch: reset to the new log, saying why', () => {
    expect(judgeFirstRecord(stored(5), { offset: 0, record: epochRecord('e2') })).toEqual({
      action: 'reset',
      epoch: 'e2',
      why: "the stream's epoch is e2, this node's data is from epoch e1",
    });
  });
});

describe('log continuity: where a subscription starts', () => {
  it('a fresh node reads from offset 0 with no anchor', () => {
    expect(subscriptionStart(fresh)).toEqual({ from: 0, cursor: { expected: 0, anchor: -1, anchorHash: null } });
  });

  it('a node with data reads its last stored record again first (the anchor)', () => {
    const s = stored(41);
    expect(subscriptionStart(s)).toEqual({ from: 41, cursor: { expected: 42, anchor: 41, anchorHash: s.lastHash } });
  });
});

describe('log continuity: each batch', () => {
  const start = (s: StoredPosition) => subscriptionStart(s).cursor;

  it('the anchor unchanged is skipped; what follows is applied and the cursor moves on', () => {
    const v = judgeBatch(start(stored(4)), [rec(4), rec(5), rec(6)]);
    expect(v).toEqual({ action: 'apply', skip: 1, cursor: { expected: 7, anchor: -1, anchorHash: null } });
  });

  it('a batch of only the anchor applies nothing and keeps the position', () => {
    expect(judgeBatch(start(stored(4)), [rec(4)])).toEqual({ action: 'apply', skip: 1, cursor: { expected: 5, anchor: -1, anchorHash: null } });
  });

  it('the anchor changed: the stream was re-created (reset, nothing stored)', () => {
    expect(judgeBatch(start(stored(4)), [rec(4, 'another'), rec(5)])).toEqual({
      action: 'reset',
      why: 'the record at offset 4 is not the one this node stored there',
      error: 'the record at offset 4 changed: the stream was re-created',
    });
  });

  it('an anchor whose fingerprint is unknown (older version) is taken as the same record', () => {
    const cursor = start({ lastOffset: 4, lastHash: null, epoch: 'e1' });
    expect(judgeBatch(cursor, [rec(4, 'anything'), rec(5)])).toMatchObject({ action: 'apply', skip: 1 });
  });

  it('an offset below the one expected: the stream is shorter than what was read (reset)', () => {
    expect(judgeBatch(start(stored(9)), [rec(2), rec(3)])).toEqual({
      action: 'reset',
      why: 'the stream delivered offset 2 where this node expected 10: it is shorter than what this node has read',
      error: 'stream rewound from offset 10 to 2: re-created',
    });
    // also later in a subscription
    expect(judgeBatch({ expected: 20, anchor: -1, anchorHash: null }, [rec(19)])).toMatchObject({ action: 'reset' });
  });

  it('offsets skipped (retention removed them): a gap from the expected offset to the one before the first delivered', () => {
    expect(judgeBatch(start(stored(4)), [rec(10), rec(11)])).toEqual({
      action: 'apply',
      skip: 0,
      gap: { from: 5, to: 9 },
      cursor: { expected: 12, anchor: -1, anchorHash: null },
    });
    expect(judgeBatch(start(fresh), [rec(3)])).toEqual({ action: 'apply', skip: 0, gap: { from: 0, to: 2 }, cursor: { expected: 4, anchor: -1, anchorHash: null } });
  });

  it("one offset skipped between batches is the stream's own segment entry, not a hole", () => {
    // Seen on RabbitMQ 3.10: every new segment spends one offset that is never delivered; a batch
    // that begins right after it used to be reported as a one-offset gap (and failed CI).
    const v = judgeBatch({ expected: 404, anchor: -1, anchorHash: null }, [rec(405), rec(406)]);
    expect(v).toEqual({ action: 'apply', skip: 0, cursor: { expected: 407, anchor: -1, anchorHash: null } });
    // also right after the anchor of a new subscription
    expect(judgeBatch(start(stored(4)), [rec(4), rec(6)])).toEqual({ action: 'apply', skip: 1, cursor: { expected: 7, anchor: -1, anchorHash: null } });
    // two offsets are a hole
    expect(judgeBatch({ expected: 404, anchor: -1, anchorHash: null }, [rec(406)])).toMatchObject({ gap: { from: 404, to: 405 } });
  });

  it('contiguous batches apply whole, batch after batch', () => {
    let cursor = start(fresh);
    for (const batch of [[rec(0), rec(1)], [rec(2)], [rec(3), rec(4), rec(5)]]) {
      const v = judgeBatch(cursor, batch);
      expect(v).toMatchObject({ action: 'apply', skip: 0 });
      expect(v).not.toHaveProperty('gap');
      if (v.action === 'apply') cursor = v.cursor;
    }
    expect(cursor.expected).toBe(6);
  });
});
