import { describe, expect, it } from 'vitest';
import { keyedId } from '../../src/domain/id.ts';
import { decodeRecord, encodeRecord, epochRecord, messageRecord, readRecord, RECORD_VERSION, type LogRecord } from '../../src/domain/records.ts';

const raw = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v));
const message = { kind: 'message', id: 'm1', room: 'r', sender: 'ana', body: 'hi', createdAt: 1_700_000_000_000 } as const;

describe('the log record codec', () => {
  it('round-trips every kind', () => {
    const records: LogRecord[] = [message, epochRecord('e1'), readRecord('ana', 'r', 7, 5)];
    for (const r of records) expect(decodeRecord(encodeRecord(r))).toEqual({ status: 'ok', record: r });
  });

  it('writes `kind` first and no version field while the format is version 1', () => {
    expect(RECORD_VERSION).toBe(1);
    expect(encodeRecord(message).toString()).toBe('{"kind":"message","id":"m1","room":"r","sender":"ana","body":"hi","createdAt":1700000000000}');
    expect(encodeRecord(epochRecord('e1')).toString()).toBe('{"kind":"epoch","epoch":"e1"}');
  });

  it('reads messages written before records had a kind (existing streams) as messages', () => {
    const { kind: _, ...old } = message;
    expect(decodeRecord(raw(old))).toEqual({ status: 'ok', record: message });
    // Explicit version 1 is the same format.
    expect(decodeRecord(raw({ ...message, v: 1 }))).toEqual({ status: 'ok', record: message });
  });

  it('drops fields it does not know from a known kind (a newer node may add optional ones)', () => {
    expect(decodeRecord(raw({ ...message, extra: 1 }))).toEqual({ status: 'ok', record: message });
  });

  it('reports a kind or a version this node does not know as unknown, naming it', () => {
    expect(decodeRecord(raw({ kind: 'reaction', room: 'r', user: 'u', seq: 3 }))).toEqual({ status: 'unknown', kind: 'reaction', v: 1 });
    expect(decodeRecord(raw({ ...message, v: 2 }))).toEqual({ status: 'unknown', kind: 'message', v: 2 });
    // Names that exist on Object.prototype are not kinds.
    expect(decodeRecord(raw({ kind: 'toString' }))).toEqual({ status: 'unknown', kind: 'toString', v: 1 });
  });

  it('reports anything else as invalid, never throws', () => {
    const invalid = [
      'not json at all',
      Buffer.from([0xff, 0x00, 0xfe]),
      '[]',
      'null',
      '42',
      { ...message, room: 'bad room' },
      { ...message, body: '' },
      { ...message, createdAt: -1 },
      { ...message, createdAt: 1.5 },
      { ...message, sender: 'a\u0007b' },
      { ...message, sender: 'a\ud800' },
      { ...message, sender: 'a\u202eb' },
      { ...message, sender: 7 },
      { ...message, body: 'a\u0000b' },
      { ...message, body: 'a\udc00' },
      { ...message, id: 'has space' },
      { ...message, id: undefined },
      { ...message, key: 'bad key' },
      { ...message, key: null },
      { ...message, createdAt: '1700000000000' },
      { ...message, createdAt: 2 ** 53 },
      { id: 'y' },
      { kind: 'epoch' },
      { kind: 'epoch', epoch: 'e1', extra: true }, // the epoch record is exact
      { kind: 7 },
      { ...message, v: 0 },
      { ...message, v: '1' },
      { kind: 'read', user: 'ana', room: 'r', seq: -1, createdAt: 1 },
      { kind: 'read', user: 'ana', room: 'r', seq: 1.5, createdAt: 1 },
      { kind: 'read', user: '', room: 'r', seq: 1, createdAt: 1 },
    ];
    for (const v of invalid) expect(decodeRecord(Buffer.isBuffer(v) ? v : raw(v)), String(v)).toEqual({ status: 'invalid' });
  });

  it('builds the message record of accepted input: id derived from (sender, key) with a key, else a fresh UUIDv7; createdAt is now', () => {
    expect(messageRecord({ room: 'r', sender: 'ana', body: 'hi', key: 'mine' }, 5)).toEqual({ kind: 'message', id: keyedId('ana', 'mine'), room: 'r', sender: 'ana', body: 'hi', createdAt: 5, key: 'mine' });
    expect(messageRecord({ room: 'r', sender: 'bo', body: 'hi', key: 'mine' }, 5).id).not.toBe(keyedId('ana', 'mine'));
    const fresh = messageRecord({ room: 'r', sender: 'ana', body: 'hi' }, 1_700_000_000_000);
    expect(fresh.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(decodeRecord(encodeRecord(fresh))).toEqual({ status: 'ok', record: fresh });
  });
});
