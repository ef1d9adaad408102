import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');

describe('npm run token', () => {
  it('--help prints the usage on stdout, --secret included, and exits 0', () => {
    const res = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/token.ts'), '--help'], { cwd: ROOT, encoding: 'utf8', timeout: 20_000 });
    expect(res.status).toBe(0);
    expect(res.stdout).toMatch(/^usage: npm run -s token -- --sub/);
    for (const flag of ['--sub', '--rooms', '--ttl', '--secret']) expect(res.stdout).toContain(flag);
  });
});
