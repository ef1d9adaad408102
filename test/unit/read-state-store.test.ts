import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { readRecord, type MessageRecord } from '../../src/domain/records.ts';
import { listRooms } from '../../src/store/conversations.ts';
import { openDb } from '../../src/store/db.ts';
import { MessageStore, type LogEntry } from '../../src/store/messages.ts';
import { UNREAD_CAP } from '../../src/store/read-state.ts';
import { tempDir } from '../support/temp.ts';

const msg = (id: string, room: string, sender: string): MessageRecord => ({ kind: 'message', id, room, sender, body: `body ${id}`, createdAt: 1_700_000_000_000 });
const dir = tempDir();
afterAll(() => dir.remove());
let n = 0;
const open = () => {
  const path = `${dir.path}/rs-${n++}.db`;
  return { store: new MessageStore(openDb(path), 's'), path };
};

/** Feeds records to the store as the log would, one offset each, in batches of `batch`. */
function feed(store: MessageStore, records: LogEntry['record'][], batch = 1000) {
  const moves = [];
  let offset = store.lastOffset() + 1;
  for (let i = 0; i < records.length; i += batch) {
    const applied = store.apply(records.slice(i, i + batch).map((record) => ({ offset: offset++, record })));
    moves.push(...applied.reads);
  }
  return moves;
}

