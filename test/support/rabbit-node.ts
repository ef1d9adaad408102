import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A RabbitMQ node of the tests' own: own node name, ports and data dir under a temp folder. */
export interface PrivateRabbit {
  url: string;
  port: number;
  /** Graceful stop (SIGTERM); data stays for `start()`. */
  stop(): Promise<void>;
  /** Abrupt stop of the whole VM (SIGKILL), as a crash would. */
  kill(): Promise<void>;
  /** Starts it again on the same port and data. */
  start(): Promise<void>;
  /** Stops it and deletes its data. */
  destroy(): Promise<void>;
}

const SERVER_SCRIPTS = ['/usr/lib/rabbitmq/bin/rabbitmq-server', '/usr/lib/rabbitmq/sbin/rabbitmq-server'];

/** Path of a rabbitmq-server start script that runs as the current user, or undefined. */
export function findRabbitServer(): string | undefined {
  for (const p of SERVER_SCRIPTS) if (existsSync(p)) return p;
  const which = spawnSync('sh', ['-c', 'command -v rabbitmq-server'], { encoding: 'utf8' });
  const found = which.stdout.trim();
  return which.status === 0 && found ? found : undefined;
}

/**
 * A free port for a private broker, picked at random BELOW the kernel's ephemeral range
 * (32768-60999 here). A port from listen(0) is in that range, and once its broker is stopped or
 * killed for a test, any other test's listen(0) or outgoing connection could be given the same
 * port: the restarted broker then fails to bind it, or the node reconnects to someone else's
 * server. (Seen in full runs: a node never ready after its broker's restart, an SDK send
 * answered during an outage.) Nothing binds this range by chance; two harnesses picking the same
 * random port is checked here and unlikely while a broker is down.
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const free = await new Promise<boolean>((resolve) => {
      const srv = createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (free) return port;
  }
}

export async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on port ${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const exited = (child: ChildProcess) =>
  new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));

export async function startPrivateRabbit(script = findRabbitServer()): Promise<PrivateRabbit> {
  if (!script) throw new Error('rabbitmq-server is not installed');
  const dir = mkdtempSync(join(tmpdir(), 'chat-rabbit-'));
  const port = await freePort();
  const distPort = await freePort();
  const name = `chattest${process.pid}x${port}@localhost`;
  mkdirSync(join(dir, 'mnesia'));
  mkdirSync(join(dir, 'log'));
  writeFileSync(join(dir, 'enabled_plugins'), '[].\n');
  writeFileSync(join(dir, 'rabbitmq.conf'), `listeners.tcp.default = 127.0.0.1:${port}\nloopback_users = none\n`);
  const env = {
    ...process.env,
    HOME: dir, // its own Erlang cookie
    RABBITMQ_NODENAME: name,
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
    RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq.conf'),
  };
  let child: ChildProcess | undefined;

  const start = async () => {
    child = spawn(script, [], { cwd: dir, env, stdio: 'ignore', detached: true });
    const failed = exited(child).then(() => {
      throw new Error(`private RabbitMQ exited at start; see ${join(dir, 'log')}`);
    });
    await Promise.race([waitForPort(port, 60_000), failed]);
    failed.catch(() => {});
  };
  const stop = async () => {
    if (!child || child.exitCode !== null) return;
    child.kill('SIGTERM');
    await exited(child);
  };
  const kill = async () => {
    if (!child || child.exitCode !== null) return;
    // The script runs the VM as a child in its own process group: kill the group.
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      child.kill('SIGKILL');
    }
    await exited(child);
    // The OS may hold the port a moment after the VM died.
    await new Promise((r) => setTimeout(r, 200));
  };

  await start();
  return {
    url: `amqp://guest:guest@127.0.0.1:${port}`,
    port,
    stop,
    kill,
    start,
    destroy: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
