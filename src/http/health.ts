import { Hono } from 'hono';
import { AppError } from '../errors.ts';

export interface Readiness {
  /** ok when the database is open and the consumer is connected and consuming; checks say what is wrong. */
  (): { ok: boolean; checks: Record<string, unknown> };
}

export function healthRoutes(readiness: Readiness): Hono {
  const r = new Hono();
  r.get('/healthz', (c) => c.json({ status: 'ok' }));
  r.get('/readyz', (c) => {
    const { ok, checks } = readiness();
    if (ok) return c.json({ status: 'ready', checks });
    return c.json(new AppError('not_ready', 'This node is not ready.', { details: { checks } }).toJSON(), 503);
  });
  return r;
}
