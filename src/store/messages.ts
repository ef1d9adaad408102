import { and, asc, desc, eq, gt, gte, inArray, lt, max, ne, or, sql, type SQL } from 'drizzle-orm';
import type { RoomFilter } from '../auth/rooms.ts';
import type { Message } from '../domain/message.ts';
import { seqOf, type LogRecord } from '../domain/records.ts';
import type { Statement } from 'better-sqlite3';
import type { Db } from './db.ts';
import { dropNullKeys, MESSAGE_COLUMNS, MESSAGE_JSON } from './message-columns.ts';
import { ReadState, type ReadMove } from './read-state.ts';
import { consumerState, logGaps, messages, roomHeads, roomMembers } from './schema.ts';

/** One record read from the log: its offset and what it decoded to (undefined: nothing this node applies). */
export interface LogEntry {
  offset: number;
  record?: LogRecord;
  /** Hash of the raw record; needed only on the last entry of a batch (see lastHash()). */
  hash?: string;
}

export interface LogGap {
  fromOffset: number;
  toOffset: number;
  detectedAt: number;
}

export interface PageQuery {
  room?: string;
  /** Only these rooms (a token's allowance); applied in SQL. Ignored when `room` is given. */
  rooms?: RoomFilter;
  /** exact cursor: seq strictly greater than this */
  after?: number;
  /** epoch ms: createdAt >= since */
  since?: number;
  limit: number;
}

/** `GET /messages/before`: a page of scrollback, ascending, and the cursor to the older one. */
export interface BeforePage {
  messages: Message[];
  /** The smallest seq in the page (pass it as `before`); null when the page is empty. */
  prev: number | null;
  hasMore: boolean;
  /** The room's latest seq on this node. */
  head: number;
  epoch: string | null;
}

export interface Page {
  messages: Message[];
  next: number;
  hasMore: boolean;
  /** Identity of the log the seqs belong to (null until this node has read the stream's epoch record). */
  epoch: string | null;
}

/** A page whose messages are already JSON: one array's UTF-8 text, as the HTTP answer carries it. */
export type Encoded<P extends { messages: Message[] }> = Omit<P, 'messages'> & {
  /** The messages as the UTF-8 text of a JSON array (`[]` when none), ascending seq. */
  messagesJson: Buffer;
};

/** A page made by SQLite in one step: its JSON array (UTF-8), how many messages, its first and last seq (null when empty). */
type JsonPage = [json: Buffer, count: number, first: number | null, last: number | null];

type PageRead = 'pageAll' | 'pageRoom' | 'sinceAll' | 'sinceRoom';

/**
 * The statement of a JSON page: the rows of `rows` (columns `j`, MESSAGE_JSON, and `seq`) joined
 * into one JSON array by group_concat, handed over as a BLOB: one Buffer per page, no JS string
 * per row, no join, no UTF-8 encoding on the way out (together a third of a page's cost as
 * strings). group_concat joins in the order its rows come, and SQLite keeps the ORDER BY of a
 * FROM subquery under an aggregate other than count/min/max (and under a LIMIT): every `rows`
 * is ascending seq with a LIMIT (test/unit/page-json.test.ts checks the order of every read).
 */
const jsonPageSql = (rows: string) => `SELECT CAST('[' || coalesce(group_concat(j, ','), '') || ']' AS BLOB), count(*), min(seq), max(seq) FROM (${rows})`;

/**
 * `createdAt` comes from the accepting node's clock and is set before the broker orders the
 * message, so it is only roughly monotonic in `seq`. Assuming it is never out of order by more
 * than this margin, every message with createdAt >= since comes after (in seq) any message
 * stamped before since - margin; a `since` query scans by seq from just after the latest such
 * message. That keeps it exact for skews under the margin, and its cost independent of the
 * table's size.
 */
export const SINCE_SKEW_MS = 30_000;

type Row = typeof messages.$inferSelect;


/** A message frame's bytes besides its id, room, sender and body (keys, createdAt, seq), roughly. */
const FRAME_OVERHEAD = 110;


