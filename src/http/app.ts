import { Hono, type MiddlewareHandler } from 'hono';
import { AppError, toAppError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { demoRoutes } from './demo.ts';
import { healthRoutes, type Readiness } from './health.ts';
import { messageRoutes, type MessageRoutesDeps } from './messages.ts';
import { presenceRoutes, type PresenceRoutesDeps } from './presence.ts';
import { singleQueryParams } from './query.ts';
import { roomRoutes, type RoomRoutesDeps } from './rooms.ts';

export interface AppDeps extends MessageRoutesDeps, RoomRoutesDeps {
  readiness: Readiness;
  /** In token mode, also lets /readyz show its figures (see health.ts). */
  metricsToken?: string;
  log: Logger;
  /** Serve the demo chat page at /demo (DEMO_PAGE). */
  demo?: boolean;
  /** Runs before every route: CORS, the request log (see operations.ts). */
  before?: MiddlewareHandler[];
  /** Who is in a room across nodes (GET /rooms/{room}/presence); absent, the route is not served. */
  presence?: PresenceRoutesDeps['presence'];
  /** More routes mounted at / (operations: /metrics, the API documents). */
  routes?: Hono[];
}

/** The HTTP API. Pure request -> response over the functions it is given; testable with `app.request()`. */
export function createApp(deps: AppDeps): Hono {
  const app = new Hono();
  for (const m of deps.before ?? []) app.use('*', m);
  app.use('*', singleQueryParams);
  app.route('/', messageRoutes(deps));
  app.route('/', roomRoutes(deps));
  app.route('/', healthRoutes(deps.readiness, deps.authenticate, deps.metricsToken));
  for (const r of deps.routes ?? []) app.route('/', r);
  if (deps.demo) app.route('/', demoRoutes({ tokenMode: deps.authenticate !== undefined }));
  if (deps.presence) app.route('/', presenceRoutes({ presence: deps.presence, authenticate: deps.authenticate }));
  // /ws is served by the WebSocket upgrade handler; a plain GET lands here.
  app.get('/ws', () => {
    throw new AppError('upgrade_required');
  });
  answerOtherMethods(app);
  app.notFound((c) => c.json(new AppError('not_found', `No endpoint at ${c.req.path}.`).toJSON(), 404));
  app.onError((err, c) => {
    const coded = toAppError(err);
    if (coded) {
      if (coded.headers) for (const [k, v] of Object.entries(coded.headers)) c.header(k, v);
      return c.json(coded.toJSON(), coded.status);
    }
    deps.log.error({ err, path: c.req.path }, 'unhandled error');
    return c.json(new AppError('internal').toJSON(), 500);
  });
  return app;
}

/**
 * Every path served answers the methods it does not serve with 405 and an Allow header, derived
 * from the routes registered so far (GET implies HEAD; middleware, method ALL, serves nothing).
 */
function answerOtherMethods(app: Hono): void {
  const served = new Map<string, string[]>();
  for (const { method, path } of app.routes) {
    if (method === 'ALL') continue;
    const methods = served.get(path) ?? [];
    for (const m of method === 'GET' ? ['GET', 'HEAD'] : [method]) if (!methods.includes(m)) methods.push(m);
    served.set(path, methods);
  }
  for (const [path, methods] of served) {
    const allow = methods.join(', ');
    app.all(path, (c) => {
      throw new AppError('method_not_allowed', `${c.req.method} is not allowed on ${path}; use ${allow}.`, { headers: { Allow: allow } });
    });
  }
}
