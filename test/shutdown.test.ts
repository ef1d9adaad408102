import { describe, expect, it } from 'vitest';
import { openDb } from '../src/store/db.ts';
import { MessageStore } from '../src/store/messages.ts';
import { post, testScope, WsClient } from './support/harness.ts';

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
          const res = await post(node.base, { room: 'r', sender: 'ana', body: `m${i}`, id: `s-${i}` });
          if (res.status === 202) accepted.push(`s-${i}`);
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
    const ids = new Set<string>();
    await new Promise<void>((resolve, reject) => {
      const poll = async () => {
        const res = await fetch(`${again.base}/messages/since?after=0&limit=1000`);
        const page = (await res.json()) as { messages: { id: string }[] };
        page.messages.forEach((m) => ids.add(m.id));
        if (accepted.every((id) => ids.has(id))) resolve();
        else setTimeout(() => poll().catch(reject), 50);
      };
      poll().catch(reject);
    });
    again.proc.kill('SIGTERM');
    await again.exited;
    // and the file was closed cleanly: it opens with the same position
    const store = new MessageStore(openDb(`${dir}/chat.db`), stream);
    expect(store.lastOffset()).toBeGreaterThanOrEqual(accepted.length - 1);
  }, 60_000);
});
