import type { Message } from '../domain/message.ts';

/** A row as a Message (messages.ts, read-state.ts): same keys in the same order as toMessage in messages.ts, createdAt as ISO 8601 with ms. */
export const MESSAGE_COLUMNS =
  "id, room, sender, body, strftime('%Y-%m-%dT%H:%M:%S', created_at / 1000, 'unixepoch') || printf('.%03dZ', created_at % 1000) AS createdAt, seq, key";

/** SQLite gives NULL for a message posted without a key: undefined leaves it out of the JSON, keeping the row's shape. */
export const dropNullKeys = (rows: Message[]): Message[] => {
  for (const r of rows) if (r.key === null) r.key = undefined;
  return rows;
};