const toMessage = (r: Row): Message => ({
  id: r.id,
  room: r.room,
  sender: r.sender,
  body: r.body,
  createdAt: new Date(r.createdAt).toISOString(),
  seq: r.seq,
  key: r.key ?? undefined,
});

/** What one batch changed: the new messages and the read markers that moved, in log order (to push). */
export interface Applied {
  messages: Message[];
  reads: ReadMove[];
}

export class StreamMismatchError extends Error {
  override name = 'StreamMismatchError';
}

/** All reads and writes of messages and of the consumer's position, as prepared statements. */
export class MessageStore {
  private readonly db: Db;
  private readonly queries;
  private readonly insert: Statement<[number, string, string, string, string, number, string | null]>;
  private readonly byIdStmt: Statement<{ id: string }, Row>;
  private readonly reads: Record<PageRead, Statement<Record<string, unknown>, Message>>;
  /** The same reads as one JSON page each (the HTTP pages), and whether rows follow a page's last seq. */
  private readonly jsonPages: Record<PageRead, Statement<Record<string, unknown>, JsonPage>>;
  private readonly morePages: Record<PageRead, Statement<Record<string, unknown>, number>>;
  private readonly appendTx: (entries: readonly LogEntry[]) => { stored: Message[]; reads: ReadMove[]; epoch: string | null };
  private readonly scrollback: Record<'beforeRoom' | 'beforeRoomJson' | 'beforeMore' | 'startBefore', Statement<Record<string, unknown>>>;
  /** Room heads, members and read markers: kept in the same transaction as the messages. */
  readonly readState: ReadState;
  private currentEpoch: string | null;

