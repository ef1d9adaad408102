import type { Context, MiddlewareHandler } from 'hono';
import { validationFailed } from '../accept.ts';

/**
 * Refuses a query that repeats a parameter (`?after=1&after=2`): which one a route would read is
 * an accident of the parser, so every endpoint answers 400 naming it instead of guessing.
 */
export const singleQueryParams: MiddlewareHandler = async (c, next) => {
  if (c.req.url.includes('?')) assertSingle(c);
  return next();
};

function assertSingle(c: Context): void {
  const all = c.req.queries();
  const repeated = Object.keys(all).filter((k) => all[k]!.length > 1);
  if (repeated.length > 0) throw validationFailed(repeated.map((field) => ({ field, message: 'is given more than once' })));
}

/** The query, each parameter once (repeats are refused by singleQueryParams before any route). */
export function singleQuery(c: Context): Record<string, string> {
  assertSingle(c);
  return c.req.query();
}
