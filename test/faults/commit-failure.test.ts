import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { eventually, post, readAll, readyz, stopNode, testScope, WsClient } from '../support/harness.ts';

const scope = testScope('commitfail');
const { stream, dir } = scope;

describe('SQLite commits fail', () => {
  it('acks and pushes nothing past the failure, says so in /readyz, retries with backoff, and resumes losing nothing', async () => {
    const path = `${dir}/chat.db`;
    const node = await scope.spawnNode({ STREAM_NAME: stream, DATABASE_PATH: path });
    const ws = await WsClient.connect(node.ws);
    ws.send({ type: 'subscribe', room: 'r' });
    await ws.next((f) => f.type === 'subscribed');
    expect((await post(node.base, { room: 'r', sender: 'ana', body: 'before', key: 'before' })).status).toBe(202);
    await ws.next((f) => f.key === 'before');
    const offsetBefore = (await readyz(node.base)).checks.lastOffset as number;

    // Another process takes the write lock: every commit of the node now fails (SQLITE_BUSY).
    const intruder = new Database(path);
    intruder.exec('BEGIN EXCLUSIVE');
    try {
      for (let i = 0; i < 10; i++) expect((await post(node.base, { room: 'r', sender: 'ana', body: `during ${i}`, key: `during-${i}` })).status).toBe(202);
      const down = await eventually(async () => {
        const r = await readyz(node.base);
        return r.status === 503 ? r : undefined;
      }, 10_000, '/readyz to report the failure');
      expect(JSON.stringify(down.checks.consumer)).toMatch(/locked|busy/i);
      await node.waitForLog((l) => l.msg === 'commit failed; nothing acked, will re-read from the stored offset');
      // keep failing for a while: retries must back off, not spin
      await node.waitForLog((l) => /resubscribing/.test(String(l.msg)) && node.logs.filter((x) => /resubscribing/.test(String(x.msg))).length >= 3, 15_000);
      expect((await readyz(node.base)).checks.lastOffset).toBe(offsetBefore);
      expect(ws.messages().map((m) => m.key)).toEqual(['before']);
      // reads still work while writes fail
      expect((await readAll(node.base)).map((m) => m.key)).toEqual(['before']);
    } finally {
      intruder.exec('ROLLBACK');
      intruder.close();
    }
    const retryTimes = node.logs.filter((l) => /resubscribing/.test(String(l.msg))).map((l) => l.time as number);

    await eventually(async () => ((await readyz(node.base)).status === 200 ? true : undefined), 15_000, 'recovery');
    const expected = ['before', ...Array.from({ length: 10 }, (_, i) => `during-${i}`)];
    await ws.until(() => ws.messages().length >= expected.length || undefined, 15_000);
    expect(ws.messages().map((m) => m.key)).toEqual(expected);
    expect((await readAll(node.base)).map((m) => m.key)).toEqual(expected);
    // backoff: the waits between attempts grow (250 ms, 500 ms, 1 s, ...), they do not spin
    const gaps = retryTimes.slice(1).map((t, i) => t - retryTimes[i]!);
    // (each gap is at least its backoff step; comparing gaps with each other failed on a busy
    // machine, where the overhead of an attempt varies by more than the steps differ)
    expect(gaps.length).toBeGreaterThanOrEqual(2);
    gaps.forEach((gap, i) => expect(gap).toBeGreaterThanOrEqual(250 * 2 ** i - 25));
    ws.close();
    await stopNode(node);
  }, 60_000);
});