  constructor(db: Db, stream: string) {
    this.db = db;
    const p = sql.placeholder;
    const sqlite = db.$client;
    this.queries = {
      saveState: db
        .insert(consumerState)
        .values({ stream, lastOffset: p('offset'), epoch: p('epoch'), lastHash: p('hash') })
        .onConflictDoUpdate({
          target: consumerState.stream,
          set: { lastOffset: sql`excluded.last_offset`, epoch: sql`excluded.epoch`, lastHash: sql`excluded.last_hash` },
        })
        .prepare(),
      state: db
        .select({ o: consumerState.lastOffset, epoch: consumerState.epoch, hash: consumerState.lastHash })
        .from(consumerState)
        .where(eq(consumerState.stream, stream))
        .prepare(),
      addGap: db.insert(logGaps).values({ fromOffset: p('from'), toOffset: p('to'), detectedAt: p('at') }).onConflictDoNothing().prepare(),
      gaps: db.select().from(logGaps).orderBy(asc(logGaps.fromOffset)).prepare(),
      otherStream: db.select({ s: consumerState.stream }).from(consumerState).where(ne(consumerState.stream, stream)).limit(1).prepare(),
      sinceStart: db
        .select({ seq: messages.seq })
        .from(messages)
        .where(lt(messages.createdAt, p('before')))
        .orderBy(desc(messages.createdAt))
        .limit(1)
        .prepare(),
      head: db.select({ seq: max(messages.seq) }).from(messages).prepare(),
      roomHead: db.select({ seq: messages.seq }).from(messages).where(eq(messages.room, p('room'))).orderBy(desc(messages.seq)).limit(1).prepare(),
    };
    // The page reads are the hot read path (catch-up): plain statements whose rows already have
    // the shape of a Message, createdAt formatted by SQLite, so no per-row mapping in JS (about
    // 1.7x the messages/s of the same query through drizzle's row mapping).
    const read = (where: string) => sqlite.prepare<Record<string, unknown>, Message>(`SELECT ${MESSAGE_COLUMNS} FROM messages WHERE ${where} ORDER BY seq LIMIT @limit`);
    const readJson = (where: string) =>
      sqlite.prepare<Record<string, unknown>, JsonPage>(jsonPageSql(`SELECT ${MESSAGE_JSON} AS j, seq FROM messages WHERE ${where} ORDER BY seq LIMIT @limit`)).raw();
    const more = (where: string) => sqlite.prepare<Record<string, unknown>, number>(`SELECT EXISTS (SELECT 1 FROM messages WHERE ${where})`).pluck();
    // The insert is the hot write path: drizzle's parameter mapping was a fifth of a batch's cost.
    // Positional parameters: binding by name looks each one up per call.
    this.insert = sqlite.prepare('INSERT INTO messages (seq, id, room, sender, body, created_at, key) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING');
    // The unary + keeps SQLite from walking the created_at index for `since`: the scan goes by seq.
    const where: Record<PageRead, string> = {
      pageAll: 'seq > @after',
      pageRoom: 'room = @room AND seq > @after',
      sinceAll: 'seq >= @start AND +created_at >= @since',
      sinceRoom: 'room = @room AND seq >= @start AND +created_at >= @since',
    };
    this.reads = { pageAll: read(where.pageAll), pageRoom: read(where.pageRoom), sinceAll: read(where.sinceAll), sinceRoom: read(where.sinceRoom) };
    this.jsonPages = { pageAll: readJson(where.pageAll), pageRoom: readJson(where.pageRoom), sinceAll: readJson(where.sinceAll), sinceRoom: readJson(where.sinceRoom) };
    this.morePages = { pageAll: more(where.pageAll), pageRoom: more(where.pageRoom), sinceAll: more(where.sinceAll), sinceRoom: more(where.sinceRoom) };
    this.scrollback = {
      // Newest first through messages_room_seq; the caller reverses the (small) page.
      beforeRoom: sqlite.prepare(`SELECT ${MESSAGE_COLUMNS} FROM messages WHERE room = @room AND seq < @before ORDER BY seq DESC LIMIT @limit`),
      // Ascending from the page's first seq (startBefore): the rows come in the order they are
      // joined in, with no sort of the page.
      beforeRoomJson: sqlite
        .prepare(jsonPageSql(`SELECT ${MESSAGE_JSON} AS j, seq FROM messages WHERE room = @room AND seq >= @start AND seq < @before ORDER BY seq LIMIT @limit`))
        .raw(),
      beforeMore: sqlite.prepare('SELECT EXISTS (SELECT 1 FROM messages WHERE room = @room AND seq < @before)').pluck(),
      // The seq skip + 1 messages back from `before` (the index walks that many entries, <= 1000).
      startBefore: sqlite.prepare('SELECT seq FROM messages WHERE room = @room AND seq < @before ORDER BY seq DESC LIMIT 1 OFFSET @skip').pluck(),
    };
    this.readState = new ReadState(sqlite);
    this.byIdStmt = sqlite.prepare<{ id: string }, Row>('SELECT room, sender, body, created_at AS createdAt, key FROM messages WHERE id = @id');
    this.appendTx = this.makeAppendTx();
    this.currentEpoch = this.queries.state.get()?.epoch ?? null;
    const other = this.queries.otherStream.get();
    if (other) {
      throw new StreamMismatchError(
        `this database holds the log of stream "${other.s}", not "${stream}": use another DATABASE_PATH or the same STREAM_NAME`,
      );
    }
  }

  /** Last stream offset this node stored (or skipped); -1 when it has read nothing yet. */
  lastOffset(): number {
    return this.queries.state.get()?.o ?? -1;
  }

  /** The log this node's seqs belong to; null until its epoch record has been read. */
  epoch(): string | null {
    return this.currentEpoch;
  }

  /** Hash of the record at lastOffset(), or null if unknown (stored by an older version). */
  lastHash(): string | null {
    return this.queries.state.get()?.hash ?? null;
  }

  /** Records the log's identity for data read before it was known (e.g. stored by an older version). */
  adoptEpoch(epoch: string): void {
    this.queries.saveState.run({ offset: this.lastOffset(), epoch, hash: this.lastHash() });
    this.currentEpoch = epoch;
  }

  /** Remembers offsets the stream no longer had when this node came to read them. */
  recordGap(fromOffset: number, toOffset: number): void {
    this.queries.addGap.run({ from: fromOffset, to: toOffset, at: Date.now() });
  }

