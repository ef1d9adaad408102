import { statSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../src/log.ts';
import { startCheckpointer } from '../../src/store/checkpointer.ts';
import { openDb } from '../../src/store/db.ts';
import { MessageStore } from '../../src/store/messages.ts';
import { tempDir } from '../support/temp.ts';

describe('WAL checkpoints off the event loop', () => {
  const dirs: { remove(): void }[] = [];
  afterEach(() => dirs.splice(0).forEach((d) => d.remove()));

  it('a worker copies the WAL into the database while the writer never checkpoints itself', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const path = `${dir.path}/chat.db`;
    const db = openDb(path);
    const store = new MessageStore(db, 's');
    const autoCheckpoint = () => db.$client.pragma('wal_autocheckpoint', { simple: true });
    const checkpointer = startCheckpointer(path, (pages) => db.$client.pragma(`wal_autocheckpoint = ${pages}`), createLogger('silent'), 50);
    await vi.waitFor(() => expect(autoCheckpoint(), 'the worker to take over').toBe(0), { timeout: 5000, interval: 20 });

    const before = statSync(path).size;
    let offset = 0;
    for (let b = 0; b < 50; b++) {
      store.append(Array.from({ length: 100 }, () => ({ offset, record: { kind: 'message' as const, id: `m${offset++}`, room: 'r', sender: 's', body: 'x'.repeat(500), createdAt: Date.now() } })));
    }
    // Only a checkpoint moves pages from the WAL into the main file, and this thread does none.
    await vi.waitFor(() => expect(statSync(path).size, 'the main file to grow').toBeGreaterThan(before + 1_000_000), { timeout: 10_000, interval: 20 });

    await checkpointer.stop();
    expect(autoCheckpoint()).toBe(1000);
    expect(store.page({ after: 0, limit: 1 }).messages[0]!.id).toBe('m0');
    db.$client.close();
  });
});
