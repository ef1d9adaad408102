import type { Connection } from 'rabbitmq-client';

export interface StreamSpec {
  name: string;
  /** retention by age, e.g. "7D": how long a node may stay offline and still catch up */
  maxAge: string;
}

/**
 * Declares the stream (idempotent). A stream that already exists with other arguments (set by
 * an operator, or a node configured differently) is used as it is, so nodes never fight over
 * retention settings.
 */
export async function ensureStream(conn: Connection, spec: StreamSpec): Promise<void> {
  try {
    await conn.queueDeclare({
      queue: spec.name,
      durable: true,
      arguments: {
        'x-queue-type': 'stream',
        'x-max-age': spec.maxAge,
        // Smaller segments than the 500 MB default let retention free space in smaller steps.
        'x-stream-max-segment-size-bytes': 100_000_000,
      },
    });
  } catch (err) {
    if ((err as { code?: string }).code !== 'PRECONDITION_FAILED') throw err;
  }
}
