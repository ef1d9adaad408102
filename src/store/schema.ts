import { index, integer, primaryKey, sqliteTable, text } from 'drizzle-orm/sqlite-core';

/** One row per message. `seq` (stream offset + 1) is the rowid, so paging by cursor is a range scan. */
export const messages = sqliteTable(
  'messages',
  {
    seq: integer('seq').primaryKey(),
    id: text('id').notNull().unique(),
    room: text('room').notNull(),
    sender: text('sender').notNull(),
    body: text('body').notNull(),
    /** epoch milliseconds */
    createdAt: integer('created_at').notNull(),
    /** The sender's idempotency key, if the post carried one (`id` is derived from sender and key). */
    key: text('key'),
  },
  (t) => [index('messages_room_seq').on(t.room, t.seq), index('messages_created_at').on(t.createdAt)],
);

/**
 * Where this node is in the log. One row per stream name; written in the same transaction as
 * the messages it covers, so the two can never disagree.
 */
export const consumerState = sqliteTable('consumer_state', {
  stream: text('stream').primaryKey(),
  /** Last stream offset stored (including records skipped as invalid or duplicate); -1 before any. */
  lastOffset: integer('last_offset').notNull(),
  /** Identity of the log these offsets belong to (from the stream's epoch record); null until seen. */
  epoch: text('epoch'),
  /** Hash of the record at `last_offset`: re-read at every subscribe to prove it is still the same log. */
  lastHash: text('last_hash'),
});

/** Offsets this node never read because the stream had already dropped them (retention). */
export const logGaps = sqliteTable('log_gaps', {
  fromOffset: integer('from_offset').primaryKey(),
  toOffset: integer('to_offset').notNull(),
  /** epoch milliseconds */
  detectedAt: integer('detected_at').notNull(),
});

/**
 * The latest message of each room (its seq): the conversation list's "head" and "lastMessage".
 * Written in the same transaction as the messages it summarises.
 */
export const roomHeads = sqliteTable('room_heads', {
  room: text('room').primaryKey(),
  head: integer('head').notNull(),
});

/**
 * A user's place in a room: the rooms on their conversation list (they posted there or marked it
 * read) and their read marker (0 = nothing read). Written in the same transaction as the log
 * records it comes from, so the marker, the room's head and the messages never disagree.
 */
export const roomMembers = sqliteTable(
  'room_members',
  {
    user: text('user').notNull(),
    room: text('room').notNull(),
    lastRead: integer('last_read').notNull(),
  },
  (t) => [primaryKey({ columns: [t.user, t.room] })],
);
