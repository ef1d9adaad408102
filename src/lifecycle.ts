import type { Logger } from './log.ts';

/**
 * The one shape of every long-running part of a node (database, broker connection, consumer,
 * HTTP server, ...). Building a part allocates it; `start` (when it has one) sets it going;
 * `stop` finishes its work in flight and releases what it holds.
 */
export interface Part {
  readonly name: string;
  start?(): void | Promise<void>;
  stop(): void | Promise<void>;
}

/**
 * Starts the parts in list order and returns the function that stops them in reverse order.
 * If one fails to start, the ones before it are stopped (in reverse) and its error is thrown.
 */
export async function startParts(parts: readonly Part[], log: Logger): Promise<() => Promise<void>> {
  for (const [i, part] of parts.entries()) {
    try {
      await part.start?.();
    } catch (err) {
      await stopParts(parts.slice(0, i), log).catch(() => {});
      throw err;
    }
  }
  return () => stopParts(parts, log);
}

/**
 * Stops the parts in reverse list order, each after the previous one has finished. A part that
 * fails to stop is logged and the rest still stop (the database still closes); the first such
 * error is thrown at the end.
 */
export async function stopParts(parts: readonly Part[], log: Logger): Promise<void> {
  const errors: unknown[] = [];
  for (const part of [...parts].reverse()) {
    try {
      await part.stop();
    } catch (err) {
      log.error({ err, part: part.name }, 'a part failed to stop');
      errors.push(err);
    }
  }
  if (errors.length > 0) throw errors[0];
}
