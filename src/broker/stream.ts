import type { Connection } from 'rabbitmq-client';
import { newId } from '../domain/id.ts';
import { encodeRecord, epochRecord } from '../domain/records.ts';

export interface StreamSpec {
  name: string;
  /** retention by age, e.g. "7D": how long a node may stay offline and still catch up */
  maxAge: string;
  /** Replicas (x-initial-cluster-size) when this node creates the stream; undefined = broker default. */
  replicas?: number | undefined;
}

const code = (err: unknown) => (err as { code?: string })?.code;

/**
 * Makes sure the stream exists. A stream this creates starts with an epoch record naming the new
 * log, which is how nodes tell a re-created stream from the one their offsets belong to. An
 * existing stream is used as it is (its retention may have been set by an operator or another
 * node with other settings), so nodes never fight over arguments.
 */
export async function ensureStream(conn: Connection, spec: StreamSpec): Promise<void> {
  try {
    await conn.queueDeclare({ queue: spec.name, passive: true });
    return;
  } catch (err) {
    if (code(err) !== 'NOT_FOUND') throw err;
  }
  try {
    await conn.queueDeclare({
      queue: spec.name,
      durable: true,
      arguments: {
        'x-queue-type': 'stream',
        'x-max-age': spec.maxAge,
        // Smaller segments than the 500 MB default let retention free space in smaller steps.
        'x-stream-max-segment-size-bytes': 100_000_000,
        ...(spec.replicas !== undefined && { 'x-initial-cluster-size': spec.replicas }),
      },
    });
  } catch (err) {
    if (code(err) !== 'PRECONDITION_FAILED') throw err;
  }
  // If two nodes create it at once both write one; the first in the log is the epoch.
  const pub = conn.createPublisher({ confirm: true, maxAttempts: 1 });
  try {
    await pub.send({ routingKey: spec.name, durable: true }, encodeRecord(epochRecord(newId())));
  } finally {
    await pub.close();
  }
}
