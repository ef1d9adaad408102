import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { rabbitUrl, ROOT, testScope } from './support/harness.ts';

const scope = testScope('startup-lines');

/** Runs `src/main.ts` to its exit (it must not start) and returns status and stderr. */
function run(env: Record<string, string>) {
  const res = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src/main.ts')], {
    cwd: ROOT,
    env: { ...process.env, HOST: '127.0.0.1', RABBITMQ_URL: rabbitUrl(), LOG_LEVEL: 'warn', ...scope.env(), ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: res.status, lines: res.stderr.trim().split('\n') };
}

describe('start-up problems an operator must fix: one clear line naming the setting', () => {
  it('a bad value stops the server at start with one line naming the variable (exit 78)', () => {
    const res = run({ PORT: 'nope' });
    expect(res.status).toBe(78);
    expect(res.lines).toEqual([expect.stringMatching(/^config error: invalid PORT: .*"nope"/)]);
  });

  it('a port in use names PORT (exit 78)', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as { port: number }).port;
    try {
      const res = run({ PORT: String(port) });
      expect(res.status).toBe(78);
      expect(res.lines).toEqual([`config error: PORT ${port} is already in use on HOST 127.0.0.1: stop the other process or set PORT to a free port`]);
    } finally {
      taken.close();
    }
  });

  it('an unwritable DATABASE_PATH names it (exit 78)', () => {
    const file = join(scope.dir, 'a-file');
    writeFileSync(file, 'not a folder');
    const res = run({ PORT: '0', DATABASE_PATH: join(file, 'chat.db') });
    expect(res.status).toBe(78);
    expect(res.lines).toEqual([expect.stringMatching(/^config error: DATABASE_PATH ".*a-file\/chat\.db" cannot be opened for writing: E[A-Z]+: /)]);
  });

  it('wrong broker credentials are said as such, not as an outage', async () => {
    const url = rabbitUrl().replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:wrong-password@');
    const node = await scope.spawnNode({ RABBITMQ_URL: url });
    const line = await node.waitForLog((l) => typeof l.msg === 'string' && l.msg.includes('RABBITMQ_URL'));
    expect(line).toMatchObject({ level: 50, msg: expect.stringContaining('check RABBITMQ_URL credentials'), err: { code: 'ACCESS_REFUSED' } });
    expect(JSON.stringify(line)).not.toContain('wrong-password');
    expect(node.logs.some((l) => l.msg === 'broker unreachable; retrying')).toBe(false);
  });

  it('the version is logged at start and shown by /healthz', async () => {
    const node = await scope.spawnNode();
    const { version } = (await import('../package.json', { with: { type: 'json' } })).default;
    expect(node.logs.find((l) => l.msg === 'starting chat-catchup')).toMatchObject({ version });
    expect(await (await fetch(`${node.base}/healthz`)).json()).toEqual({ status: 'ok', version });
  });
});
