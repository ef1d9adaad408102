import { singleQuery } from './query.ts';
import { Hono } from 'hono';
import { validationFailed } from '../accept.ts';
import { isRoom, ROOM_RULE, userProblem } from '../domain/message.ts';
import { AppError, forbiddenRoom } from '../errors.ts';
import type { MarkRead } from '../mark-read.ts';
import { decodeCursor, type RoomsPage, type RoomsQuery } from '../store/conversations.ts';
import type { BeforePage, Encoded } from '../store/messages.ts';
import { requireAuth, type Authenticate, type AuthEnv } from './auth.ts';
import { beforePageBody, jsonAnswer } from './page-body.ts';
import { parseJson, readBody } from './messages.ts';
import type { Context } from 'hono';

export interface RoomRoutesDeps {
  /** A scrollback page with its messages as JSON text (see MESSAGE_JSON): written as they are. */
  readBefore(room: string, before: number | undefined, limit: number): Encoded<BeforePage>;
  markRead: MarkRead;
  listRooms(query: RoomsQuery): RoomsPage;
  authenticate: Authenticate | undefined;
}

const SEQ = /^(0|[1-9][0-9]{0,15})$/;
const MAX_BEFORE_LIMIT = 1000;
const DEFAULT_BEFORE_LIMIT = 50;
const MAX_ROOMS_LIMIT = 200;
const DEFAULT_ROOMS_LIMIT = 50;

type FieldError = { field: string; message: string };

const whole = (s: string, min: number, max: number): number | undefined => {
  const n = SEQ.test(s) ? Number(s) : NaN;
  return Number.isSafeInteger(n) && n >= min && n <= max ? n : undefined;
};

/** A small JSON body (a read marker is a few bytes). */
async function jsonBody(c: Context): Promise<unknown> {
  if (!/^application\/json\s*(;|$)/i.test(c.req.header('content-type') ?? '')) throw new AppError('unsupported_media_type');
  return parseJson(await readBody(c, 4096));
}

/** Scrollback and read state: GET /messages/before, POST /rooms/{room}/read, GET /rooms. */
export function roomRoutes(deps: RoomRoutesDeps): Hono<AuthEnv> {
  const r = new Hono<AuthEnv>();
  const auth = requireAuth(deps.authenticate);

  r.get('/messages/before', auth, (c) => {
    const q = singleQuery(c);
    const errors: FieldError[] = [];
    if (q.room === undefined) errors.push({ field: 'room', message: 'is required' });
    else if (!isRoom(q.room)) errors.push({ field: 'room', message: ROOM_RULE });
    let before: number | undefined;
    if (q.before !== undefined) {
      before = whole(q.before, 0, Number.MAX_SAFE_INTEGER);
      if (before === undefined) errors.push({ field: 'before', message: 'must be a seq: a whole number >= 0' });
    }
    let limit = DEFAULT_BEFORE_LIMIT;
    if (q.limit !== undefined) {
      const n = whole(q.limit, 1, MAX_BEFORE_LIMIT);
      if (n === undefined) errors.push({ field: 'limit', message: `must be a whole number from 1 to ${MAX_BEFORE_LIMIT}` });
      else limit = n;
    }
    if (errors.length > 0) throw validationFailed(errors);
    const principal = c.var.principal;
    if (principal && !principal.rooms.allows(q.room!)) throw forbiddenRoom(q.room!);
    return jsonAnswer(c, beforePageBody(deps.readBefore(q.room!, before, limit)));
  });

  r.post('/rooms/:room/read', auth, async (c) => {
    const room = c.req.param('room');
    if (!isRoom(room)) throw validationFailed([{ field: 'room', message: ROOM_RULE }]);
    const body = await jsonBody(c);
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw validationFailed([{ field: '(body)', message: 'must be a JSON object' }]);
    if ('room' in body && (body as { room: unknown }).room !== room) throw validationFailed([{ field: 'room', message: 'is given by the path' }]);
    return c.json(await deps.markRead({ ...body, room }, c.var.principal), 202);
  });

  r.get('/rooms', auth, (c) => {
    const q = singleQuery(c);
    const errors: FieldError[] = [];
    const principal = c.var.principal;
    let user: string | undefined;
    if (principal) {
      if (q.user !== undefined && q.user !== principal.sub) throw new AppError('sender_mismatch', `user must be the token subject "${principal.sub}" (or left out).`);
      user = principal.sub;
    } else if (q.user === undefined) {
      errors.push({ field: 'user', message: 'is required in open mode' });
    } else {
      const problem = userProblem(q.user);
      if (problem) errors.push({ field: 'user', message: problem });
      else user = q.user;
    }
    let rooms: string[] | undefined;
    if (q.rooms !== undefined) {
      rooms = q.rooms.split(',');
      if (rooms.length > MAX_ROOMS_LIMIT) errors.push({ field: 'rooms', message: `at most ${MAX_ROOMS_LIMIT} rooms` });
      else if (!rooms.every(isRoom)) errors.push({ field: 'rooms', message: `comma-separated room names, each ${ROOM_RULE}` });
    }
    let limit = DEFAULT_ROOMS_LIMIT;
    if (q.limit !== undefined) {
      const n = whole(q.limit, 1, MAX_ROOMS_LIMIT);
      if (n === undefined) errors.push({ field: 'limit', message: `must be a whole number from 1 to ${MAX_ROOMS_LIMIT}` });
      else limit = n;
    }
    if (q.after !== undefined && !decodeCursor(q.after)) errors.push({ field: 'after', message: 'must be the next of a previous page' });
    if (errors.length > 0) throw validationFailed(errors);
    if (principal && rooms) for (const room of rooms) if (!principal.rooms.allows(room)) throw forbiddenRoom(room);
    const allowed = principal && !principal.rooms.all ? { allows: (room: string) => principal.rooms.allows(room), exact: principal.rooms.filter()?.exact ?? [] } : undefined;
    return c.json(deps.listRooms({ user: user!, rooms, allowed, after: q.after, limit }));
  });

  return r;
}
