import type { Message } from '../domain/message.ts';
import { UNREAD_CAP, type MemberRow, type ReadState } from './read-state.ts';

export interface RoomSummary {
  room: string;
  /** The room's latest seq on this node (0: no message yet). */
  head: number;
  lastMessage: Message | null;
  /** The user's read marker (0: nothing read). */
  lastRead: number;
  /** Others' messages after lastRead; exact up to UNREAD_CAP. */
  unread: number;
  unreadCapped?: true;
}

export interface RoomsPage {
  rooms: RoomSummary[];
  /** Pass as `after` for the next page (absent on the last one). */
  next?: string;
}

export interface RoomsQuery {
  user: string;
  /** Only these rooms (`rooms=a,b`), listed or not. */
  rooms?: string[];
  /** Token mode: only rooms the token allows; its `exact` rooms are listed even before any activity. */
  allowed?: { allows(room: string): boolean; exact: readonly string[] };
  /** The `next` of the previous page. */
  after?: string;
  limit: number;
}

/** The conversation-list cursor: the last row's head and room (rows are ordered by head desc, room asc). */
const encodeCursor = (r: MemberRow) => `${r.head}:${r.room}`;
export function decodeCursor(s: string): { head: number; room: string } | undefined {
  const m = /^(0|[1-9][0-9]{0,15}):([A-Za-z0-9_.:-]{1,64})$/.exec(s);
  return m ? { head: Number(m[1]), room: m[2]! } : undefined;
}

const newestFirst = (a: MemberRow, b: MemberRow) => b.head - a.head || (a.room < b.room ? -1 : a.room > b.room ? 1 : 0);

/**
 * A user's conversation list, newest activity first. Which rooms are on it: those the user posted
 * in or marked read, plus (token mode) the exact rooms the token names; `rooms=` asks for given
 * rooms instead. Cost: the user's rooms (one index range) to order them, then per row of the page
 * one lookup for the last message and an index count of the unread (bounded by UNREAD_CAP) —
 * never the size of a room.
 */
export function listRooms(rs: ReadState, q: RoomsQuery): RoomsPage {
  let rows: MemberRow[];
  if (q.rooms) {
    rows = [...new Set(q.rooms)].map((room) => rs.roomOf(q.user, room));
  } else {
    rows = rs.memberRooms(q.user);
    if (q.allowed) {
      rows = rows.filter((r) => q.allowed!.allows(r.room));
      const have = new Set(rows.map((r) => r.room));
      for (const room of q.allowed.exact) if (!have.has(room)) rows.push(rs.roomOf(q.user, room));
    }
  }
  rows.sort(newestFirst);
  const from = q.after === undefined ? undefined : decodeCursor(q.after);
  if (from) rows = rows.filter((r) => r.head < from.head || (r.head === from.head && r.room > from.room));
  const page = rows.slice(0, q.limit);
  const rooms = page.map((r): RoomSummary => {
    const unread = r.head > r.lastRead ? rs.unread(r.room, r.lastRead, q.user) : 0;
    return {
      room: r.room,
      head: r.head,
      lastMessage: r.head > 0 ? rs.messageAt(r.head) : null,
      lastRead: r.lastRead,
      ...(unread > UNREAD_CAP ? { unread: UNREAD_CAP, unreadCapped: true as const } : { unread }),
    };
  });
  return rows.length > q.limit ? { rooms, next: encodeCursor(page[page.length - 1]!) } : { rooms };
}
