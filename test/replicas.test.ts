import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deleteStream, post, readAll, spawnNode, storedCount, tempDir, uniqueStream, WsClient, type SpawnedNode } from './support/harness.ts';

const stream = uniqueStream('replicas');
const dir = tempDir();
let a: SpawnedNode;
let b: SpawnedNode;

beforeAll(async () => {
  [a, b] = await Promise.all([
    spawnNode({ STREAM_NAME: stream, DATABASE_PATH: `${dir.path}/a/chat.db` }),
    spawnNode({ STREAM_NAME: stream, DATABASE_PATH: `${dir.path}/b/chat.db` }),
  ]);
});
afterAll(async () => {
  for (const n of [a, b]) n?.proc.kill('SIGTERM');
  await Promise.all([a?.exited, b?.exited]);
  await deleteStream(stream);
  dir.remove();
});

describe('two nodes on one stream are replicas', () => {
  it('store the same messages with the same seq, and both push a message posted to either', async () => {
    const onA = await WsClient.connect(a.ws);
    const onB = await WsClient.connect(b.ws);
    onA.send({ type: 'subscribe', room: 'r' });
    onB.send({ type: 'subscribe', room: 'r' });
    await onA.next((f) => f.type === 'subscribed');
    await onB.next((f) => f.type === 'subscribed');

    const posts: Promise<Response>[] = [];
    for (let i = 0; i < 200; i++) posts.push(post(i % 2 ? a.base : b.base, { room: i % 4 ? 'r' : 'other', sender: 'ana', body: `m${i}`, key: `rep-${i}` }));
    for (const res of await Promise.all(posts)) expect(res.status).toBe(202);

    const [onNodeA, onNodeB] = await Promise.all([storedCount(a.base, 200), storedCount(b.base, 200)]);
    expect(onNodeA).toEqual(onNodeB);
    expect(new Set(onNodeA.map((m) => m.id)).size).toBe(200);

    const inRoom = onNodeA.filter((m) => m.room === 'r');
    await onA.until(() => onA.messages().length >= inRoom.length || undefined);
    await onB.until(() => onB.messages().length >= inRoom.length || undefined);
    expect(onA.messages()).toEqual(inRoom.map((m) => ({ type: 'message', ...m })));
    expect(onB.messages()).toEqual(inRoom.map((m) => ({ type: 'message', ...m })));

    // a cursor from one node resumes exactly on the other
    const cursor = onNodeA[120]!.seq;
    expect(await readAll(b.base, { after: cursor })).toEqual(onNodeA.slice(121));
    onA.close();
    onB.close();
  });
});
