import type { Logger } from './log.ts';

/**
 * Wraps an event handler so that nothing it throws (or rejects with) reaches the process: an
 * exception escaping a socket, request or broker callback would stop the node for everyone.
 * The error is logged with `what` and handed to `recover` (answer the client, close its socket),
 * whose own failure is logged too and goes no further.
 */
export function guard<A extends unknown[]>(
  log: Logger,
  what: string,
  fn: (...args: A) => unknown,
  recover?: (err: unknown, ...args: A) => void,
): (...args: A) => void {
  return (...args: A) => runGuarded(log, what, fn, recover, args);
}

/**
 * guard's rule for one call of `fn(...args)`: for handlers shared by many sockets (one function,
 * not one closure per socket), which find their state in `args` or `this` at call time.
 */
export function runGuarded<A extends unknown[]>(
  log: Logger,
  what: string,
  fn: (...args: A) => unknown,
  recover: ((err: unknown, ...args: A) => void) | undefined,
  args: A,
): void {
  try {
    const out = fn(...args);
    if (out instanceof Promise) out.catch((err: unknown) => failed(log, what, recover, err, args));
  } catch (err) {
    failed(log, what, recover, err, args);
  }
}

function failed<A extends unknown[]>(log: Logger, what: string, recover: ((err: unknown, ...args: A) => void) | undefined, err: unknown, args: A): void {
  log.error({ err, where: what }, 'handler failed; contained');
  if (!recover) return;
  try {
    recover(err, ...args);
  } catch (again) {
    log.error({ err: again, where: what }, 'recovering from a handler failure failed too');
  }
}

/**
 * Describes a client-supplied value for an error message without serialising it: JSON.stringify
 * of a deeply nested or huge value throws or costs what the client chose.
 */
export function describeValue(v: unknown, maxChars = 40): string {
  if (typeof v === 'string') {
    const cut = [...v.slice(0, maxChars * 2)].slice(0, maxChars).join('');
    return JSON.stringify(cut.length < v.length ? `${cut}…` : cut);
  }
  if (v === null || typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return 'an array';
  return `a ${typeof v}`;
}
