import type { Database, Statement } from 'better-sqlite3';
import type { Message } from '../domain/message.ts';
import { dropNullKeys, MESSAGE_COLUMNS } from './message-columns.ts';

/** A read marker that moved while applying a batch: pushed to that user's sockets after the commit. */
export interface ReadMove {
  user: string;
  room: string;
  seq: number;
}

/** One row of a user's conversation list, before its last message and unread count are read. */
export interface MemberRow {
  room: string;
  lastRead: number;
  head: number;
}

/** (user, room) pairs remembered as members (about 100 bytes each). */
const MAX_KNOWN_MEMBERS = 100_000;

/** `unread` is exact up to this many; past it the count stops and says so (it is counted through an index). */
export const UNREAD_CAP = 10_000;

/**
 * Read state and the room summaries the conversation list needs (room heads, who is in which
 * room, read markers). Its writes run inside the store's batch transaction (see MessageStore.apply),
 * in log order, so every node that reads the same log ends with the same rows.
 */
export class ReadState {
  private readonly s: Record<string, Statement>;
  /** Heads moved by the batch being applied (flushed at its end); null outside a batch. */
  private heads: Map<string, number> | null = null;
  private joined: Map<string, [string, string]> | null = null;
  /**
   * (user, room) pairs known to have their room_members row, so that a message from someone
   * already in the room writes nothing here. Filled only after a commit (a rolled-back batch's
   * rows do not exist); bounded: emptied when full, which only costs some INSERTs that do nothing.
   */
  private readonly members = new Set<string>();
  private joinedThisBatch: string[] = [];

  constructor(sqlite: Database) {
    const p = (sql: string) => sqlite.prepare(sql);
    this.s = {
      headOf: p('SELECT head FROM room_heads WHERE room = ?').pluck(),
      setHead: p('INSERT INTO room_heads (room, head) VALUES (?, ?) ON CONFLICT (room) DO UPDATE SET head = max(head, excluded.head)'),
      join: p('INSERT INTO room_members (user, room, last_read) VALUES (?, ?, 0) ON CONFLICT DO NOTHING'),
      markerOf: p('SELECT last_read FROM room_members WHERE user = ? AND room = ?').pluck(),
      setMarker: p('INSERT INTO room_members (user, room, last_read) VALUES (?, ?, ?) ON CONFLICT (user, room) DO UPDATE SET last_read = max(last_read, excluded.last_read)'),
      // A correlated lookup rather than a join: the plan stays one index search per row whatever the statistics say.
      memberRooms: p('SELECT m.room AS room, m.last_read AS lastRead, coalesce((SELECT head FROM room_heads h WHERE h.room = m.room), 0) AS head FROM room_members m WHERE m.user = ?'),
      messageAt: p(`SELECT ${MESSAGE_COLUMNS} FROM messages WHERE seq = ?`),
      // Others' messages after the marker, counted through messages_room_seq and stopped one past the cap.
      unread: p(`SELECT count(*) FROM (SELECT 1 FROM messages WHERE room = @room AND seq > @after AND sender <> @user LIMIT ${UNREAD_CAP + 1})`).pluck(),
    };
  }

  // ---- writes: only between beginBatch() and endBatch(), inside the store's transaction ----

  beginBatch(): void {
    this.heads = new Map();
    this.joined = new Map();
  }

  /** A message was stored: the room's head moves and the sender is in the room. */
  message(m: Pick<Message, 'room' | 'sender' | 'seq'>): void {
    this.heads!.set(m.room, m.seq);
    const key = `${m.sender}\u0000${m.room}`;
    if (!this.members.has(key) && !this.joined!.has(key)) this.joined!.set(key, [m.sender, m.room]);
  }

  /** Applies a read marker as max(current, min(seq, head now)); returns the move, if it moved. */
  read(user: string, room: string, seq: number): ReadMove | undefined {
    const head = this.heads!.get(room) ?? ((this.s.headOf!.get(room) as number | undefined) ?? 0);
    const current = (this.s.markerOf!.get(user, room) as number | undefined) ?? 0;
    const target = Math.min(seq, head);
    if (target <= current) return undefined;
    this.s.setMarker!.run(user, room, target);
    return { user, room, seq: target };
  }

  endBatch(): void {
    for (const [room, head] of this.heads!) this.s.setHead!.run(room, head);
    for (const [user, room] of this.joined!.values()) this.s.join!.run(user, room);
    this.joinedThisBatch = [...this.joined!.keys()];
    this.heads = null;
    this.joined = null;
  }

  /** The batch's transaction committed: its members' rows exist. */
  committed(): void {
    if (this.members.size + this.joinedThisBatch.length > MAX_KNOWN_MEMBERS) this.members.clear();
    for (const key of this.joinedThisBatch) this.members.add(key);
    this.joinedThisBatch = [];
  }

  /** Drops the batch's pending summaries (its transaction rolled back). */
  abortBatch(): void {
    this.heads = null;
    this.joined = null;
    this.joinedThisBatch = [];
  }

  /** Every room_members row was deleted (a new log): nothing is known any more. */
  forgetMembers(): void {
    this.members.clear();
  }

  // ---- reads ----

  /** The rooms on `user`'s list with their marker and head (unordered). Cost: the user's rooms. */
  memberRooms(user: string): MemberRow[] {
    return this.s.memberRooms!.all(user) as MemberRow[];
  }

  /** One room as seen by `user` (listed or not). */
  roomOf(user: string, room: string): MemberRow {
    return {
      room,
      lastRead: (this.s.markerOf!.get(user, room) as number | undefined) ?? 0,
      head: (this.s.headOf!.get(room) as number | undefined) ?? 0,
    };
  }

  messageAt(seq: number): Message | null {
    const m = this.s.messageAt!.get(seq) as Message | undefined;
    return m ? dropNullKeys([m])[0]! : null;
  }

  /** Others' messages in `room` after `after`: exact up to UNREAD_CAP, else UNREAD_CAP + 1. */
  unread(room: string, after: number, user: string): number {
    return this.s.unread!.get({ room, after, user }) as number;
  }

  /** The SQL of every statement, for checking query plans. */
  statements(): Record<string, string> {
    return Object.fromEntries(Object.entries(this.s).map(([k, st]) => [k, st.source]));
  }
}
