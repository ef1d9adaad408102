import type { RateLimiter } from './auth/rate-limit.ts';
import type { Principal } from './auth/tokens.ts';
import type { Publish } from './broker/publisher.ts';
import { messageInputSchema, userProblem } from './domain/message.ts';
import { encodeRecord, messageRecord } from './domain/records.ts';
import { AppError, forbiddenRoom } from './errors.ts';
import type { Accepted } from './protocol.ts';


/** Accepts one message from any transport (HTTP body or WebSocket frame); resolves once the broker confirmed it. */
export type Accept = (input: unknown, principal: Principal | undefined) => Promise<Accepted>;

type FieldError = { field: string; message: string };

export const validationFailed = (fields: FieldError[]) =>
  new AppError('validation_failed', `Invalid ${fields.map((f) => f.field).join(', ')}: ${fields[0]!.message}.`, { details: { fields } });

/**
 * Who writes to the log, for every intake (messages, read markers): with a token its `sub`
 * (a different `field` value is refused, the room must be allowed, and `sub` must pass the user
 * rule the log decoder applies: verifyToken checks it, a principal from elsewhere must not bypass
 * it); in open mode the given value, which is then required.
 */
export function actingUser(field: 'sender' | 'user', given: string | undefined, principal: Principal | undefined, room: string, required: string): string {
  if (!principal) {
    if (given === undefined) throw validationFailed([{ field, message: required }]);
    return given;
  }
  if (given !== undefined && given !== principal.sub) throw new AppError('sender_mismatch', `${field} must be the token subject "${principal.sub}" (or left out).`);
  if (!principal.rooms.allows(room)) throw forbiddenRoom(room);
  const problem = userProblem(principal.sub);
  if (problem !== undefined) throw validationFailed([{ field, message: `(the token's sub) ${problem}` }]);
  return principal.sub;
}

/** Takes one from `who`'s budget (messages and read markers share it), or refuses with 429 and Retry-After. */
export function takeRate(limiter: RateLimiter, who: string, what: string): void {
  const wait = limiter.take(who);
  if (wait > 0) {
    throw new AppError('rate_limited', `Too many ${what} from "${who}"; retry in ${wait} s.`, {
      headers: { 'Retry-After': String(wait) },
      details: { retryAfter: wait },
    });
  }
}

/**
 * The one path into the log: validate, check access (room and sender against the token), take
 * from the sender's rate limit, publish with confirm. Order matters: a request refused at any
 * step publishes nothing and does not count against the limit.
 */
export function createAcceptor(deps: {
  publish: Publish;
  limiter: RateLimiter;
  maxMessageBytes: number;
  /** The message this node stores under `id`, if any: tells a retry from a reused key. */
  stored?: (id: string) => { room: string; body: string; createdAt: string } | undefined;
}): Accept {
  const schema = messageInputSchema(deps.maxMessageBytes);
  return async (input, principal) => {
    const parsed = schema.safeParse(input);
    if (!parsed.success) {
      const issues = parsed.error.issues;
      if (issues.some((i) => i.code === 'custom' && (i as { params?: { tooLarge?: boolean } }).params?.tooLarge)) {
        throw new AppError('too_large', `body is over ${deps.maxMessageBytes} UTF-8 bytes.`, { details: { field: 'body', maxBytes: deps.maxMessageBytes } });
      }
      throw validationFailed(issues.map((i) => ({ field: i.path.join('.') || '(body)', message: i.message })));
    }
    const msg = parsed.data;
    const sender = actingUser('sender', msg.sender, principal, msg.room, 'is required');
    const record = messageRecord({ ...msg, sender });
    if (msg.key !== undefined) {
      // A retry of a post this node already stores is answered as the first time (no second
      // publish); the same key with other content is a client bug that would lose a message.
      const first = deps.stored?.(record.id);
      if (first && (first.room !== record.room || first.body !== record.body)) {
        throw new AppError('idempotency_conflict', `key "${msg.key}" was already used by "${sender}" for a different message (room or body differs).`, {
          details: { key: msg.key, id: record.id },
        });
      }
      if (first) return { id: record.id, room: record.room, sender, createdAt: first.createdAt, key: msg.key, status: 'accepted' };
    }
    takeRate(deps.limiter, sender, 'messages');
    // One rule for accepting and storing, paid once: the input schema and the log decoder are built
    // from the same field rules (src/domain/message.ts), the sender is the validated input or a
    // token `sub` checked by the same user rule, and the server makes `id` and `createdAt`. So the
    // record is not decoded again here (test/unit/accept-decode.test.ts holds the rule to that).
    await deps.publish(encodeRecord(record));
    const accepted: Accepted = { id: record.id, room: record.room, sender, createdAt: new Date(record.createdAt).toISOString(), status: 'accepted' };
    if (record.key !== undefined) accepted.key = record.key;
    return accepted;
  };
}
