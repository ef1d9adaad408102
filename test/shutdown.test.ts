import { describe, expect, it, vi } from 'vitest';
import { openDb } from '../src/store/db.ts';
import { MessageStore } from '../src/store/messages.ts';
import { post, readAll, readyz, testScope, WsClient } from './support/harness.ts';

const scope = testScope('shutdown');
const { stream, dir } = scope;

describe('graceful shutdown', () => {
  it('on SIGTERM under load: closes sockets with 1001, exits 0 within seconds, and keeps every 202', async () => {
    const node = await scope.spawnNode({ STREAM_NAME: stream, DATABASE_PATH: `${dir}/chat.db` });
    const ws = await WsClient.connect(node.ws);
    ws.send({ type: 'subscribe', room: 'r' });
    await ws.next((f) => f.type === 'subscribed');

    const accepted: string[] = [];
    let stop = false;
    const load = (async () => {
      for (let i = 0; !stop; i++) {
        try {
          const res = await post(node.base, { room: 'r', sender: 'ana', body: `m${i}`, key: `s-${i}` });
          if (res.status === 202) accepted.push(((await res.json()) as { id: string }).id);
          else expect(res.status).toBe(503);
        } catch {
          stop = true; // connection refused: the server stopped accepting
        }
      }
    })();
    await ws.until(() => ws.messages().length >= 50 || undefined);
    const started = Date.now();
    node.proc.kill('SIGTERM');
    const [closed, exit] = await Promise.all([ws.closed, node.exited]);
    stop = true;
    await load;
    expect(closed.code).toBe(1001);
    expect(exit.code).toBe(0);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(node.logs.some((l) => l.msg === 'stopped')).toBe(true);

    // Everything answered 202 is in the stream: a restarted node stores all of it.
    const again = await scope.spawnNode({ STREAM_NAME: stream, DATABASE_PATH: `${dir}/chat.db` });
    // Everything in the stream after its epoch record (offset 0) is a message: once the node has
    // read to the end, its position is exactly the number of messages it stored.
    const stored = await vi.waitFor(
      async () => {
        const all = await readAll(again.base);
        expect(all.map((m) => m.id)).toEqual(expect.arrayContaining(accepted));
        expect((await readyz(again.base)).checks.lastOffset).toBe(all.length);
        return all;
      },
      { timeout: 20_000, interval: 100 },
    );
    // Each stored once, and only what the load sent (some answered 503 or cut off may be in too).
    expect(new Set(stored.map((m) => m.id)).size).toBe(stored.length);
    expect(stored.every((m) => /^s-\d+$/.test(m.key ?? ''))).toBe(true);
    again.proc.kill('SIGTERM');
    expect((await again.exited).code).toBe(0);
    // and the file was closed cleanly: it opens with the position matching what it holds
    const store = new MessageStore(openDb(`${dir}/chat.db`), stream);
    expect(store.lastOffset()).toBeGreaterThanOrEqual(stored.length);
    expect(store.page({ after: 0, limit: 1_000_000 }).messages).toHaveLength(store.lastOffset());
    expect(store.head()).toBe(store.lastOffset() + 1);
  }, 60_000);
});
