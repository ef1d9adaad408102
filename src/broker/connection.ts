import type { Socket } from 'node:net';
import { Connection } from 'rabbitmq-client';
import type { Logger } from '../log.ts';
import { withTimeout } from '../timeout.ts';

/** The node's one AMQP connection, with the two things rabbitmq-client's Connection lacks. */
export interface Broker {
  readonly conn: Connection;
  /** Connected and not blocked by the broker (our own write batching does not count). */
  ready(): boolean;
  /**
   * Holds this turn of the event loop's writes on the connection and sends them in one system
   * call at its end. rabbitmq-client writes every publish on its own otherwise.
   */
  corkForThisTurn(): void;
}

/**
 * One AMQP connection per node, shared by publisher and consumer. rabbitmq-client reconnects
 * by itself; heartbeats (sent every heartbeat/2 s, two missed = dead) make a cut or stalled TCP
 * link noticed within about `heartbeatSeconds`.
 *
 * `urls` names the nodes of one cluster (they share credentials and vhost; config checks that).
 * rabbitmq-client takes them as `hosts` and tries the next one at every (re)connect, round-robin:
 * when the node we are on dies, the next attempt goes to the next node in the list.
 */
export function connectBroker(urls: readonly string[], log: Logger, name: string, heartbeatSeconds: number): Broker {
  const url = urls[0]!;
  const conn = new Connection({
    url,
    hosts: urls.map(hostPort),
    connectionName: name,
    heartbeat: heartbeatSeconds,
    connectionTimeout: 5000,
    acquireTimeout: 5000,
    retryLow: 250,
    retryHigh: 5000,
    // Without it small publishes and acks wait for Nagle's ~40 ms timer.
    noDelay: true,
  });
  // rabbitmq-client keeps its socket private; we read it for the peer's address and for corking.
  const socket = () => (conn as unknown as { _socket?: Socket })._socket;
  let wasUp = false;
  conn.on('connection', () => {
    wasUp = true;
    const s = socket();
    log.info({ node: s ? `${s.remoteAddress}:${s.remotePort}` : undefined }, 'broker connected');
  });
  conn.on('error', (err) => {
    if (err?.code === 'ACCESS_REFUSED') {
      // Not an outage: retrying will not help until the URL is fixed.
      log.error({ err: { message: err.message, code: err.code }, url: redact(url) }, 'broker refused the login: check RABBITMQ_URL credentials (user, password, vhost)');
      return;
    }
    log.warn({ err: { message: err?.message, code: err?.code } }, wasUp ? 'broker connection lost; reconnecting' : 'broker unreachable; retrying');
  });
  let blocked = false;
  conn.on('connection.blocked', (reason) => {
    blocked = true;
    log.warn({ reason }, 'broker blocked publishing');
  });
  conn.on('connection.unblocked', () => {
    blocked = false;
    log.info('broker unblocked publishing');
  });

  // rabbitmq-client has no public cork, and its `ready` reads a corked socket as blocked;
  // `corked` tells our cork apart from a real block.
  let corked: Socket | undefined;
  return {
    conn,
    ready: () => conn.ready || (corked !== undefined && corked === socket() && corked.writable && !blocked),
    corkForThisTurn() {
      const s = socket();
      if (corked || !s?.writable || !conn.ready) return;
      corked = s;
      s.cork();
      setImmediate(() => {
        corked = undefined;
        s.uncork();
      });
    },
  };
}

/** "host:port" (or "host" for the scheme's default port) as rabbitmq-client's `hosts` wants it. */
function hostPort(url: string): string {
  const u = new URL(url);
  return u.port ? `${u.hostname}:${u.port}` : u.hostname;
}

export function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}

/**
 * How many records the stream holds now (one passive declare; its message count), for the
 * replica-lag metric. Undefined when the broker cannot answer within a second.
 */
export async function streamLength(broker: Broker, stream: string): Promise<number | undefined> {
  if (!broker.ready()) return undefined;
  try {
    const ok = await withTimeout(broker.conn.queueDeclare({ queue: stream, passive: true }), 1000);
    return ok?.messageCount;
  } catch {
    return undefined;
  }
}
