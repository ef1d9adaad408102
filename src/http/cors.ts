import type { MiddlewareHandler } from 'hono';
import { cors } from 'hono/cors';

/** CORS_ORIGINS as configured: '*' for any origin, a list, or undefined (unset: no CORS headers at all). */
export type CorsOrigins = '*' | readonly string[] | undefined;

/**
 * The HTTP API's CORS policy (hono/cors). Answers preflights itself; an origin outside the list
 * gets no Access-Control-Allow-Origin, so the browser refuses the response. Tokens travel in the
 * Authorization header, never in cookies, so credentials stay off.
 */
export function corsMiddleware(origins: CorsOrigins): MiddlewareHandler | undefined {
  if (origins === undefined) return undefined;
  return cors({
    origin: origins === '*' ? '*' : [...origins],
    allowMethods: ['GET', 'HEAD', 'POST', 'OPTIONS'],
    allowHeaders: ['Authorization', 'Content-Type', 'Idempotency-Key'],
    // A 429 or 503 tells the client when to come back; a browser only shows it to code when exposed.
    exposeHeaders: ['Retry-After'],
    maxAge: 600,
  });
}

/**
 * Whether a WebSocket upgrade's Origin may connect. Browsers always send Origin and cannot fake
 * it; native apps and servers send none, and are let in (they are not the cross-site threat).
 */
export function originAllowed(origins: CorsOrigins, origin: string | undefined): boolean {
  if (origins === undefined || origins === '*' || origin === undefined) return true;
  return origins.includes(origin);
}