describe('read state in the store (real SQLite)', () => {
  it('applies a marker as max(current, min(seq, room head at that point of the log))', () => {
    const { store } = open();
    const moves = feed(store, [
      msg('a', 'r', 'bob'), // seq 1
      readRecord('ana', 'r', 100), // clamped to head 1
      msg('b', 'r', 'bob'), // seq 3
      readRecord('ana', 'r', 2), // min(2, 3) = 2
      readRecord('ana', 'r', 1), // backwards: ignored
      msg('c', 'other', 'bob'), // seq 6, another room
      readRecord('ana', 'r', 6), // clamped to r's head, 3
      readRecord('ana', 'empty', 5), // a room with no message: stays 0, no move
    ], 3); // batches split mid-way: the head is the one at that point of the log either way
    expect(moves).toEqual([
      { user: 'ana', room: 'r', seq: 1 },
      { user: 'ana', room: 'r', seq: 2 },
      { user: 'ana', room: 'r', seq: 3 },
    ]);
    expect(store.readState.roomOf('ana', 'r')).toEqual({ room: 'r', lastRead: 3, head: 3 });
    expect(store.readState.roomOf('ana', 'empty')).toEqual({ room: 'empty', lastRead: 0, head: 0 });
  });

  it('a re-delivered batch applies nothing twice, and a replay from scratch ends in the same state', () => {
    const a = open().store;
    const records = [msg('a', 'r', 'bob'), msg('b', 'r', 'ana'), readRecord('ana', 'r', 1), msg('c', 's', 'bob'), readRecord('bob', 's', 4), readRecord('ana', 'r', 9)];
    feed(a, records, 2);
    expect(a.apply([{ offset: 2, record: readRecord('ana', 'r', 1) }]).reads).toEqual([]);
    const b = open().store;
    feed(b, records, 1000);
    for (const user of ['ana', 'bob']) expect(listRooms(b.readState, { user, limit: 50 })).toEqual(listRooms(a.readState, { user, limit: 50 }));
  });

  it('a batch whose commit failed leaves its senders out of the room until a batch that commits puts them in', () => {
    const path = `${dir.path}/rs-${n++}.db`;
    const db = openDb(path);
    const store = new MessageStore(db, 's');
    feed(store, [msg('a', 'r', 'ana')]);
    db.$client.exec("CREATE TRIGGER fail BEFORE UPDATE ON consumer_state BEGIN SELECT RAISE(ABORT, 'disk says no'); END");
    expect(() => store.apply([{ offset: 1, record: msg('b', 'r', 'bob') }])).toThrow(/disk says no/);
    db.$client.exec('DROP TRIGGER fail');
    expect(listRooms(store.readState, { user: 'bob', limit: 10 }).rooms).toEqual([]);
    // The same sender and room again: the member row must be written now (nothing was remembered from the failed batch).
    store.apply([{ offset: 1, record: msg('b', 'r', 'bob') }]);
    expect(listRooms(store.readState, { user: 'bob', limit: 10 }).rooms.map((x) => x.room)).toEqual(['r']);
  });

  it('lists the rooms a user posted in or marked read, newest activity first, paged, with exact unread counts', () => {
    const { store } = open();
    const rooms = ['r0', 'r1', 'r2', 'r3', 'r4'];
    const records: LogEntry['record'][] = [];
    let seed = 7;
    const rnd = (k: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % k);
    for (let i = 0; i < 400; i++) records.push(msg(`m${i}`, rooms[rnd(5)]!, ['ana', 'bob', 'cy'][rnd(3)]!));
    for (let i = 0; i < 10; i++) records.push(readRecord('ana', rooms[rnd(5)]!, rnd(400)));
    records.push({ ...msg('keyed', rooms[0]!, 'ana'), key: 'k-1' }); // a room's last message carries its key
    records.push(msg('last', 'r2', 'bob'));
    feed(store, records, 37);
    // brute force from what is stored
    const all = store.page({ after: 0, limit: 1000 }).messages;
    const listed = listRooms(store.readState, { user: 'ana', limit: 2 });
    expect(listed.rooms.map((r) => r.room)[0]).toBe('r2');
    const full = [...listed.rooms];
    let next = listed.next;
    while (next) {
      const page = listRooms(store.readState, { user: 'ana', limit: 2, after: next });
      full.push(...page.rooms);
      next = page.next;
    }
    expect(full.map((r) => r.room).sort()).toEqual(rooms.filter((r) => all.some((m) => m.room === r && m.sender === 'ana')).sort());
    for (const r of full) {
      const inRoom = all.filter((m) => m.room === r.room);
      expect(r.head).toBe(inRoom.at(-1)!.seq);
      expect(r.lastMessage).toEqual(inRoom.at(-1));
      if (r.room === rooms[0]) expect(r.lastMessage).toMatchObject({ id: 'keyed', key: 'k-1' });
      expect(r.unread).toBe(inRoom.filter((m) => m.seq > r.lastRead && m.sender !== 'ana').length);
    }
    expect(full.map((r) => r.head)).toEqual([...full.map((r) => r.head)].sort((x, y) => y - x));
    // given rooms, listed or not
    expect(listRooms(store.readState, { user: 'dee', rooms: ['r1', 'nowhere'], limit: 50 }).rooms).toEqual([
      expect.objectContaining({ room: 'r1', lastRead: 0, unread: all.filter((m) => m.room === 'r1').length }),
      { room: 'nowhere', head: 0, lastMessage: null, lastRead: 0, unread: 0 },
    ]);
    // token mode: only allowed rooms, plus the token's exact rooms
    const allowed = { allows: (room: string) => room === 'r1' || room === 'r9', exact: ['r9'] };
    expect(listRooms(store.readState, { user: 'ana', allowed, limit: 50 }).rooms.map((r) => r.room)).toEqual(
      full.some((r) => r.room === 'r1') ? ['r1', 'r9'] : ['r9'],
    );
  });

  it('caps unread past 10,000 and says so', () => {
    const { store } = open();
    feed(store, Array.from({ length: UNREAD_CAP + 5 }, (_, i) => msg(`m${i}`, 'busy', i === 0 ? 'ana' : 'bob')), 5000);
    expect(listRooms(store.readState, { user: 'ana', limit: 1 }).rooms[0]).toMatchObject({ room: 'busy', unread: UNREAD_CAP, unreadCapped: true });
    feed(store, [readRecord('ana', 'busy', UNREAD_CAP)]);
    expect(listRooms(store.readState, { user: 'ana', limit: 1 }).rooms[0]).toEqual(expect.objectContaining({ unread: 5, lastRead: UNREAD_CAP }));
    expect(listRooms(store.readState, { user: 'ana', limit: 1 }).rooms[0]!.unreadCapped).toBeUndefined();
  });

  it('reads read state through indexes (query plans)', () => {
    const { store, path } = open();
    feed(store, Array.from({ length: 2000 }, (_, i) => (i % 10 ? msg(`m${i}`, i % 7 ? 'big' : 'small', i % 3 ? 'ana' : 'bob') : readRecord('ana', 'big', i))));
    const db = openDb(path).$client;
    db.exec('ANALYZE');
    const expected: Record<string, RegExp> = {
      headOf: /SEARCH room_heads USING INDEX sqlite_autoindex_room_heads_1 \(room=\?\)/,
      markerOf: /SEARCH room_members USING INDEX sqlite_autoindex_room_members_1 \(user=\? AND room=\?\)/,
      memberRooms: /SEARCH m USING INDEX sqlite_autoindex_room_members_1 \(user=\?\).*SEARCH h USING INDEX sqlite_autoindex_room_heads_1 \(room=\?\)/,
      messageAt: /SEARCH messages USING INTEGER PRIMARY KEY \(rowid=\?\)/,
      unread: /SEARCH messages USING INDEX messages_room_seq \(room=\? AND seq>\?\)/,
    };
    const checked: string[] = [];
    for (const [name, source] of Object.entries(store.readState.statements())) {
      if (!/^\s*select/i.test(source)) continue;
      const sql = source.replace(/@\w+/g, '?');
      const plan = (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...(sql.match(/\?/g) ?? []).map(() => 1)) as { detail: string }[]).map((r) => r.detail).join(' | ');
      expect(plan, name).toMatch(expected[name]!);
      expect(plan, name).not.toMatch(/TEMP B-TREE|SCAN (messages|room_heads|room_members)/);
      checked.push(name);
    }
    expect(checked.sort()).toEqual(Object.keys(expected).sort());
  });
});

