import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { findRabbitServer, freePort, waitForPort } from './rabbit-node.ts';

/**
 * A three-node RabbitMQ cluster of the tests' own, from the installed rabbitmq-server: private
 * node names, ports, data folders, Erlang cookie and epmd (port-mapper daemon), all under one
 * temp folder, so killing its nodes disturbs nobody else and nothing of it outlives `destroy()`.
 *
 * What it takes (found on this machine, see issue 15): the start script that runs as the current
 * user (/usr/lib/rabbitmq/bin, not the /usr/sbin wrapper that switches to the `rabbitmq` user and
 * the system cookie); a private HOME holding `.erlang.cookie` (0400) for the nodes and for
 * rabbitmqctl; RABBITMQ_CONF_ENV_FILE pointing to an empty file (the system's rabbitmq-env.conf
 * names the system node); ERL_EPMD_PORT so that our nodes register with an epmd of our own.
 */
export interface ClusterNode {
  /** Erlang node name, e.g. chatc1234x5n1@localhost */
  name: string;
  /** amqp URL of this node alone */
  url: string;
  port: number;
  running(): boolean;
  /** SIGKILL of the whole VM, as a crash or a pulled plug would; its data stays. */
  kill(): Promise<void>;
  /** A clean shutdown (SIGTERM: connections closed by the broker, as in maintenance); its data stays. */
  stop(): Promise<void>;
  /** Starts it again on the same ports and data; it rejoins the cluster by itself. */
  start(): Promise<void>;
}

export interface RabbitCluster {
  nodes: ClusterNode[];
  /** Every node's URL, in node order: what RABBITMQ_URL lists. */
  urls: string[];
  /** Evaluates an Erlang expression in a hidden VM connected to the cluster; its value printed with ~p. */
  erl(expr: string, timeoutMs?: number): Promise<string>;
  /** The node that leads (writes) `stream`, from any running node's view of the queue. */
  streamLeader(stream: string): Promise<ClusterNode>;
  /** Names of the nodes the running nodes agree are running, sorted. */
  runningNodes(): Promise<string[]>;
  /** Kills every node and our epmd, and deletes the folder. */
  destroy(): Promise<void>;
}

const SIZE = 3;

const exited = (child: ChildProcess) =>
  new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));

/** Resolves true when `p` settles within `ms`, false otherwise. */
const within = (p: Promise<unknown>, ms: number) =>
  new Promise<boolean>((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    p.then(() => {
      clearTimeout(t);
      resolve(true);
    });
  });

const childPids = (pid: number): number[] =>
  spawnSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' })
    .stdout.split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => n > 0);

