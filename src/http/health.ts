import { Hono } from 'hono';
import { AppError } from '../errors.ts';
import { VERSION } from '../version.ts';
import type { Authenticate } from './auth.ts';

export interface Readiness {
  /**
   * Whether the node may take traffic (decided by decideReadiness in src/readiness.ts); checks say
   * what is wrong, failing names the checks that fail (all an anonymous caller sees in token mode).
   */
  (): { ok: boolean; checks: Record<string, unknown>; failing?: string[] };
}

/**
 * In token mode (authenticate given) /readyz shows its figures (sockets, offsets, lag) only to a
 * caller with a valid token or the METRICS_TOKEN; anyone else gets ready / not ready and the names
 * of the failing checks: traffic figures are not for the whole Internet.
 */
export function healthRoutes(readiness: Readiness, authenticate?: Authenticate, metricsToken?: string): Hono {
  const r = new Hono();
  r.get('/healthz', (c) => c.json({ status: 'ok', version: VERSION }));
  r.get('/readyz', async (c) => {
    const { ok, checks, failing } = readiness();
    const detailed = !authenticate || (await mayReadFigures(c.req.header('authorization'), authenticate, metricsToken));
    if (detailed) {
      if (ok) return c.json({ status: 'ready', checks });
      return c.json(new AppError('not_ready', 'This node is not ready.', { details: { checks } }).toJSON(), 503);
    }
    if (ok) return c.json({ status: 'ready' });
    return c.json(new AppError('not_ready', 'This node is not ready.', { details: { failing: failing ?? [] } }).toJSON(), 503);
  });
  return r;
}

async function mayReadFigures(header: string | undefined, authenticate: Authenticate, metricsToken: string | undefined): Promise<boolean> {
  const token = header === undefined ? undefined : /^Bearer +(\S+)\s*$/i.exec(header)?.[1];
  if (!token) return false;
  if (metricsToken !== undefined && token === metricsToken) return true;
  try {
    await authenticate(token);
    return true;
  } catch {
    return false;
  }
}
