import { sign, verify } from 'hono/jwt';
import { userProblem } from '../domain/message.ts';
import { AppError } from '../errors.ts';
import { RoomAccess } from './rooms.ts';

/** Who is asking, from a verified token. */
export interface Principal {
  sub: string;
  rooms: RoomAccess;
  /** expiry, epoch seconds */
  exp: number;
}

/** Turns a token into a Principal (HTTP and WebSocket alike); absent in open mode (no AUTH_SECRET). */
export type Authenticate = (token: string) => Promise<Principal>;

const unauthorized = (message: string) => new AppError('unauthorized', message, { headers: { 'WWW-Authenticate': 'Bearer' } });

/**
 * Verifies an HS256 JWT with Hono's own verifier (signature, `alg` pinned to HS256 so `none`
 * and algorithm swaps fail, `exp`/`nbf`/`iat`), then requires the claims this server relies on.
 */
export async function verifyToken(token: string, secret: string): Promise<Principal> {
  let payload: Record<string, unknown>;
  try {
    payload = (await verify(token, secret, 'HS256')) as Record<string, unknown>;
  } catch (err) {
    const name = (err as Error)?.name ?? '';
    throw unauthorized(name === 'JwtTokenExpired' ? 'The token has expired.' : 'The token is not valid.');
  }
  const { sub, exp } = payload;
  // `sub` becomes the sender of what the token posts: the sender rules apply (a lone surrogate
  // used to be accepted here, answered 202, and then skipped as invalid by every node).
  const problem = typeof sub === 'string' ? userProblem(sub) : 'is missing';
  if (problem !== undefined) throw unauthorized(`The token's "sub" claim ${problem} (the rules of a sender).`);
  if (typeof exp !== 'number' || !Number.isFinite(exp)) throw unauthorized('The token needs an "exp" claim.');
  const rooms = RoomAccess.parse(payload.rooms);
  if (!rooms) throw unauthorized('The token needs a "rooms" claim: a list of room names, "prefix*" entries or "*".');
  return { sub: sub as string, rooms, exp };
}

/** Reads `Authorization: Bearer <token>`; undefined when absent, unauthorized when malformed. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const m = /^Bearer +([A-Za-z0-9_=-]+\.[A-Za-z0-9_=-]+\.[A-Za-z0-9_=-]*)\s*$/i.exec(header);
  if (!m) throw unauthorized('Authorization must be "Bearer <token>".');
  return m[1];
}

export async function mintToken(secret: string, claims: { sub: string; rooms: string[]; ttlSeconds: number }): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return sign({ sub: claims.sub, rooms: claims.rooms, iat: now, exp: now + claims.ttlSeconds }, secret, 'HS256');
}