/** Every process group we started, killed when this process exits however it exits. */
const groups = new Set<number>();
process.once('exit', () => {
  for (const pgid of groups) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

export async function startRabbitCluster(): Promise<RabbitCluster> {
  const script = findRabbitServer();
  if (!script) throw new Error('rabbitmq-server is not installed');
  const dir = mkdtempSync(join(tmpdir(), 'chat-cluster-'));
  const home = join(dir, 'home');
  mkdirSync(home);
  const cookie = join(home, '.erlang.cookie');
  writeFileSync(cookie, randomBytes(20).toString('hex').toUpperCase());
  chmodSync(cookie, 0o400);
  writeFileSync(join(dir, 'empty-env.conf'), '');
  const epmdPort = await freePort();
  const common = {
    ...process.env,
    HOME: home,
    RABBITMQ_CONF_ENV_FILE: join(dir, 'empty-env.conf'),
    ERL_EPMD_PORT: String(epmdPort),
    ERL_EPMD_ADDRESS: '127.0.0.1',
  };
  // Our epmd, started up front (and so in a group we own) rather than by the first node.
  const epmd = spawn('epmd', ['-port', String(epmdPort), '-address', '127.0.0.1'], { env: common, stdio: 'ignore', detached: true });
  groups.add(epmd.pid!);
  await waitForPort(epmdPort, 10_000);

  const tag = `chatc${process.pid}x${epmdPort}`;
  const nodeName = (i: number) => `${tag}n${i + 1}@localhost`;
  const nodes = await Promise.all(
    Array.from({ length: SIZE }, async (_, i) => {
      const port = await freePort();
      const distPort = await freePort();
      const base = join(dir, `n${i + 1}`);
      mkdirSync(join(base, 'mnesia'), { recursive: true });
      mkdirSync(join(base, 'log'));
      writeFileSync(join(base, 'enabled_plugins'), '[].\n');
      const name = nodeName(i);
      // Nodes 2 and 3 join node 1 on their first boot (peer discovery by config, as compose.yaml
      // does): no CLI VM to boot per step. Later boots rejoin from their own data.
      const discovery = i === 0 ? '' : `cluster_formation.peer_discovery_backend = classic_config\ncluster_formation.classic_config.nodes.1 = ${nodeName(0)}\n`;
      writeFileSync(join(base, 'rabbitmq.conf'), `listeners.tcp.default = 127.0.0.1:${port}\nloopback_users = none\n${discovery}`);
      const env = {
        ...common,
        RABBITMQ_NODENAME: name,
        RABBITMQ_NODE_PORT: String(port),
        RABBITMQ_DIST_PORT: String(distPort),
        RABBITMQ_MNESIA_BASE: join(base, 'mnesia'),
        RABBITMQ_LOG_BASE: join(base, 'log'),
        RABBITMQ_ENABLED_PLUGINS_FILE: join(base, 'enabled_plugins'),
        RABBITMQ_CONFIG_FILE: join(base, 'rabbitmq.conf'),
        // Distribution on loopback only.
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1}',
      };
      let child: ChildProcess | undefined;
      const node: ClusterNode = {
        name: env.RABBITMQ_NODENAME,
        url: `amqp://guest:guest@127.0.0.1:${port}`,
        port,
        running: () => child !== undefined && child.exitCode === null && child.signalCode === null,
        async start() {
          if (node.running()) return;
          child = spawn(script, [], { cwd: base, env, stdio: 'ignore', detached: true });
          groups.add(child.pid!);
          const c = child;
          const failed = exited(c).then(() => {
            throw new Error(`cluster node ${node.name} exited at start; see ${join(base, 'log')}`);
          });
          failed.catch(() => {});
          // Generous: three VMs booting at once on a busy two-core machine.
          await Promise.race([waitForPort(port, 120_000), failed]);
        },
        async kill() {
          const c = child;
          if (!c || !node.running()) return;
          // The VM first, so that the start script (its parent) reaps it: no zombie left behind.
          for (const pid of childPids(c.pid!)) {
            try {
              process.kill(pid, 'SIGKILL');
            } catch {
              // gone already
            }
          }
          await within(exited(c), 10_000);
          try {
            process.kill(-c.pid!, 'SIGKILL'); // whatever else is left of its group
          } catch {
            // all gone
          }
          await exited(c);
          groups.delete(c.pid!);
        },
        async stop() {
          const c = child;
          if (!c || !node.running()) return;
          c.kill('SIGTERM'); // the script turns it into a clean shutdown of the node
          if (!(await within(exited(c), 60_000))) await node.kill();
          groups.delete(c.pid!);
        },
      };
      return node;
    }),
  );

  /**
   * Evaluates an Erlang expression (its value printed with ~p) in a hidden, short-lived VM that
   * calls into the nodes: ~0.5 s where rabbitmqctl (an Elixir VM) takes seconds to tens of
   * seconds on a busy machine.
   */
  let probes = 0;
  const erl = (expr: string, timeoutMs = 60_000) =>
    new Promise<string>((resolve, reject) => {
      const me = `${tag}probe${++probes}@localhost`;
      const code = `R = (${expr}), io:format("~p~n", [R]), halt().`;
      execFile('erl', ['-noshell', '-hidden', '-start_epmd', 'false', '-sname', me, '-eval', code], { env: common, timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) =>
        err ? reject(new Error(`erl ${expr}: ${err.message}\n${stderr}${stdout}`)) : resolve(stdout.trim()),
      );
    });

  const destroy = async () => {
    await Promise.all(nodes.map((n) => n.kill()));
    try {
      process.kill(-epmd.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
    await exited(epmd);
    groups.delete(epmd.pid!);
    rmSync(dir, { recursive: true, force: true });
  };

  const byName = (name: string) => nodes.find((n) => n.name === name);
  const anyRunning = () => {
    const n = nodes.find((x) => x.running());
    if (!n) throw new Error('no cluster node is running');
    return n;
  };

  async function runningNodes(): Promise<string[]> {
    const out = await erl(`rpc:call('${anyRunning().name}', rabbit_mnesia, cluster_nodes, [running])`);
    return [...out.matchAll(/[\w.-]+@[\w.-]+/g)].map((m) => m[0]).sort();
  }

  try {
    await nodes[0]!.start();
    await Promise.all(nodes.slice(1).map((n) => n.start()));
    // A node listens only once it has booted, joined included; this proves all three agree.
    const all = nodes.map((n) => n.name).sort();
    const seen = await runningNodes();
    if (JSON.stringify(seen) !== JSON.stringify(all)) throw new Error(`cluster did not form: running ${JSON.stringify(seen)}`);
  } catch (err) {
    await destroy();
    throw err;
  }


  return {
    nodes,
    urls: nodes.map((n) => n.url),
    erl,
    async streamLeader(stream) {
      const q = `{resource, <<"/">>, queue, <<${JSON.stringify(stream)}>>}`;
      const out = await erl(`begin N = '${anyRunning().name}', case rpc:call(N, rabbit_amqqueue, lookup, [${q}]) of {ok, Q} -> node(rpc:call(N, amqqueue, get_pid, [Q])); Other -> Other end end`);
      const node = byName(out.replace(/'/g, ''));
      if (!node) throw new Error(`no leader for ${stream}: ${out}`);
      return node;
    },
    runningNodes,
    destroy,
  };
}
