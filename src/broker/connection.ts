import type { Socket } from 'node:net';
import { Connection } from 'rabbitmq-client';
import type { Logger } from '../log.ts';

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
 */
export function connectBroker(url: string, log: Logger, name: string, heartbeatSeconds: number): Broker {
  const conn = new Connection({
    url,
    connectionName: name,
    heartbeat: heartbeatSeconds,
    connectionTimeout: 5000,
    acquireTimeout: 5000,
    retryLow: 250,
    retryHigh: 5000,
    // Without it small publishes and acks wait for Nagle's ~40 ms timer.
    noDelay: true,
  });
  let wasUp = false;
  conn.on('connection', () => {
    wasUp = true;
    log.info({ url: redact(url) }, 'broker connected');
  });
  conn.on('error', (err) => {
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
  const socket = () => (conn as unknown as { _socket?: Socket })._socket;
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

export function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}
