import { z } from 'zod';
import type { RateLimiter } from './auth/rate-limit.ts';
import type { Principal } from './auth/tokens.ts';
import type { Publish } from './broker/publisher.ts';
import { roomSchema, senderSchema } from './domain/message.ts';
import { encodeRecord, readRecord } from './domain/records.ts';
import { actingUser, takeRate, validationFailed } from './accept.ts';

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
    const user = actingUser('user', parsed.data.user, principal, room, 'is required in open mode');
    takeRate(deps.limiter, user, 'requests');
    await deps.publish(encodeRecord(readRecord(user, room, seq)));
    return { room, user, seq, status: 'accepted' };
  };
}
