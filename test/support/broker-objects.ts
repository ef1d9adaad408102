import { spawnSync } from 'node:child_process';
import { Connection } from 'rabbitmq-client';

export interface Binding {
  queue: string;
  key: string;
}

/**
 * The bindings of `exchange` as the broker itself lists them (rabbitmqctl), filtered by that
 * exchange: other test files create objects on the same broker at the same time. Undefined when
 * rabbitmqctl cannot reach the broker. Slow (seconds): use it sparingly.
 */
export function listBindings(exchange: string): Binding[] | undefined {
  const r = spawnSync('rabbitmqctl', ['-q', 'list_bindings', 'source_name', 'destination_name', 'routing_key', '--formatter', 'json'], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (r.status !== 0) return undefined;
  const rows = JSON.parse(r.stdout) as { source_name: string; destination_name: string; routing_key: string }[];
  return rows.filter((b) => b.source_name === exchange).map((b) => ({ queue: b.destination_name, key: b.routing_key }));
}

/** A quick AMQP view of one broker: does a key route anywhere, does a queue exist. */
export async function brokerProbe(url: string) {
  const conn = new Connection({ url, connectionTimeout: 3000 });
  conn.on('error', () => {});
  await conn.onConnect(5000);
  const pub = conn.createPublisher({ confirm: true });
  const returned = new Set<string>();
  pub.on('basic.return', (msg: { messageId?: string }) => msg.messageId && returned.add(msg.messageId));
  let n = 0;
  return {
    /** Whether a message to `exchange` with `key` reaches at least one queue (mandatory publish: unroutable ones come back). */
    async routes(exchange: string, key: string): Promise<boolean> {
      const id = `probe-${n++}`;
      // The broker returns an unroutable message before confirming it; rabbitmq-client emits the
      // return on the next setImmediate, so one more turn sees it.
      await pub.send({ exchange, routingKey: key, mandatory: true, messageId: id }, 'probe');
      await new Promise((r) => setImmediate(r));
      return !returned.delete(id);
    },
    async queueExists(queue: string): Promise<boolean> {
      try {
        await conn.queueDeclare({ queue, passive: true });
        return true;
      } catch (err) {
        // Another connection's exclusive queue exists but is locked to us.
        return (err as { code?: string }).code === 'RESOURCE_LOCKED';
      }
    },
    async close(): Promise<void> {
      await pub.close().catch(() => {});
      await conn.close().catch(() => {});
    },
  };
}