/**
 * Cost that cannot flake: SQLite's own count of virtual-machine steps per statement (the sqlite3
 * shell's `.stats`), for the same queries over a room of 100,000 messages and one of 100.
 */
describe('a 100,000-message room costs what a 100-message room costs', () => {
  const vmSteps = (path: string, params: Record<string, string | number>, sql: string): number => {
    const script = ['.stats on', ...Object.entries(params).map(([k, v]) => `.parameter set @${k} ${typeof v === 'string' ? `'${v}'` : v}`), `${sql};`].join('\n');
    let out: string;
    try {
      out = execFileSync('sqlite3', ['-bail', path], { input: script, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (err) {
      throw new Error(`sqlite3 failed on ${script}: ${(err as { stderr?: string }).stderr}`);
    }
    const m = /Virtual Machine Steps:\s+(\d+)/.exec(out);
    if (!m) throw new Error(`no VM steps in: ${out}`);
    return Number(m[1]);
  };

  /** Names a statement's positional parameters, in order, so the shell can bind them. */
  const positional = (sql: string, names: string[]) => {
    let i = 0;
    return sql.replace(/\?/g, () => `@${names[i++]}`);
  };

  it('newest page, a middle page, last N, and the conversation list', () => {
    const { store, path } = open();
    const records: LogEntry['record'][] = [];
    // 'big' gets 100,000 messages, 'small' 100, interleaved; both end with ten from others after ana's marker
    for (let i = 0; i < 100_000; i++) {
      records.push(msg(`b${i}`, 'big', i % 4 ? 'bob' : 'ana'));
      if (i % 1000 === 0) records.push(msg(`s${i}`, 'small', i % 4000 ? 'bob' : 'ana'));
    }
    feed(store, records, 10_000);
    const headBig = store.roomHead('big');
    const headSmall = store.roomHead('small');
    const bigPage = store.before('big', undefined, 100).messages;
    const smallPage = store.before('small', undefined, 100).messages;
    feed(store, [readRecord('ana', 'big', bigPage[89]!.seq), readRecord('ana', 'small', smallPage[89]!.seq)]);
    const big = store.statements();
    const rs = store.readState.statements();
    const cases: [string, string, (room: string, head: number) => Record<string, string | number>][] = [
      ['newest page', big.beforeRoom!, (room) => ({ room, before: Number.MAX_SAFE_INTEGER, limit: 51 })],
      ['middle page', big.beforeRoom!, (room, head) => ({ room, before: Math.floor(head / 2), limit: 21 })],
      ['newest page as JSON', big.beforeRoomJson!, (room) => ({ room, start: store.lastCursor(room, 51) + 1, before: Number.MAX_SAFE_INTEGER, limit: 51 })],
      ['last 50', big.startBefore!, (room) => ({ room, before: Number.MAX_SAFE_INTEGER, skip: 49 })],
      ['start of the newest page', big.startBefore!, (room) => ({ room, before: Number.MAX_SAFE_INTEGER, skip: 50 })],
      ['room head', positional(big.roomHead!, ['room', 'one']), (room) => ({ room, one: 1 })],
      ['unread', rs.unread!, (room) => ({ room, after: store.readState.roomOf('ana', room).lastRead, user: 'ana' })],
      ['last message', positional(rs.messageAt!, ['seq']), (_room, head) => ({ seq: head })],
      ['conversation list', positional(rs.memberRooms!, ['user']), () => ({ user: 'ana' })],
    ];
    for (const [name, sql, params] of cases) {
      const large = vmSteps(path, params('big', headBig), sql);
      const small = vmSteps(path, params('small', headSmall), sql);
      // Equal up to a few steps (a deeper B-tree costs no extra VM step; the row counts are the same).
      expect(large, `${name}: ${large} VM steps in the big room, ${small} in the small one`).toBeLessThanOrEqual(small + 10);
    }
    // and the answer matches: ten unread from others in each room
    const list = listRooms(store.readState, { user: 'ana', limit: 10 }).rooms;
    expect(Object.fromEntries(list.map((r) => [r.room, r.unread]))).toEqual({
      big: bigPage.slice(90).filter((m) => m.sender !== 'ana').length,
      small: smallPage.slice(90).filter((m) => m.sender !== 'ana').length,
    });
  }, 120_000);
});
