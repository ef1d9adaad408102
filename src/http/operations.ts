import { timingSafeEqual } from 'node:crypto';
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { matchedRoutes } from 'hono/route';
import { AppError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { CatchUpKind, Metrics } from '../metrics.ts';

/** The route pattern that answered (a bounded label), or "unmatched" for 404s. */
function routeOf(c: Context): string {
  const routes = matchedRoutes(c);
  for (let i = routes.length - 1; i >= 0; i--) {
    const path = routes[i]!.path;
    if (path !== '*' && path !== '/*') return path;
  }
  return 'unmatched';
}

function catchUpKind(c: Context, route: string): CatchUpKind | undefined {
  if (route === '/messages/since') return c.req.query('after') !== undefined ? 'http_after' : 'http_since';
  if (route === '/messages/before') return 'http_before';
  return undefined;
}

/**
 * Observes every request once it is answered: a debug line (method, path, status, ms) and the
 * HTTP metrics. The log line is skipped without cost when debug is off.
 */
export function observeRequests(log: Logger, metrics: Metrics): MiddlewareHandler {
  return async (c, next) => {
    const start = performance.now();
    await next();
    const ms = performance.now() - start;
    const status = c.res.status;
    const route = routeOf(c);
    metrics.httpRequest(c.req.method, route, status, ms / 1000);
    if (status < 400) {
      const kind = catchUpKind(c, route);
      if (kind) metrics.catchUp(kind);
    }
    if (log.isLevelEnabled('debug')) log.debug({ method: c.req.method, path: c.req.path, status, ms: Math.round(ms * 10) / 10 }, 'request');
  };
}

const sameSecret = (a: string, b: string) => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

/** GET /metrics: Prometheus text exposition; behind `Authorization: Bearer <METRICS_TOKEN>` when that is set. */
export function metricsRoutes(metrics: Metrics, token: string | undefined): Hono {
  const r = new Hono();
  r.get('/metrics', async (c) => {
    if (token !== undefined) {
      const m = /^Bearer (.+)$/.exec(c.req.header('authorization') ?? '');
      if (!m || !sameSecret(m[1]!, token)) {
        throw new AppError('unauthorized', 'GET /metrics requires Authorization: Bearer <METRICS_TOKEN>.', { headers: { 'WWW-Authenticate': 'Bearer' } });
      }
    }
    return c.body(await metrics.text(), 200, { 'Content-Type': metrics.contentType, 'Cache-Control': 'no-store' });
  });
  return r;
}
