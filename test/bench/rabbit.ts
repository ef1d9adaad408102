import { Connection } from 'rabbitmq-client';

/** A broker connection for the bench itself (set up like the server's: noDelay, bounded timeouts). */
export async function connectRabbit(url: string, name: string): Promise<Connection> {
  const conn = new Connection({ url, connectionName: name, connectionTimeout: 5000, acquireTimeout: 5000, retryLow: 250, retryHigh: 2000, noDelay: true });
  conn.on('error', () => {});
  try {
    await conn.onConnect(10_000, true);
  } catch (err) {
    await conn.close().catch(() => {});
    throw new Error(`RabbitMQ not reachable: ${(err as Error).message}`);
  }
  return conn;
}

/** Declares a stream as the server does (src/broker/stream.ts). */
export async function declareStream(conn: Connection, name: string): Promise<void> {
  await conn.queueDeclare({
    queue: name,
    durable: true,
    arguments: { 'x-queue-type': 'stream', 'x-max-age': '7D', 'x-stream-max-segment-size-bytes': 100_000_000 },
  });
}

/** Deletes streams (best effort, bounded in time); returns the names it could not delete. */
export async function deleteStreams(url: string, names: readonly string[]): Promise<string[]> {
  const failed: string[] = [];
  let conn: Connection | undefined;
  try {
    conn = await connectRabbit(url, 'bench cleanup');
    for (const queue of names) {
      try {
        await conn.queueDelete({ queue });
        // the server's live-signals exchange, named from the stream
        await conn.exchangeDelete({ exchange: `${queue}.signals` });
      } catch {
        failed.push(queue);
      }
    }
  } catch {
    return [...names];
  } finally {
    await conn?.close().catch(() => {});
  }
  return failed;
}
