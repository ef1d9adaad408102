import { afterEach, describe, expect, it } from 'vitest';
import type { MessageRecord } from '../../src/domain/records.ts';
import { openDb } from '../../src/store/db.ts';
import { MessageStore, SINCE_SKEW_MS, StreamMismatchError } from '../../src/store/messages.ts';
import { tempDir } from '../support/temp.ts';

const rec = (id: string, room = 'general', createdAt = 1_700_000_000_000): MessageRecord => ({ kind: 'message', id, room, sender: 'ana', body: `body ${id}`, createdAt });

describe('MessageStore (real SQLite file)', () => {
  const dirs: { remove(): void }[] = [];
  const open = (stream = 's') => {
    const dir = tempDir();
    dirs.push(dir);
    const path = `${dir.path}/sub/chat.db`;
    return { store: new MessageStore(openDb(path), stream), path };
  };
  afterEach(() => dirs.splice(0).forEach((d) => d.remove()));

  it('stores a batch and its offset together; seq is offset + 1', () => {
    const { store } = open();
    expect(store.lastOffset()).toBe(-1);
    const stored = store.append([
      { offset: 0, record: rec('a') },
      { offset: 1, record: rec('b') },
    ]);
    expect(stored.map((m) => [m.id, m.seq])).toEqual([
      ['a', 1],
      ['b', 2],
    ]);
    expect(store.lastOffset()).toBe(1);
    expect(store.head()).toBe(2);
  });

  it('skips re-delivered offsets and duplicate ids, and still advances the offset past them', () => {
    const { store } = open();
    store.append([{ offset: 0, record: rec('a') }]);
    const stored = store.append([
      { offset: 0, record: rec('a') }, // re-delivery
      { offset: 1, record: rec('a') }, // client retry of the same id
      { offset: 2, record: undefined }, // not a message
      { offset: 3, record: rec('c') },
    ]);
    expect(stored.map((m) => m.id)).toEqual(['c']);
    expect(store.lastOffset()).toBe(3);
    expect(store.page({ after: 0, limit: 10 }).messages.map((m) => [m.id, m.seq])).toEqual([
      ['a', 1],
      ['c', 4],
    ]);
  });

  it('keeps its position across reopening the file', () => {
    const { store, path } = open();
    store.append([{ offset: 41, record: rec('x') }]);
    const again = new MessageStore(openDb(path), 's');
    expect(again.lastOffset()).toBe(41);
    expect(again.page({ after: 0, limit: 10 }).messages[0]!.seq).toBe(42);
  });

  it('refuses a database that holds another stream', () => {
    const { store, path } = open('first');
    store.append([{ offset: 0, record: rec('x') }]);
    expect(() => new MessageStore(openDb(path), 'second')).toThrow(StreamMismatchError);
  });

  it('pages by cursor with next and hasMore, per room or across rooms', () => {
    const { store } = open();
    store.append(Array.from({ length: 25 }, (_, i) => ({ offset: i, record: rec(`m${i}`, i % 2 ? 'odd' : 'even') })));
    const p1 = store.page({ after: 0, limit: 10 });
    expect(p1.messages).toHaveLength(10);
    expect(p1).toMatchObject({ next: 10, hasMore: true });
    const last = store.page({ after: 20, limit: 10 });
    expect(last.messages.map((m) => m.seq)).toEqual([21, 22, 23, 24, 25]);
    expect(last).toMatchObject({ next: 25, hasMore: false });
    const empty = store.page({ after: 25, limit: 10 });
    expect(empty).toEqual({ messages: [], next: 25, hasMore: false, epoch: null });
    const odd = store.page({ room: 'odd', after: 0, limit: 100 });
    expect(odd.messages.every((m) => m.room === 'odd')).toBe(true);
    expect(odd.messages).toHaveLength(12);
    expect(store.roomHead('odd')).toBe(24);
    expect(store.roomHead('nobody')).toBe(0);
  });

  it('since is inclusive, ordered by seq, and exact for clocks skewed less than the margin', () => {
    const { store } = open();
    const t = 1_700_000_000_000;
    store.append([
      { offset: 0, record: rec('old', 'r', t - SINCE_SKEW_MS * 3) },
      { offset: 1, record: rec('skewed-ahead', 'r', t + 5) }, // a node whose clock runs ahead
      { offset: 2, record: rec('before', 'r', t - 1) },
      { offset: 3, record: rec('exact', 'r', t) },
      { offset: 4, record: rec('after', 'r', t + 1) },
    ]);
    const page = store.page({ since: t, limit: 100 });
    expect(page.messages.map((m) => m.id)).toEqual(['skewed-ahead', 'exact', 'after']);
    expect(page.next).toBe(5);
    expect(store.page({ since: t + 10, limit: 100 })).toEqual({ messages: [], next: 5, hasMore: false, epoch: null });
  });

  it('answers every read through an index, so a page costs the same at any table size', () => {
    const { store, path } = open();
    // Give the planner real statistics over a skewed table, as a long-lived node would have.
    store.append(Array.from({ length: 5000 }, (_, i) => ({ offset: i, record: rec(`m${i}`, i % 50 ? 'big' : 'small', 1_700_000_000_000 + i) })));
    const db = openDb(path).$client;
    db.exec('ANALYZE');
    // The access path each read over `messages` must take; a new read has to be added here.
    const expected: Record<string, RegExp> = {
      pageAll: /USING INTEGER PRIMARY KEY \(rowid>\?\)/,
      sinceAll: /USING INTEGER PRIMARY KEY \(rowid>\?\)/,
      pageRoom: /USING INDEX messages_room_seq \(room=\? AND seq>\?\)/,
      sinceRoom: /USING INDEX messages_room_seq \(room=\? AND seq>\?\)/,
      roomHead: /USING COVERING INDEX messages_room_seq \(room=\?\)/,
      sinceStart: /USING COVERING INDEX messages_created_at \(created_at<\?\)/,
      head: /^SEARCH messages$/, // max(rowid): one step to the end of the table
      beforeRoom: /USING INDEX messages_room_seq \(room=\? AND seq<\?\)/,
      beforeRoomJson: /USING INDEX messages_room_seq \(room=\? AND seq>\? AND seq<\?\)/,
      pageAllJson: /USING INTEGER PRIMARY KEY \(rowid>\?\)/,
      sinceAllJson: /USING INTEGER PRIMARY KEY \(rowid>\?\)/,
      pageRoomJson: /USING INDEX messages_room_seq \(room=\? AND seq>\?\)/,
      sinceRoomJson: /USING INDEX messages_room_seq \(room=\? AND seq>\?\)/,
      pageAllMore: /USING INTEGER PRIMARY KEY \(rowid>\?\)/,
      sinceAllMore: /USING INTEGER PRIMARY KEY \(rowid>\?\)/,
      pageRoomMore: /USING COVERING INDEX messages_room_seq \(room=\? AND seq>\?\)/,
      sinceRoomMore: /USING INDEX messages_room_seq \(room=\? AND seq>\?\)/,
      beforeMore: /USING COVERING INDEX messages_room_seq \(room=\? AND seq<\?\)/,
      startBefore: /USING COVERING INDEX messages_room_seq \(room=\? AND seq<\?\)/,
    };
    const checked: string[] = [];
    for (const [name, source] of Object.entries(store.statements())) {
      if (!/^\s*select/i.test(source) || !/from "?messages"?/i.test(source)) continue;
      const sql = source.replace(/@\w+/g, '?'); // named or positional: bind 1 everywhere
      const params = (sql.match(/\?/g) ?? []).map(() => 1);
      const plan = db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[];
      const details = plan.map((r) => r.detail).join(' | ');
      expect(expected[name], `no expected plan for ${name}`).toBeDefined();
      expect(details, name).toMatch(expected[name]!);
      expect(details, name).not.toMatch(/TEMP B-TREE/);
      checked.push(name);
    }
    expect(checked.sort()).toEqual(Object.keys(expected).sort());
  });

  it('learns the epoch from the first epoch record only, and resets to a new log keeping a backup', () => {
    const { store, path } = open();
    store.append([
      { offset: 0, record: { kind: 'epoch', epoch: 'first' } },
      { offset: 1, record: { kind: 'epoch', epoch: 'racer' } }, // a second creator's record: same log
      { offset: 2, record: rec('a') },
    ]);
    expect(store.epoch()).toBe('first');
    expect(new MessageStore(openDb(path), 's').epoch()).toBe('first');
    store.recordGap(3, 9);
    expect(store.gaps()).toEqual([{ fromOffset: 3, toOffset: 9, detectedAt: expect.any(Number) }]);

    const backup = `${path}.bak`;
    store.resetForNewLog('second', backup);
    expect(store.epoch()).toBe('second');
    expect(store.lastOffset()).toBe(-1);
    expect(store.head()).toBe(0);
    expect(store.gaps()).toEqual([]);
    const old = new MessageStore(openDb(backup), 's');
    expect(old.epoch()).toBe('first');
    expect(old.page({ after: 0, limit: 10 }).messages.map((m) => m.id)).toEqual(['a']);
  });

  it('pages return exactly the messages that were stored (createdAt formatted by SQLite matches toISOString)', () => {
    const { store } = open();
    const times = [0, 1, 999, 1000, 951_782_400_123, 1_700_000_000_000, 1_795_240_816_256, 4_102_444_799_999];
    const stored = store.append(times.map((t, i) => ({ offset: i, record: rec(`t${i}`, i % 2 ? 'a' : 'b', t) })));
    expect(stored.map((m) => m.createdAt)).toEqual(times.map((t) => new Date(t).toISOString()));
    expect(store.page({ after: 0, limit: 100 }).messages).toEqual(stored);
    expect(store.page({ since: 0, limit: 100 }).messages).toEqual(stored);
    expect(store.page({ room: 'a', after: 0, limit: 100 }).messages).toEqual(stored.filter((m) => m.room === 'a'));
    expect(store.page({ rooms: { exact: ['b'], prefixes: [] }, after: 0, limit: 100 }).messages).toEqual(stored.filter((m) => m.room === 'b'));
    expect(JSON.stringify(store.page({ after: 0, limit: 1 }).messages[0])).toBe(JSON.stringify(stored[0]));
  });
});
