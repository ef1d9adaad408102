import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A temp folder removed by the returned cleanup. (No broker, no node: the unit tier uses it too.) */
export function tempDir(): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), 'chat-test-'));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}