  gaps(): LogGap[] {
    return this.queries.gaps.all();
  }

  /**
   * The stream was re-created: its offsets start over and must not meet the old seqs. Saves a
   * consistent copy of the database to `backupPath`, then empties it to follow the new log.
   */
  resetForNewLog(epoch: string | null, backupPath: string): void {
    this.db.$client.prepare('VACUUM INTO ?').run(backupPath);
    this.db.$client.transaction(() => {
      this.db.delete(messages).run();
      this.db.delete(logGaps).run();
      this.db.delete(roomHeads).run();
      this.db.delete(roomMembers).run();
      this.queries.saveState.run({ offset: -1, epoch, hash: null });
    })();
    this.readState.forgetMembers();
    this.currentEpoch = epoch;
  }

  /**
   * Stores a batch and the offset after it in ONE transaction. Entries at or below the stored
   * offset are ignored (a re-delivery), as are duplicate ids. Returns the messages that are new,
   * in log order: exactly the ones to push.
   */
  append(entries: readonly LogEntry[]): Message[] {
    return this.apply(entries).messages;
  }

  /** As append(), also returning the read markers the batch moved. */
  apply(entries: readonly LogEntry[]): Applied {
    let result;
    try {
      result = this.appendTx(entries);
    } catch (err) {
      this.readState.abortBatch();
      throw err;
    }
    this.readState.committed();
    this.currentEpoch = result.epoch; // only once committed
    return { messages: result.stored, reads: result.reads };
  }

  /**
   * A write transaction that changes nothing: throws while the database cannot take commits
   * (locked, read-only, disk full). The consumer runs it before every subscribe.
   */
  probeWrite(): void {
    this.appendTx([]);
  }

  private makeAppendTx() {
    return this.db.$client.transaction((batch: readonly LogEntry[]) => {
      const state = this.queries.state.get();
      let last = state?.o ?? -1;
      let hash = state?.hash ?? null;
      let epoch = this.currentEpoch;
      const stored: Message[] = [];
      const reads: ReadMove[] = [];
      this.readState.beginBatch();
      for (const entry of batch) {
        if (entry.offset <= last) continue;
        last = entry.offset;
        hash = entry.hash ?? null;
        const record = entry.record;
        if (record?.kind === 'epoch') {
          // Only the first epoch record names the log; a second one is a creation race, same log.
          epoch ??= record.epoch;
        } else if (record?.kind === 'message') {
          const row: Row = { seq: seqOf(entry.offset), id: record.id, room: record.room, sender: record.sender, body: record.body, createdAt: record.createdAt, key: record.key ?? null };
          if (this.insert.run(row.seq, row.id, row.room, row.sender, row.body, row.createdAt, row.key).changes === 1) {
            stored.push(toMessage(row));
            this.readState.message(row);
          }
        } else if (record?.kind === 'read') {
          const moved = this.readState.read(record.user, record.room, record.seq);
          if (moved) reads.push(moved);
        }
      }
      this.readState.endBatch();
      this.queries.saveState.run({ offset: last, epoch, hash });
      return { stored, reads, epoch };
    });
  }

  /**
   * A catch-up page as Message objects. The HTTP route answers with pageJson() instead; this is
   * the independent reading the tests check pageJson() against (JSON.stringify of these objects)
   * and read the store through.
   */
  page(query: PageQuery): Page {
    const limit = query.limit;
    let rows: Message[];
    if (query.room === undefined && query.rooms) rows = this.filteredRows(query.rooms, query, limit + 1);
    else {
      // One more row than the page: it says whether there is more.
      const [read, params] = this.readParams(query, limit + 1);
      rows = this.reads[read].all(params);
    }
    dropNullKeys(rows);
    const hasMore = rows.length > limit;
    if (hasMore) rows.length = limit;
    return { messages: rows, next: this.nextCursor(query, rows[rows.length - 1]?.seq), hasMore, epoch: this.currentEpoch };
  }

