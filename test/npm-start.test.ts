import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { rabbitUrl, ROOT, testScope } from './support/harness.ts';

const scope = testScope('npm-start');

/** Runs `npm start` as a user would (its own process group, like a terminal job) and waits until it listens. */
async function npmStart(db: string) {
  const proc = spawn('npm', ['start', '--silent'], {
    cwd: ROOT,
    detached: true,
    env: { ...process.env, ...scope.env(db), HOST: '127.0.0.1', PORT: '0', RABBITMQ_URL: rabbitUrl(), LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => proc.once('exit', (code, signal) => res({ code, signal })));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not listening after 30 s: ${out}`)), 30_000);
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /"port":(\d+).*"msg":"listening"/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
  });
  return { proc, port, exited, output: () => out };
}

const refused = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(false)));
    s.once('error', () => resolve(true));
  });

/** Runs `npm start` for `body`, then kills whatever of its process group is left, pass or fail. */
async function withNpmStart(db: string, body: (run: Awaited<ReturnType<typeof npmStart>>) => Promise<void>): Promise<void> {
  const run = await npmStart(db);
  try {
    await body(run);
  } finally {
    try {
      process.kill(-run.proc.pid!, 'SIGKILL');
    } catch {}
  }
}

describe('npm start and signals', () => {
  it('SIGTERM to the npm process stops the server gracefully: exit 0 and the port is free', () =>
    withNpmStart('term.db', async (run) => {
      process.kill(run.proc.pid!, 'SIGTERM');
      expect(await run.exited).toEqual({ code: 0, signal: null });
      expect(run.output()).toContain('"msg":"stopped"');
      expect(await refused(run.port)).toBe(true);
    }), 60_000);

  it('Ctrl-C (SIGINT to the whole process group, which npm also forwards) is one graceful stop, not an abort', () =>
    withNpmStart('int.db', async (run) => {
      process.kill(-run.proc.pid!, 'SIGINT');
      const exit = await run.exited;
      expect(run.output()).toContain('"msg":"stopped"');
      expect(exit).toEqual({ code: 0, signal: null });
      expect(await refused(run.port)).toBe(true);
    }), 60_000);
});
