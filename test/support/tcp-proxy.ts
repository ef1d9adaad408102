import { createServer, connect, type Server, type Socket } from 'node:net';

/** A TCP proxy in front of the broker, so a test can cut or stall the node's link for real. */
export interface TcpProxy {
  port: number;
  /** Destroys every open connection (new ones are still accepted): a cut link. */
  cut(): void;
  /** Stops reading on both sides of every connection, new ones included; nothing is closed or lost: a stalled link. */
  stall(): void;
  /** Reads again: whatever waited in the kernel's buffers flows on. */
  resume(): void;
  readonly connections: number;
  close(): Promise<void>;
}

/** `targetPort` may be a function: each new connection goes where it says (e.g. a random node). */
export async function startTcpProxy(targetPort: number | (() => number), targetHost = '127.0.0.1', listenPort = 0): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let stalled = false;
  const track = (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    if (stalled) s.pause();
  };
  const server: Server = createServer((client) => {
    const upstream = connect(typeof targetPort === 'function' ? targetPort() : targetPort, targetHost);
    track(client);
    track(upstream);
    // Plain forwarding, not pipe(): pipe() would resume a paused side on 'drain'. A paused side
    // stops reading, and TCP pushes back on the sender; nothing is dropped.
    client.on('data', (d) => upstream.write(d));
    upstream.on('data', (d) => client.write(d));
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(listenPort, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    cut() {
      for (const s of sockets) s.destroy();
    },
    stall() {
      stalled = true;
      for (const s of sockets) s.pause();
    },
    resume() {
      stalled = false;
      for (const s of sockets) s.resume();
    },
    get connections() {
      return sockets.size / 2;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