  /** page() as JSON made by SQLite (GET /messages/since answers with it as it is). */
  pageJson(query: PageQuery): Encoded<Page> {
    if (query.room === undefined && query.rooms) return this.filteredPageJson(query.rooms, query);
    const [read, params] = this.readParams(query, query.limit);
    const [json, count, , last] = this.jsonPages[read].get(params)!;
    // Only a full page can have more after it: the same condition probed past its last seq.
    const hasMore = count === query.limit && this.morePages[read].get({ ...params, after: last, start: last! + 1 }) === 1;
    return { messagesJson: json, next: this.nextCursor(query, last ?? undefined), hasMore, epoch: this.currentEpoch };
  }

  /** Which read `query` is, and its parameters. */
  private readParams(query: PageQuery, limit: number): [PageRead, Record<string, unknown>] {
    if (query.after !== undefined) {
      return query.room === undefined ? ['pageAll', { after: query.after, limit }] : ['pageRoom', { room: query.room, after: query.after, limit }];
    }
    const since = query.since ?? 0;
    const start = this.sinceStart(since);
    return query.room === undefined ? ['sinceAll', { start, since, limit }] : ['sinceRoom', { room: query.room, start, since, limit }];
  }

  /**
   * The cursor after a page whose last seq is `last`. An empty page keeps the cursor where it
   * was; an empty `since` page points at the head so that polling with after=next misses nothing
   * stored later.
   */
  private nextCursor(query: PageQuery, last: number | undefined): number {
    return last ?? query.after ?? this.head();
  }

  /**
   * A replay page of one room (the hub's): ascending from `after`, at most `limit` messages,
   * stopping at the message that takes the page past about `maxBytes`. Rows are stepped one at a
   * time, so a page cut short by its bytes never reads the rest. `more` is false only when the
   * room's end was reached.
   */
  roomReplayPage(room: string, after: number, limit: number, maxBytes: number): { messages: Message[]; more: boolean } {
    const out: Message[] = [];
    let bytes = 0;
    for (const m of this.reads.pageRoom.iterate({ room, after, limit })) {
      if (m.key === null) m.key = undefined;
      out.push(m);
      bytes += m.body.length + m.id.length + m.room.length + m.sender.length + (m.key?.length ?? 0) + FRAME_OVERHEAD;
      if (bytes >= maxBytes) return { messages: out, more: true }; // leaving the loop resets the statement
    }
    return { messages: out, more: out.length === limit };
  }

  private sinceStart(since: number): number {
    return (this.queries.sinceStart.get({ before: since - SINCE_SKEW_MS })?.seq ?? 0) + 1;
  }

  /**
   * A page limited to a set of rooms, filtered in SQL while walking seq order (rows outside the
   * allowance are never loaded). Built per call: its shape depends on the token.
   */
  private filteredRows(rooms: RoomFilter, query: PageQuery, limit: number): Message[] {
    const where = this.filteredWhere(rooms, query);
    return where ? this.db.select().from(messages).where(where).orderBy(asc(messages.seq)).limit(limit).all().map(toMessage) : [];
  }

  /** pageJson() limited to a set of rooms: the rows of filteredRows() as MESSAGE_JSON text, joined here. */
  private filteredPageJson(rooms: RoomFilter, query: PageQuery): Encoded<Page> {
    const where = this.filteredWhere(rooms, query);
    const rows = where
      ? this.db.select({ json: sql<string>`${sql.raw(MESSAGE_JSON)}`, seq: messages.seq }).from(messages).where(where).orderBy(asc(messages.seq)).limit(query.limit + 1).all()
      : [];
    const hasMore = rows.length > query.limit;
    if (hasMore) rows.length = query.limit;
    const json = Buffer.from(`[${rows.map((r) => r.json).join(',')}]`);
    return { messagesJson: json, next: this.nextCursor(query, rows[rows.length - 1]?.seq), hasMore, epoch: this.currentEpoch };
  }

