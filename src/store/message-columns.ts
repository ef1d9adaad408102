import type { Message } from '../domain/message.ts';

/**
 * createdAt (epoch ms, >= 0) as ISO 8601 with ms, as Date#toISOString writes it (years 0000-9999).
 * date() and time() with the milliseconds padded by substr cost two thirds of strftime with
 * printf (0.54 against 0.80 us a row, in-process): formatting is a large part of a page's cost.
 */
const CREATED_AT_ISO =
  "date(created_at / 1000, 'unixepoch') || 'T' || time(created_at / 1000, 'unixepoch') || '.' || substr(created_at % 1000 + 1000, 2) || 'Z'";

/** A row as a Message (messages.ts, read-state.ts): same keys in the same order as toMessage in messages.ts, createdAt as ISO 8601 with ms. */
export const MESSAGE_COLUMNS = `id, room, sender, body, ${CREATED_AT_ISO} AS createdAt, seq, key`;

/**
 * A row as the JSON text of its Message, built by SQLite: the HTTP pages send it as it comes, with
 * no object per row and no JSON.stringify (which, with the objects, were most of a page's cost).
 * The same keys, in the same order, as JSON.stringify of the row read with MESSAGE_COLUMNS, `key`
 * left out when NULL. json_quote escapes `"`, `\` and control characters; other characters
 * (U+2028/2029, emoji) go as they are, as with JSON.stringify. Bodies and names are well-formed
 * Unicode (checked before they are stored), so both encoders parse back to the same strings
 * (test/unit/page-json.test.ts). `seq` is an integer column: SQLite writes it as a plain number.
 */
export const MESSAGE_JSON =
  `'{"id":' || json_quote(id) || ',"room":' || json_quote(room) || ',"sender":' || json_quote(sender) || ',"body":' || json_quote(body)` +
  ` || ',"createdAt":"' || ${CREATED_AT_ISO} || '","seq":' || seq || iif(key IS NULL, '', ',"key":' || json_quote(key)) || '}'`;

/** SQLite gives NULL for a message posted without a key: undefined leaves it out of the JSON, keeping the row's shape. */
export const dropNullKeys = (rows: Message[]): Message[] => {
  for (const r of rows) if (r.key === null) r.key = undefined;
  return rows;
};
