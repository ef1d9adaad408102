import type { MiddlewareHandler } from 'hono';
import { bearerToken, type Authenticate, type Principal } from '../auth/tokens.ts';
import { AppError } from '../errors.ts';

export type { Authenticate };

export type AuthEnv = { Variables: { principal: Principal | undefined } };

/** Requires a valid bearer token when auth is on; puts the caller in `c.var.principal`. */
export function requireAuth(authenticate: Authenticate | undefined): MiddlewareHandler<AuthEnv> {
  return async (c, next) => {
    if (!authenticate) {
      c.set('principal', undefined);
      return next();
    }
    const token = bearerToken(c.req.header('authorization'));
    if (!token) throw new AppError('unauthorized', 'A bearer token is required.', { headers: { 'WWW-Authenticate': 'Bearer' } });
    c.set('principal', await authenticate(token));
    return next();
  };
}
