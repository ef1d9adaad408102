import { z } from 'zod';
import type { RateLimiter } from './auth/rate-limit.ts';
import type { Principal } from './auth/tokens.ts';
import type { Publish } from './broker/publisher.ts';
import { roomSchema, senderSchema } from './domain/message.ts';
import { encodeRecord, readRecord } from './domain/records.ts';
import { validationFailed } from './accept.ts';
import { AppError, forbiddenRoom } from './errors.ts';

export interface ReadAccepted {
  room: string;
  user: string;
  seq: number;
  status: 'accepted';
}

/**
 * Records that a user has read a room up to `seq`, from any transport (POST /rooms/{room}/read,
 * the WebSocket `read` frame). Resolves once the broker confirmed the `read` record; every node
 * then applies it (see ReadState.read).
 */
export type MarkRead = (input: unknown, principal: Principal | undefined) => Promise<ReadAccepted>;

/** The read marker's fields (POST /rooms/{room}/read body with `room` from the path; the WebSocket `read` frame). */
export const markReadSchema = z.strictObject({
  room: roomSchema,
  seq: z.number({ error: 'must be a seq: a whole number >= 0' }).int('must be a seq: a whole number >= 0').nonnegative('must be a seq: a whole number >= 0').max(Number.MAX_SAFE_INTEGER, 'must be a safe integer'),
  user: senderSchema.optional(),
});

/**
 * Validate, check access (room and user against the token), take from the user's rate limit
 * (the same budget as their messages), publish with confirm. A refused request publishes nothing.
 */
export function createMarkRead(deps: { publish: Publish; limiter: RateLimiter }): MarkRead {
  return async (input, principal) => {
    const parsed = markReadSchema.safeParse(input);
    if (!parsed.success) throw validationFailed(parsed.error.issues.map((i) => ({ field: i.path.join('.') || '(body)', message: i.message })));
    const { room, seq } = parsed.data;
    let user = parsed.data.user;
    if (principal) {
      if (user !== undefined && user !== principal.sub) throw new AppError('sender_mismatch', `user must be the token subject "${principal.sub}" (or left out).`);
      if (!principal.rooms.allows(room)) throw forbiddenRoom(room);
      user = principal.sub;
    } else if (user === undefined) {
      throw validationFailed([{ field: 'user', message: 'is required in open mode' }]);
    }
    const wait = deps.limiter.take(user);
    if (wait > 0) {
      throw new AppError('rate_limited', `Too many requests from "${user}"; retry in ${wait} s.`, {
        headers: { 'Retry-After': String(wait) },
        details: { retryAfter: wait },
      });
    }
    await deps.publish(encodeRecord(readRecord(user, room, seq)));
    return { room, user, seq, status: 'accepted' };
  };
}
