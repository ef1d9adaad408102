import { Hono } from 'hono';
import { AppError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { healthRoutes, type Readiness } from './health.ts';
import { messageRoutes, type MessageRoutesDeps } from './messages.ts';

export interface AppDeps extends MessageRoutesDeps {
  readiness: Readiness;
  log: Logger;
}

/** The HTTP API. Pure request -> response over the functions it is given; testable with `app.request()`. */
export function createApp(deps: AppDeps): Hono {
  const app = new Hono();
  app.route('/', messageRoutes(deps));
  app.route('/', healthRoutes(deps.readiness));
  // /ws is served by the WebSocket upgrade handler; a plain GET lands here.
  app.get('/ws', () => {
    throw new AppError('upgrade_required');
  });
  for (const path of ['/message', '/messages/since', '/healthz', '/readyz', '/ws']) {
    app.all(path, (c) => {
      const allow = path === '/message' ? 'POST' : 'GET, HEAD';
      throw new AppError('method_not_allowed', `${c.req.method} is not allowed on ${path}; use ${allow}.`, { headers: { Allow: allow } });
    });
  }
  app.notFound((c) => c.json(new AppError('not_found', `No endpoint at ${c.req.path}.`).toJSON(), 404));
  app.onError((err, c) => {
    if (err instanceof AppError) {
      if (err.headers) for (const [k, v] of Object.entries(err.headers)) c.header(k, v);
      return c.json(err.toJSON(), err.status);
    }
    deps.log.error({ err, path: c.req.path }, 'unhandled error');
    return c.json(new AppError('internal').toJSON(), 500);
  });
  return app;
}
