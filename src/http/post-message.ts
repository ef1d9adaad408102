import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Accept } from '../accept.ts';
import { bearerToken, type Authenticate, type Principal } from '../auth/tokens.ts';
import { AppError, toAppError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { maxPostBytes, postMessage, readIncoming } from './messages.ts';

export interface PostMessagePathDeps {
  accept: Accept;
  authenticate: Authenticate | undefined;
  maxMessageBytes: number;
  log: Logger;
  /** The request counter and duration (operations.ts records the same for every other route). */
  observe(method: string, route: string, status: number, seconds: number): void;
}

const ROUTE = '/message';

/**
 * `POST /message` served straight from Node's request, without the Hono app: on this, the hot
 * path, building the web Request/Response and running the middleware chain cost more server CPU
 * than accepting the post (about 70 us of ~120 in a wrk run of the HTTP layer alone). Everything
 * else, and every POST /message with a query string, goes to the app. The answers are the app's:
 * the same shared steps (postMessage), the same JSON bodies, statuses and headers, the same
 * request metric and debug line. Not used when CORS is configured (the app's CORS middleware
 * adds its headers to every answer).
 *
 * Returns a listener that answers and returns true, or returns false for the app to serve.
 */
export function postMessagePath(deps: PostMessagePathDeps): (req: IncomingMessage, res: ServerResponse) => boolean {
  const maxBytes = maxPostBytes(deps.maxMessageBytes);
  const answer = (res: ServerResponse, status: number, body: unknown, headers?: Record<string, string>) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  const serve = async (req: IncomingMessage, res: ServerResponse, start: number): Promise<void> => {
    let status = 202;
    try {
      let principal: Principal | undefined;
      if (deps.authenticate) {
        const token = bearerToken(req.headers.authorization);
        if (!token) throw new AppError('unauthorized', 'A bearer token is required.', { headers: { 'WWW-Authenticate': 'Bearer' } });
        principal = await deps.authenticate(token);
      }
      const idempotencyKey = req.headers['idempotency-key'];
      const accepted = await postMessage(deps.accept, principal, req.headers['content-type'], Array.isArray(idempotencyKey) ? idempotencyKey.join(', ') : idempotencyKey, () =>
        readIncoming(req, maxBytes),
      );
      answer(res, 202, accepted);
    } catch (err) {
      const coded = toAppError(err);
      if (coded) {
        status = coded.status;
        answer(res, status, coded.toJSON(), coded.headers);
      } else {
        status = 500;
        deps.log.error({ err, path: ROUTE }, 'unhandled error');
        answer(res, status, new AppError('internal').toJSON());
      }
    }
    const ms = performance.now() - start;
    deps.observe('POST', ROUTE, status, ms / 1000);
    if (deps.log.isLevelEnabled('debug')) deps.log.debug({ method: 'POST', path: ROUTE, status, ms: Math.round(ms * 10) / 10 }, 'request');
  };
  return (req, res) => {
    if (req.method !== 'POST' || req.url !== ROUTE) return false;
    serve(req, res, performance.now()).catch((err: unknown) => {
      // Only answering itself can fail here (the socket went away): nothing is left to tell the client.
      deps.log.error({ err, where: 'request' }, 'handler failed; contained');
      res.destroy();
    });
    return true;
  };
}
