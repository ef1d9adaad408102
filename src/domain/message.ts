import { z } from 'zod';
import { newId } from './id.ts';

/** A message as stored and as every client sees it (HTTP pages and WebSocket frames). */
export interface Message {
  id: string;
  room: string;
  sender: string;
  body: string;
  /** ISO 8601, UTC, milliseconds: when the accepting node answered the POST. */
  createdAt: string;
  /** Stream offset + 1: the position in the log, identical on every node. */
  seq: number;
}

/** What travels through the stream: a message before the log gave it a position. */
export interface LogRecord {
  id: string;
  room: string;
  sender: string;
  body: string;
  /** epoch milliseconds */
  createdAt: number;
}

export const ROOM = /^[A-Za-z0-9_.:-]{1,64}$/;
export const ROOM_RULE = 'must be 1-64 characters of A-Z a-z 0-9 _ . : -';
export const isRoom = (s: string): boolean => ROOM.test(s);
const ID = /^[A-Za-z0-9_-]{1,64}$/;
// C0, DEL and C1 controls (invalid UTF-8 never gets this far: bodies are decoded strictly).
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

const codePoints = (s: string) => {
  let n = 0;
  for (const _ of s) n++;
  return n;
};

const room = z.string().regex(ROOM, ROOM_RULE);
const sender = z
  .string()
  .refine((s) => s.isWellFormed(), 'must be valid Unicode')
  .refine((s) => !CONTROL.test(s), 'must not contain control characters')
  .refine((s) => {
    const n = codePoints(s);
    return n >= 1 && n <= 64;
  }, 'must be 1-64 characters');
const id = z.string().regex(ID, 'must be 1-64 characters of A-Z a-z 0-9 _ -');

/**
 * Validates a POST body. `body` size is checked here against the configured limit; over it the
 * request is too large (413), under it the rest must hold (400).
 */
export function messageInputSchema(maxBodyBytes: number) {
  return z.strictObject({
    room,
    sender: sender.optional(),
    body: z
      .string()
      .min(1, 'must not be empty')
      .refine((s) => s.isWellFormed(), 'must be valid Unicode')
      .refine((s) => !s.includes('\u0000'), 'must not contain NUL'),
    id: id.optional(),
  }).superRefine((v, ctx) => {
    if (Buffer.byteLength(v.body, 'utf8') > maxBodyBytes) {
      ctx.addIssue({ code: 'custom', path: ['body'], message: `must be at most ${maxBodyBytes} UTF-8 bytes`, params: { tooLarge: true } });
    }
  });
}

export type MessageInput = z.infer<ReturnType<typeof messageInputSchema>>;

/** Builds the record a node publishes: the server fills `id` (if absent) and `createdAt`. */
export function toLogRecord(input: MessageInput & { sender: string }, now = Date.now()): LogRecord {
  return { id: input.id ?? newId(now), room: input.room, sender: input.sender, body: input.body, createdAt: now };
}

const logRecordSchema = z.object({
  id,
  room,
  sender,
  body: z.string().min(1),
  createdAt: z.number().int().nonnegative(),
});

/**
 * The first record of every stream this server creates: names the log, so that a node can tell
 * a re-created stream (offsets starting over) from the one its stored offsets belong to.
 */
export interface EpochRecord {
  kind: 'epoch';
  epoch: string;
}

export type Decoded = { kind: 'message'; record: LogRecord } | EpochRecord | undefined;

const epochSchema = z.strictObject({ kind: z.literal('epoch'), epoch: id });

/** Decodes one stream record; `undefined` for anything that is neither (skipped, never fatal). */
export function decodeLogRecord(raw: Buffer): Decoded {
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'epoch') {
    const e = epochSchema.safeParse(value);
    return e.success ? e.data : undefined;
  }
  const parsed = logRecordSchema.safeParse(value);
  return parsed.success ? { kind: 'message', record: parsed.data } : undefined;
}

export function encodeEpochRecord(epoch: string): Buffer {
  return Buffer.from(JSON.stringify({ kind: 'epoch', epoch } satisfies EpochRecord), 'utf8');
}

export function encodeLogRecord(record: LogRecord): Buffer {
  return Buffer.from(JSON.stringify(record), 'utf8');
}
