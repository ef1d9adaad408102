import { z } from 'zod';
import { LIMITS } from '../protocol.ts';

/**
 * A message as stored and as every client sees it (HTTP pages and WebSocket frames). Defined once,
 * with the frames the client SDK shares (src/protocol.ts); the server calls it Message.
 */
export type { WireMessage as Message } from '../protocol.ts';

/** The room and key rules are the protocol's (the SDK checks with the same ones). */
export const ROOM = LIMITS.room;
export const ROOM_RULE = 'must be 1-64 characters of A-Z a-z 0-9 _ . : -';
export const isRoom = (s: string): boolean => ROOM.test(s);
const ID = /^[A-Za-z0-9_-]{1,64}$/;
// C0, DEL and C1 controls (invalid UTF-8 never gets this far: bodies are decoded strictly).
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
// Characters that make a name display as another (spoofing): bidirectional marks, embeddings,
// overrides and isolates, and invisible zero-width ones. ZWJ/ZWNJ (U+200C/D) stay allowed: emoji
// sequences and several scripts (Persian, Indic) need them.
const INVISIBLE = /[\u061c\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/;
/** An idempotency key: what the contract allows in `key` and the `Idempotency-Key` header. */
export const KEY = LIMITS.key;
const KEY_RULE = 'must be 1-64 characters of A-Z a-z 0-9 _ -';

const codePoints = (s: string) => {
  let n = 0;
  for (const _ of s) n++;
  return n;
};

/**
 * Each field's rule is one list of (test, message): the zod schemas below (the API's validation,
 * with its messages) and the log decoder's plain checks (`isUser`, `isBody`, ...; no zod per
 * record) are both built from it, so what is accepted and what every node stores cannot drift.
 */
type Rule = readonly [test: (s: string) => boolean, message: string];
const USER_RULES: readonly Rule[] = [
  [(s) => s.isWellFormed(), 'must be valid Unicode'],
  [(s) => !CONTROL.test(s), 'must not contain control characters'],
  [(s) => !INVISIBLE.test(s), 'must not contain bidirectional-override or zero-width characters'],
  [
    (s) => {
      const n = codePoints(s);
      return n >= 1 && n <= 64;
    },
    'must be 1-64 characters',
  ],
];
/**
 * A message body, as accepted AND as decoded from the log: one rule, so that nothing answered
 * 202 is skipped as invalid by the nodes that read it. (The size limit is the accepting node's
 * configuration, so it is checked at accept time only.)
 */
const BODY_RULES: readonly Rule[] = [
  [(s) => s.isWellFormed(), 'must be valid Unicode'],
  [(s) => !s.includes('\u0000'), 'must not contain NUL'],
];
const ID_RULE = 'must be 1-64 characters of A-Z a-z 0-9 _ -';

const passes = (rules: readonly Rule[], minLength = 0) => (v: unknown): v is string =>
  typeof v === 'string' && v.length >= minLength && rules.every(([test]) => test(v));
const schemaOf = (rules: readonly Rule[], base = z.string()) => rules.reduce((schema, [test, message]) => schema.refine(test, message), base);
const matches = (re: RegExp) => (v: unknown): v is string => typeof v === 'string' && re.test(v);

/** The plain checks of the rules (the log decoder's). */
export const isUser = passes(USER_RULES);
export const isBody = passes(BODY_RULES, 1);
export const isId = matches(ID);
export const isKey = matches(KEY);

const room = z.string().regex(ROOM, ROOM_RULE);
/** A user name (a message's `sender`, a token's `sub`, open mode's `user`): the same rules everywhere. */
export const userSchema = schemaOf(USER_RULES);
const sender = userSchema;

/** Why `s` is not a valid user name, or undefined when it is. */
export function userProblem(s: string): string | undefined {
  return USER_RULES.find(([test]) => !test(s))?.[1];
}
const id = z.string().regex(ID, ID_RULE);
const key = z.string().regex(KEY, KEY_RULE);
const body = schemaOf(BODY_RULES, z.string().min(1, 'must not be empty'));

/**
 * Validates a POST body. `body` size is checked here against the configured limit; over it the
 * request is too large (413), under it the rest must hold (400).
 */
export function messageInputSchema(maxBodyBytes: number) {
  return z.strictObject({
    room,
    sender: sender.optional(),
    body,
    key: key.optional().describe('Idempotency key, scoped to the sender: the message id is derived from (sender, key)'),
    // Deprecated alias of `key` (clients from before it). Stored verbatim, a client-chosen id was
    // global across senders and rooms: one client could make another's message vanish by reusing
    // it. Now it is a key like any other, scoped to its sender.
    id: id.optional().meta({ deprecated: true, description: 'Deprecated: another name for `key` (scoped to the sender; the stored id is derived from it, never taken as given). If both are given they must be equal' }),
  })
    .superRefine((v, ctx) => {
      if (Buffer.byteLength(v.body, 'utf8') > maxBodyBytes) {
        ctx.addIssue({ code: 'custom', path: ['body'], message: `must be at most ${maxBodyBytes} UTF-8 bytes`, params: { tooLarge: true } });
      }
      if (v.id !== undefined && v.key !== undefined && v.id !== v.key) {
        ctx.addIssue({ code: 'custom', path: ['id'], message: 'is the deprecated name of key; give one, or the same in both' });
      }
    })
    .transform(({ id, key, ...rest }): MessageInput => ({ ...rest, key: key ?? id }));
}

/** A validated post: `key` is the idempotency key, given as `key` (or its deprecated name `id`). */
export interface MessageInput {
  room: string;
  sender?: string | undefined;
  body: string;
  key?: string | undefined;
}

// The field rules shared with the log's records (src/domain/records.ts).
export { id as idSchema, room as roomSchema, sender as senderSchema };
