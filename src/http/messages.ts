import { Hono, type Context } from 'hono';
import type { HttpBindings } from '@hono/node-server';
import { validationFailed, type Accept } from '../accept.ts';
import type { RoomFilter } from '../auth/rooms.ts';
import { isRoom, ROOM_RULE } from '../domain/message.ts';
import { AppError, forbiddenRoom } from '../errors.ts';
import type { Page, PageQuery } from '../store/messages.ts';
import { requireAuth, type Authenticate, type AuthEnv } from './auth.ts';

export interface MessageRoutesDeps {
  accept: Accept;
  readPage(query: PageQuery & { rooms?: RoomFilter }): Page;
  /** The log epoch this node follows (null while unknown). */
  epoch(): string | null;
  maxMessageBytes: number;
  authenticate: Authenticate | undefined;
}

const MAX_LIMIT = 1000;
const DEFAULT_LIMIT = 100;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export function messageRoutes(deps: MessageRoutesDeps): Hono<AuthEnv> {
  const r = new Hono<AuthEnv>();
  // JSON escapes can take 6 bytes per character of body (\uXXXX), plus room for the other fields.
  const maxRequestBytes = deps.maxMessageBytes * 6 + 4096;
  const auth = requireAuth(deps.authenticate);

  r.post(
    '/message',
    auth,
    (c, next) => {
      const type = c.req.header('content-type') ?? '';
      if (!/^application\/json\s*(;|$)/i.test(type)) throw new AppError('unsupported_media_type');
      return next();
    },
    async (c) => c.json(await deps.accept(parseJson(await readBody(c, maxRequestBytes)), c.var.principal), 202),
  );

  r.get('/messages/since', auth, (c) => {
    const query = parsePageQuery(c.req.query());
    const current = deps.epoch();
    if (query.epoch !== undefined && current !== null && query.epoch !== current) {
      throw new AppError('epoch_mismatch', undefined, { details: { epoch: current } });
    }
    const principal = c.var.principal;
    if (!principal || principal.rooms.all) return c.json(deps.readPage(query));
    if (query.room !== undefined) {
      if (!principal.rooms.allows(query.room)) throw forbiddenRoom(query.room);
      return c.json(deps.readPage(query));
    }
    return c.json(deps.readPage({ ...query, rooms: principal.rooms.filter() }));
  });

  return r;
}

const tooLarge = (maxBytes: number) =>
  // The rest of the body is never read: the connection cannot carry another request.
  new AppError('too_large', `The request body is over ${maxBytes} bytes.`, { details: { maxBytes }, headers: { Connection: 'close' } });

/**
 * Reads the request body, refusing it as soon as it is over `maxBytes` (from Content-Length when
 * there is one, else while it streams in). Straight from Node's request when served by
 * @hono/node-server: building a web Request and ReadableStream per POST cost more than the rest
 * of the handler.
 */
async function readBody(c: Context, maxBytes: number): Promise<Buffer> {
  const declared = c.req.header('content-length');
  if (declared !== undefined && Number(declared) > maxBytes) throw tooLarge(maxBytes);
  const incoming = (c.env as Partial<HttpBindings> | undefined)?.incoming;
  if (!incoming) {
    const body = Buffer.from(await c.req.arrayBuffer());
    if (body.length > maxBytes) throw tooLarge(maxBytes);
    return body;
  }
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        incoming.off('data', onData);
        reject(tooLarge(maxBytes));
      } else chunks.push(chunk);
    };
    incoming.on('data', onData);
    incoming.once('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)));
    incoming.once('error', reject);
  });
}

function parseJson(bytes: Buffer): unknown {
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    throw new AppError('invalid_json', 'The request body is not valid UTF-8.');
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new AppError('invalid_json', `The request body is not valid JSON: ${(err as Error).message}`);
  }
}

const EPOCH = /^[A-Za-z0-9_-]{1,64}$/;
const NON_NEGATIVE_INT = /^(0|[1-9][0-9]{0,15})$/;
// A date, or a date-time with or without a zone; without one it is read as UTC (the server's
// clock zone would be a guess).
const ISO_8601 = /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)(Z|[+-]\d{2}:?\d{2})?)?$/i;
/** A `since` further ahead of this server's clock than this is a client bug (seconds vs ms, µs). */
const MAX_SINCE_AHEAD_MS = 60 * 60 * 1000;

/** Parses and validates the query of GET /messages/since into a PageQuery, or throws validation_failed. */
export function parsePageQuery(q: Record<string, string>): PageQuery {
  const errors: { field: string; message: string }[] = [];
  const out: PageQuery = { limit: DEFAULT_LIMIT };

  if (q.room !== undefined) {
    if (isRoom(q.room)) out.room = q.room;
    else errors.push({ field: 'room', message: ROOM_RULE });
  }
  if ((q.after === undefined) === (q.since === undefined)) {
    errors.push({ field: q.after === undefined ? 'after|since' : 'after&since', message: 'exactly one of after and since is required' });
  }
  if (q.after !== undefined) {
    const n = NON_NEGATIVE_INT.test(q.after) ? Number(q.after) : NaN;
    if (Number.isSafeInteger(n)) out.after = n;
    else errors.push({ field: 'after', message: 'must be a seq: a whole number >= 0' });
  }
  if (q.since !== undefined) {
    const ms = parseSince(q.since);
    if (ms === undefined) errors.push({ field: 'since', message: 'must be an ISO 8601 date-time or epoch milliseconds' });
    else if (ms > Date.now() + MAX_SINCE_AHEAD_MS) errors.push({ field: 'since', message: 'is more than an hour in the future (epoch seconds or microseconds instead of milliseconds?)' });
    else out.since = ms;
  }
  if (q.epoch !== undefined) {
    if (EPOCH.test(q.epoch)) out.epoch = q.epoch;
    else errors.push({ field: 'epoch', message: 'must be an epoch as returned with a page' });
  }
  if (q.limit !== undefined) {
    const n = NON_NEGATIVE_INT.test(q.limit) ? Number(q.limit) : NaN;
    if (n >= 1 && n <= MAX_LIMIT) out.limit = n;
    else errors.push({ field: 'limit', message: `must be a whole number from 1 to ${MAX_LIMIT}` });
  }
  if (errors.length > 0) throw validationFailed(errors);
  return out;
}

function parseSince(s: string): number | undefined {
  if (NON_NEGATIVE_INT.test(s)) {
    const n = Number(s);
    return Number.isSafeInteger(n) ? n : undefined;
  }
  const m = ISO_8601.exec(s);
  if (!m) return undefined;
  const [, date, time, zone] = m;
  const ms = Date.parse(time === undefined ? `${date}T00:00:00Z` : `${date}T${time}${zone ?? 'Z'}`);
  // Date.parse rolls 2026-02-30 over to March; refuse dates that do not exist.
  if (Number.isNaN(ms) || new Date(Date.parse(`${date}T00:00:00Z`)).toISOString().slice(0, 10) !== date) return undefined;
  return ms;
}