  /** The condition of a page limited to `rooms`; undefined when they allow none. */
  private filteredWhere(rooms: RoomFilter, query: PageQuery): SQL | undefined {
    const allowed: SQL[] = [];
    if (rooms.exact.length > 0) allowed.push(inArray(messages.room, rooms.exact));
    // Room names cannot hold GLOB metacharacters (validated), so a prefix is matched literally.
    for (const prefix of rooms.prefixes) allowed.push(sql`${messages.room} GLOB ${`${prefix}*`}`);
    if (allowed.length === 0) return undefined;
    return query.after !== undefined
      ? and(gt(messages.seq, query.after), or(...allowed))
      : and(gte(messages.seq, this.sinceStart(query.since ?? 0)), sql`+${messages.createdAt} >= ${query.since ?? 0}`, or(...allowed));
  }

  /**
   * Scrollback: the newest `limit` messages of `room` with seq < `before` (from the newest when
   * absent), ascending. Cost: the page, whatever the room's size (messages_room_seq). As objects:
   * the reading beforeJson() (the route's) is checked against.
   */
  before(room: string, before: number | undefined, limit: number): BeforePage {
    const rows = this.scrollback.beforeRoom.all({ room, before: before ?? Number.MAX_SAFE_INTEGER, limit: limit + 1 }) as Message[];
    dropNullKeys(rows);
    const hasMore = rows.length > limit;
    if (hasMore) rows.length = limit;
    rows.reverse();
    return { messages: rows, prev: rows[0]?.seq ?? null, hasMore, head: this.roomHead(room), epoch: this.currentEpoch };
  }

  /** before() as JSON made by SQLite (GET /messages/before answers with it as it is). */
  beforeJson(room: string, before: number | undefined, limit: number): Encoded<BeforePage> {
    const params = { room, before: before ?? Number.MAX_SAFE_INTEGER, limit };
    const start = (this.scrollback.startBefore.get({ ...params, skip: limit - 1 }) as number | undefined) ?? 0;
    const [json, count, first] = this.scrollback.beforeRoomJson.get({ ...params, start }) as JsonPage;
    const hasMore = count === limit && this.scrollback.beforeMore.get({ room, before: first }) === 1;
    return { messagesJson: json, prev: first, hasMore, head: this.roomHead(room), epoch: this.currentEpoch };
  }

  /** The cursor that replays the last `n` stored messages of `room` (0 when it holds fewer). */
  lastCursor(room: string, n: number): number {
    const seq = this.scrollback.startBefore.get({ room, before: Number.MAX_SAFE_INTEGER, skip: n - 1 }) as number | undefined;
    return seq === undefined ? 0 : seq - 1;
  }

  /** The SQL of every prepared statement, for checking query plans. */
  statements(): Record<string, string> {
    const prepared = Object.entries(this.queries).map(([name, q]) => [name, (q as unknown as { stmt: { source: string } }).stmt.source]);
    const json = Object.fromEntries([
      ...Object.entries(this.jsonPages).map(([name, stmt]): [string, Statement] => [`${name}Json`, stmt]),
      ...Object.entries(this.morePages).map(([name, stmt]): [string, Statement] => [`${name}More`, stmt]),
    ]);
    const reads = Object.entries({ ...this.reads, ...json, ...this.scrollback }).map(([name, stmt]) => [name, stmt.source]);
    return Object.fromEntries([...prepared, ...reads]);
  }

  /** Latest seq stored on this node (0 when empty). */
  head(): number {
    return this.queries.head.get()?.seq ?? 0;
  }

  /** Latest seq of one room on this node (0 when the room is empty). */
  roomHead(room: string): number {
    return this.queries.roomHead.get({ room })?.seq ?? 0;
  }

  /** The stored message with this id, if this node has it (idempotency: is a retry the same message?). */
  byId(id: string): Pick<Message, 'room' | 'sender' | 'body' | 'createdAt' | 'key'> | undefined {
    const row = this.byIdStmt.get({ id });
    return row ? { room: row.room, sender: row.sender, body: row.body, createdAt: new Date(row.createdAt).toISOString(), key: row.key ?? undefined } : undefined;
  }
}
