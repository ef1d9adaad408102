import { Hono, type Context } from 'hono';
import type { HttpBindings } from '@hono/node-server';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { validationFailed, type Accept } from '../accept.ts';
import type { Accepted } from '../protocol.ts';
import type { Principal } from '../auth/tokens.ts';
import type { RoomFilter } from '../auth/rooms.ts';
import { isRoom, ROOM_RULE } from '../domain/message.ts';
import { AppError, forbiddenRoom } from '../errors.ts';
import type { Encoded, Page, PageQuery } from '../store/messages.ts';
import { requireAuth, type Authenticate, type AuthEnv } from './auth.ts';
import { jsonAnswer, sincePageBody } from './page-body.ts';

export interface MessageRoutesDeps {
  accept: Accept;
  /** A page with its messages as JSON text (see MESSAGE_JSON): written as they are. */
  readPage(query: PageQuery & { rooms?: RoomFilter }): Encoded<Page>;
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
  const maxRequestBytes = maxPostBytes(deps.maxMessageBytes);
  const auth = requireAuth(deps.authenticate);

  r.post('/message', auth, async (c) =>
    c.json(await postMessage(deps.accept, c.var.principal, c.req.header('content-type'), c.req.header('idempotency-key'), () => readBody(c, maxRequestBytes)), 202),
  );

  r.get('/messages/since', auth, (c) => {
    const { epoch, ...query } = parsePageQuery(c.req.query());
    const current = deps.epoch();
    if (epoch !== undefined && current !== null && epoch !== current) {
      throw new AppError('epoch_mismatch', undefined, { details: { epoch: current } });
    }
    const principal = c.var.principal;
    if (principal && !principal.rooms.all && query.room !== undefined && !principal.rooms.allows(query.room)) throw forbiddenRoom(query.room);
    // A token limited to some rooms, asking for no one room: the page holds only those rooms.
    const limited = principal && !principal.rooms.all && query.room === undefined;
    return jsonAnswer(c, sincePageBody(deps.readPage(limited ? { ...query, rooms: principal.rooms.filter() } : query)));
  });

  return r;
}

const tooLarge = (maxBytes: number) =>
  // The connection cannot carry another request: what is left of the body is discarded (see lingerAfterAnswer).
  new AppError('too_large', `The request body is over ${maxBytes} bytes.`, { details: { maxBytes }, headers: { Connection: 'close' } });

/**
 * POST /message once the caller is known: the content type, the body (read only after that
 * check), its JSON, the Idempotency-Key header, the acceptor. The Hono route and the node's
 * direct path (post-message.ts) both answer through this.
 */
export async function postMessage(
  accept: Accept,
  principal: Principal | undefined,
  contentType: string | undefined,
  idempotencyKey: string | undefined,
  body: () => Promise<Buffer>,
): Promise<Accepted> {
  if (!JSON_TYPE.test(contentType ?? '')) throw new AppError('unsupported_media_type');
  return accept(withHeaderKey(parseJson(await body()), idempotencyKey), principal);
}

const JSON_TYPE = /^application\/json\s*(;|$)/i;

/** The largest request body POST /message reads: JSON escapes can take 6 bytes per character of body (\uXXXX), plus room for the other fields. */
export const maxPostBytes = (maxMessageBytes: number) => maxMessageBytes * 6 + 4096;

/** How long and how much of a refused body is read and discarded after the 413 (then the socket is destroyed). */
const LINGER_MS = 5000;
export const LINGER_BYTES = 16 * 1024 * 1024;

/**
 * A client still writing a body we refuse must still read our 413. Node ends and destroys the
 * socket right after a `Connection: close` answer; closing with unread bytes makes the kernel
 * send RST, which can reach the client before it read the answer (it sees EPIPE or a reset).
 * So: answer, half-close (end our side, do not destroy), read and discard what follows for at most
 * LINGER_MS and LINGER_BYTES, then destroy.
 */
function lingerAfterAnswer(incoming: IncomingMessage): void {
  const socket = incoming.socket;
  if (!socket || socket.destroyed) return;
  let discarded = 0;
  const done = () => {
    clearTimeout(timer);
    socket.destroy();
  };
  const timer = setTimeout(done, LINGER_MS);
  timer.unref();
  // Node (and @hono/node-server's drain) call destroySoon after the answer: end instead.
  socket.destroySoon = function (this: Socket) {
    this.end();
  };
  socket.once('close', () => clearTimeout(timer));
  incoming.on('data', (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > LINGER_BYTES) done();
  });
  incoming.once('end', done);
  incoming.once('error', done);
  incoming.resume();
}

/**
 * Reads the request body, refusing it as soon as it is over `maxBytes` (from Content-Length when
 * there is one, else while it streams in). Straight from Node's request when served by
 * @hono/node-server: building a web Request and ReadableStream per POST cost more than the rest
 * of the handler.
 */
export async function readBody(c: Context, maxBytes: number): Promise<Buffer> {
  const incoming = (c.env as Partial<HttpBindings> | undefined)?.incoming;
  if (incoming) return readIncoming(incoming, maxBytes);
  if (Number(c.req.header('content-length')) > maxBytes) throw tooLarge(maxBytes);
  const body = Buffer.from(await c.req.arrayBuffer());
  if (body.length > maxBytes) throw tooLarge(maxBytes);
  return body;
}

/** readBody on Node's request itself. */
export function readIncoming(incoming: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = incoming.headers['content-length'];
  if (declared !== undefined && Number(declared) > maxBytes) {
    lingerAfterAnswer(incoming);
    return Promise.reject(tooLarge(maxBytes));
  }
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        // No Content-Length (chunked): refused once over the limit, then the same lingering close.
        incoming.off('data', onData);
        lingerAfterAnswer(incoming);
        reject(tooLarge(maxBytes));
      } else chunks.push(chunk);
    };
    incoming.on('data', onData);
    incoming.once('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)));
    incoming.once('error', reject);
  });
}

/** The `Idempotency-Key` header is the body's `key` by another name; given both, they must agree. */
function withHeaderKey(input: unknown, header: string | undefined): unknown {
  if (header === undefined || typeof input !== 'object' || input === null || Array.isArray(input)) return input;
  const body = input as Record<string, unknown>;
  if (body.key !== undefined && body.key !== header) {
    throw validationFailed([{ field: 'key', message: 'differs from the Idempotency-Key header (give one, or the same in both)' }]);
  }
  return { ...body, key: header };
}

export function parseJson(bytes: Buffer): unknown {
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
/**
 * A numeric `since` from 1 to this can only be epoch seconds (up to the year 5138): as milliseconds
 * it would be a moment of 1970, which no client means. 0 stays allowed (everything).
 */
const MAX_EPOCH_SECONDS = 99_999_999_999;
const MAX_SINCE_AHEAD_MS = 60 * 60 * 1000;

/** GET /messages/since's query: the page to read, and the log epoch the client's cursor came from (checked here, not by the store). */
type SinceQuery = PageQuery & { epoch?: string };

/** Parses and validates the query of GET /messages/since, or throws validation_failed. */
export function parsePageQuery(q: Record<string, string>): SinceQuery {
  const errors: { field: string; message: string }[] = [];
  const out: SinceQuery = { limit: DEFAULT_LIMIT };

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
    else if (NON_NEGATIVE_INT.test(q.since) && ms >= 1 && ms <= MAX_EPOCH_SECONDS) errors.push({ field: 'since', message: 'looks like epoch seconds: send epoch milliseconds (seconds x 1000) or an ISO 8601 date-time' });
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
