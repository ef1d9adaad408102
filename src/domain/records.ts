import { z } from 'zod';
import { keyedId, newId } from './id.ts';
import { idSchema, isBody, isId, isKey, isRoom, isUser, roomSchema, senderSchema, type MessageInput } from './message.ts';

/**
 * Everything the log (the stream) carries: one closed union of record kinds, decoded and encoded
 * here and nowhere else. Each record names its kind in a `kind` field.
 *
 * Versioning: a record may carry `v` (its format version); absent means 1. A record whose kind
 * or version this node does not know was written by a newer node: it is reported as `unknown`
 * and the reader skips and counts it, never stops on it (the log must stay readable by every
 * node in a rolling upgrade). Adding a kind: add its interface to `LogRecord`, its schema to
 * `SCHEMAS`, and handle it where the Replica applies records (the compiler points there).
 */
export const RECORD_VERSION = 1;

/** A chat message before the log gave it a position (its seq is its offset + 1). */
export interface MessageRecord {
  kind: 'message';
  id: string;
  room: string;
  sender: string;
  body: string;
  /** epoch milliseconds */
  createdAt: number;
  /** The sender's idempotency key, when the post carried one (then `id` is derived from sender and key). */
  key?: string;
}

/**
 * The first record of every stream this server creates: names the log, so that a node can tell
 * a re-created stream (offsets starting over) from the one its stored offsets belong to.
 */
export interface EpochRecord {
  kind: 'epoch';
  epoch: string;
}

/**
 * A user has read `room` up to `seq`. Every node applies it in log order as
 * max(current, min(seq, the room's head at that point of the log)), so all agree.
 */
export interface ReadRecord {
  kind: 'read';
  user: string;
  room: string;
  seq: number;
  /** epoch milliseconds: when the accepting node answered (informational) */
  createdAt: number;
}

export type LogRecord = MessageRecord | EpochRecord | ReadRecord;

/** A message's `seq` is its position in the log: the stream offset + 1 (so the first record is seq 1). */
export const seqOf = (offset: number): number => offset + 1;
export type RecordKind = LogRecord['kind'];

/** What one raw stream record decoded to. */
export type Decoded =
  | { status: 'ok'; record: LogRecord }
  /** A kind (or version) this node does not know: written by a newer node. Skip and count. */
  | { status: 'unknown'; kind: string; v: number }
  /** Not a record at all (bad JSON, missing or malformed fields). Skip and count. */
  | { status: 'invalid' };

const createdAtOk = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * A message record: the field rules of src/domain/message.ts as plain checks (the hot kind: one
 * per post on every node, so no schema library per record). Unknown fields are dropped.
 */
function decodeMessage(f: Record<string, unknown>): MessageRecord | undefined {
  const { id, room, sender, body, createdAt, key } = f;
  if (!isId(id) || typeof room !== 'string' || !isRoom(room) || !isUser(sender) || !isBody(body) || !createdAtOk(createdAt)) return undefined;
  if (key !== undefined && !isKey(key)) return undefined;
  const record: MessageRecord = { kind: 'message', id, room, sender, body, createdAt };
  if (key !== undefined) record.key = key;
  return record;
}

const SCHEMAS = {
  epoch: z.strictObject({ kind: z.literal('epoch'), epoch: idSchema }),
  read: z.object({
    kind: z.literal('read'),
    user: senderSchema,
    room: roomSchema,
    seq: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
    createdAt: z.number().int().nonnegative(),
  }),
} satisfies { [K in Exclude<RecordKind, 'message'>]: z.ZodType<Extract<LogRecord, { kind: K }>> };

/** Each kind's decoder: the record, or undefined when its fields are not valid. */
const DECODERS: { [K in RecordKind]: (fields: Record<string, unknown>) => Extract<LogRecord, { kind: K }> | undefined } = {
  message: decodeMessage,
  epoch: (f) => parsedBy(SCHEMAS.epoch, f, 'epoch'),
  read: (f) => parsedBy(SCHEMAS.read, f, 'read'),
};

/** A rare kind, through its schema: the fields without `v`, with `kind` (absent `kind` reads as a message). */
function parsedBy<T>(schema: z.ZodType<T>, fields: Record<string, unknown>, kind: RecordKind): T | undefined {
  const { v: _v, ...rest } = fields;
  const parsed = schema.safeParse({ ...rest, kind });
  return parsed.success ? parsed.data : undefined;
}

const isKnownKind = (kind: string): kind is RecordKind => Object.hasOwn(DECODERS, kind);

const INVALID: Decoded = { status: 'invalid' };

/** Decodes one stream record. Never throws. */
export function decodeRecord(raw: Buffer): Decoded {
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch {
    return INVALID;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return INVALID;
  const fields = value as Record<string, unknown>;
  const v = fields.v === undefined ? 1 : fields.v;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) return INVALID;
  // Messages written before kinds existed carry no `kind`: they are messages.
  const kind = fields.kind === undefined ? 'message' : fields.kind;
  if (typeof kind !== 'string') return INVALID;
  if (!isKnownKind(kind) || v > RECORD_VERSION) return { status: 'unknown', kind, v };
  const record = DECODERS[kind](fields);
  return record ? { status: 'ok', record } : INVALID;
}

/** The bytes published for a record (JSON, `kind` first; `v` left out while it is 1). */
export function encodeRecord(record: LogRecord): Buffer {
  return Buffer.from(JSON.stringify(record), 'utf8');
}

/**
 * Builds the message record a node publishes for accepted input: the server fills `id` (derived
 * from sender and key when there is a key, else a UUIDv7; never a client's choice) and `createdAt`.
 */
export function messageRecord(input: MessageInput & { sender: string }, now = Date.now()): MessageRecord {
  const id = input.key !== undefined ? keyedId(input.sender, input.key) : newId(now);
  const record: MessageRecord = { kind: 'message', id, room: input.room, sender: input.sender, body: input.body, createdAt: now };
  if (input.key !== undefined) record.key = input.key;
  return record;
}

export const epochRecord = (epoch: string): EpochRecord => ({ kind: 'epoch', epoch });

export const readRecord = (user: string, room: string, seq: number, now = Date.now()): ReadRecord => ({ kind: 'read', user, room, seq, createdAt: now });
