/**
 * The child side of the request/answer protocol between the runner and its helper processes.
 * The runner sends `{id, cmd, args}`; the child answers `{id, ok, result | error}`. A child
 * exits when the runner goes away (IPC channel closed), so none outlives a killed runner.
 */

export type Handlers = Record<string, (args: any) => unknown>;

export interface Request {
  id: number;
  cmd: string;
  args: unknown;
}

export type Answer = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

export function serve(handlers: Handlers): void {
  if (!process.send) throw new Error('this script is a helper of test/bench/run.ts and runs only as its child');
  process.on('message', async (raw) => {
    const req = raw as Request;
    const handler = handlers[req.cmd];
    let answer: Answer;
    try {
      if (!handler) throw new Error(`unknown command ${req.cmd}`);
      answer = { id: req.id, ok: true, result: await handler(req.args) };
    } catch (err) {
      answer = { id: req.id, ok: false, error: (err as Error)?.stack ?? String(err) };
    }
    if (process.connected) process.send!(answer);
  });
  process.on('disconnect', () => process.exit(0));
  process.send({ ready: true });
}

/** Listens on a free loopback port: the `listen` handler of every bench server process. */
export function listenOnLoopback(server: import('node:net').Server): Promise<{ port: number }> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve({ port: (server.address() as import('node:net').AddressInfo).port }));
  });
}
