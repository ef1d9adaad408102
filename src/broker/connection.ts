import { Connection } from 'rabbitmq-client';
import type { Logger } from '../log.ts';

/**
 * One AMQP connection per node, shared by publisher and consumer. rabbitmq-client reconnects
 * by itself; heartbeats (sent every heartbeat/2 s, two missed = dead) make a cut or stalled TCP
 * link noticed within about `heartbeatSeconds`.
 */
export function connectBroker(url: string, log: Logger, name: string, heartbeatSeconds: number): Connection {
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
  conn.on('connection.blocked', (reason) => log.warn({ reason }, 'broker blocked publishing'));
  conn.on('connection.unblocked', () => log.info('broker unblocked publishing'));
  return conn;
}

export function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}
