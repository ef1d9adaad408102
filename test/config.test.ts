import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.ts';
import { ROOT } from './support/harness.ts';

describe('configuration', () => {
  it('has the contract defaults', () => {
    expect(loadConfig({})).toMatchObject({
      port: 3000,
      host: '0.0.0.0',
      rabbitmqUrl: 'amqp://guest:guest@127.0.0.1:5672',
      databasePath: './data/chat.db',
      streamName: 'chat.messages',
      logLevel: 'info',
      maxMessageBytes: 4096,
      authSecret: undefined,
      rateLimitPerMinute: 600,
    });
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['RABBITMQ_URL', 'http://localhost'],
    ['STREAM_NAME', 'has space'],
    ['LOG_LEVEL', 'loud'],
    ['MAX_MESSAGE_BYTES', '0'],
    ['RATE_LIMIT_PER_MINUTE', '-5'],
  ])('refuses %s=%s with a message naming the variable', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`^invalid ${name}:`));
  });

  it('stops the server at start with one clear line', () => {
    const res = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src/main.ts')], {
      cwd: ROOT,
      env: { ...process.env, PORT: 'nope' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(res.status).not.toBe(0);
    expect(res.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^config error: invalid PORT: .*"nope"/)]);
  });
});
