import { Hono } from 'hono';
import { isRoom, ROOM_RULE } from '../domain/message.ts';
import { AppError, forbiddenRoom } from '../errors.ts';
import { requireAuth, type Authenticate, type AuthEnv } from './auth.ts';

export interface PresenceRoutesDeps {
  /** Users with at least one socket subscribed to `room` on any node. */
  presence(room: string): Promise<string[]>;
  authenticate: Authenticate | undefined;
}

/** `GET /rooms/{room}/presence`: the same set a subscriber's `presence` frame carries. */
export function presenceRoutes(deps: PresenceRoutesDeps): Hono<AuthEnv> {
  const r = new Hono<AuthEnv>();
  r.get('/rooms/:room/presence', requireAuth(deps.authenticate), async (c) => {
    const room = c.req.param('room');
    if (!isRoom(room)) {
      throw new AppError('validation_failed', `room ${ROOM_RULE}`, { details: { fields: [{ field: 'room', message: ROOM_RULE }] } });
    }
    const principal = c.var.principal;
    if (principal && !principal.rooms.allows(room)) throw forbiddenRoom(room);
    return c.json({ room, users: (await deps.presence(room)).sort() });
  });
  return r;
}
