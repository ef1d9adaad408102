import { describe, expect, it } from 'vitest';
import { post, readAll, storedCount, testScope } from './support/harness.ts';

const scope = testScope('restart');
const { stream, dir } = scope;
const env = { STREAM_NAME: stream, DATABASE_PATH: `${dir}/chat.db` };

const postRange = async (base: string, from: number, to: number) => {
  for (let i = from; i < to; i += 20) {
    const batch = [];
    for (let j = i; j < Math.min(to, i + 20); j++) batch.push(post(base, { room: 'r', sender: 'ana', body: `m${j}`, key: `m-${j}` }));
    for (const res of await Promise.all(batch)) expect(res.status).toBe(202);
  }
};

describe('restarting a node', () => {
  it('resumes from its stored offset, after SIGTERM or SIGKILL, with no duplicate and no hole', async () => {
    let node = await scope.spawnNode(env);
    await postRange(node.base, 0, 100);
    await storedCount(node.base, 100);
    node.proc.kill('SIGTERM');
    expect((await node.exited).code).toBe(0);

    // Messages posted while this node is down (through another node) must be caught up.
    const other = await scope.spawnNode({ ...env, DATABASE_PATH: `${dir}/other.db` });
    await postRange(other.base, 100, 200);

    node = await scope.spawnNode(env);
    const resumed = await node.waitForLog((l) => l.msg === 'consuming stream');
    expect(resumed.offset).toBe(101); // after the epoch record and 100 messages, not 0
    await storedCount(node.base, 200);

    // Crash while load is running: whatever was committed stays, the rest is re-read.
    const load = postRange(other.base, 200, 400);
    await storedCount(node.base, 250);
    node.proc.kill('SIGKILL');
    await node.exited;
    await load;
    node = await scope.spawnNode(env);
    const all = await storedCount(node.base, 400);
    expect(all.map((m) => m.key).sort()).toEqual(Array.from({ length: 400 }, (_, i) => `m-${i}`).sort());
    expect(all).toEqual(await readAll(other.base));
    const seqs = all.map((m) => m.seq);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    expect(new Set(seqs).size).toBe(400);

    for (const n of [node, other]) n.proc.kill('SIGTERM');
    await Promise.all([node.exited, other.exited]);
  }, 90_000);
});
