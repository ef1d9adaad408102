import { existsSync, readdirSync } from 'node:fs';
import { Connection } from 'rabbitmq-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDb } from '../../src/store/db.ts';
import { MessageStore } from '../../src/store/messages.ts';
import { deleteStream, eventually, post, rabbitUrl, readAll, readyz, spawnNode as spawnTestNode, stopNode, storedCount, tempDir, uniqueStream, WsClient, type SpawnedNode } from '../support/harness.ts';

let conn: Connection;
const dir = tempDir();
const streams: string[] = [];
const started: SpawnedNode[] = [];
/** Every node this file starts is stopped after it, even when a test fails half-way. */
const spawnNode = async (env: Record<string, string>) => {
  const node = await spawnTestNode(env);
  started.push(node);
  return node;
};
const newStream = (tag: string) => {
  const s = uniqueStream(tag);
  streams.push(s);
  return s;
};

beforeAll(async () => {
  conn = new Connection({ url: rabbitUrl() });
  conn.on('error', () => {});
  await conn.onConnect(5000);
});
afterAll(async () => {
  await Promise.all(started.map((n) => stopNode(n)));
  await conn.close();
  for (const s of streams) await deleteStream(s);
  dir.remove();
});

/** Publishes raw records straight to the stream, as a foreign or broken producer would. */
async function publishRaw(stream: string, bodies: (Buffer | string)[], contentType?: string): Promise<void> {
  const pub = conn.createPublisher({ confirm: true });
  for (const b of bodies) await pub.send({ routingKey: stream, durable: true, ...(contentType ? { contentType } : {}) }, typeof b === 'string' ? Buffer.from(b) : b);
  await pub.close();
}

const record = (id: string, room = 'r') => JSON.stringify({ id, room, sender: 'raw', body: id, createdAt: Date.now() });

describe('records in the stream that are not valid messages', () => {
  it('are skipped with a log line and a counter, and never block the messages behind them', async () => {
    const stream = newStream('garbage');
    const node = await spawnNode({ STREAM_NAME: stream, DATABASE_PATH: `${dir.path}/garbage.db` });
    const ws = await WsClient.connect(node.ws);
    ws.send({ type: 'subscribe', room: 'r' });
    await ws.next((f) => f.type === 'subscribed');
    await publishRaw(stream, ['not json at all', Buffer.from([0xff, 0x00, 0xfe]), '{"id":"x","room":"bad room","sender":"s","body":"b","createdAt":1}', '[]']);
    await publishRaw(stream, ['{"kind":"epoch"}', '{"id":"y"}'], 'application/json');
    const res = await post(node.base, { room: 'r', sender: 'ana', body: 'after the garbage', key: 'good' });
    expect(res.status).toBe(202);
    await ws.next((f) => f.key === 'good');
    expect(ws.messages().map((m) => m.key)).toEqual(['good']);
    expect((await readAll(node.base)).map((m) => m.key)).toEqual(['good']);
    const r = await readyz(node.base);
    expect(r.status).toBe(200);
    expect(r.checks.invalidRecords).toBe(6);
    expect(node.logs.filter((l) => l.msg === 'skipping a stream record that is not a valid message')).toHaveLength(6);
    ws.close();
    await stopNode(node);
  });
});

describe('a node offline longer than the stream keeps', () => {
  it('detects the lost offsets and reports them loudly (log + /readyz), then carries on', async () => {
    const stream = newStream('retention');
    // Tiny segments and byte retention so that old records really are deleted.
    await conn.queueDeclare({ queue: stream, durable: true, arguments: { 'x-queue-type': 'stream', 'x-max-length-bytes': 40_000, 'x-stream-max-segment-size-bytes': 8_000 } });
    const env = { STREAM_NAME: stream, DATABASE_PATH: `${dir.path}/retention.db` };
    let node = await spawnNode(env);
    await publishRaw(stream, ['a', 'b', 'c'].map((id) => record(id)));
    await storedCount(node.base, 3);
    await stopNode(node);

    const pad = 'x'.repeat(400);
    await publishRaw(stream, Array.from({ length: 400 }, (_, i) => JSON.stringify({ id: `m${i}`, room: 'r', sender: 'raw', body: `${i} ${pad}`, createdAt: Date.now() })));

    node = await spawnNode(env);
    const logged = await node.waitForLog((l) => l.msg === 'stream offsets missing: the stream dropped them (retention) before this node read them');
    expect(logged.level).toBe(50); // error
    expect(logged.fromSeq).toBe(4);
    const all = await eventually(async () => {
      const list = await readAll(node.base);
      return list.some((m) => m.id === 'm399') ? list : undefined;
    });
    const missing = (await readyz(node.base)).checks.missingSeqs as { from: number; to: number }[];
    // One hole, exactly what retention removed: the first record after it follows it directly,
    // and from there on every record the test published is stored, in order. (The broker's own
    // one-offset entries at segment starts are not holes; see log-continuity.ts.)
    expect(missing).toEqual([{ from: 4, to: all[3]!.seq - 1 }]);
    expect(all.slice(0, 3).map((m) => m.id)).toEqual(['a', 'b', 'c']);
    const firstKept = Number(all[3]!.id.slice(1));
    expect(all.slice(3).map((m) => m.id)).toEqual(Array.from({ length: 400 - firstKept }, (_, i) => `m${firstKept + i}`));
    await stopNode(node);
    // the gap is remembered across restarts
    node = await spawnNode(env);
    expect((await readyz(node.base)).checks.missingSeqs).toEqual(missing);
    expect(node.logs.some((l) => l.msg === "known gap in this node's copy of the log")).toBe(true);
    await stopNode(node);
  }, 60_000);
});

describe('the stream deleted and re-created under a node that has data', () => {
  it('while the node runs: keeps the old data aside, follows the new log, and tells clients to reset', async () => {
    const stream = newStream('recreated');
    const path = `${dir.path}/recreated.db`;
    const node = await spawnNode({ STREAM_NAME: stream, DATABASE_PATH: path });
    for (const key of ['old-1', 'old-2', 'old-3']) expect((await post(node.base, { room: 'r', sender: 'ana', body: key, key })).status).toBe(202);
    const old = await storedCount(node.base, 3);
    const oldEpoch = ((await (await fetch(`${node.base}/messages/since?after=0`)).json()) as { epoch: string }).epoch;
    const ws = await WsClient.connect(node.ws);
    ws.send({ type: 'subscribe', room: 'r', after: old[2]!.seq });
    await ws.next((f) => f.type === 'subscribed');

    await conn.queueDelete({ queue: stream });
    // The node's consumer is cancelled, it re-declares the stream (a new epoch record), notices, resets.
    expect((await ws.closed).code).toBe(4409);
    const reset = await node.waitForLog((l) => /stream was re-created/.test(String(l.msg)));
    expect(reset.level).toBe(50);
    expect(existsSync(String(reset.backup))).toBe(true);

    const newEpoch = await eventually(async () => {
      const page = (await (await fetch(`${node.base}/messages/since?after=0`)).json()) as { epoch: string; messages: unknown[] };
      return page.epoch && page.epoch !== oldEpoch ? page : undefined;
    });
    expect(newEpoch.messages).toEqual([]);
    await eventually(async () => ((await readyz(node.base)).status === 200 ? true : undefined));
    expect((await post(node.base, { room: 'r', sender: 'ana', body: 'new-1', key: 'new-1' })).status).toBe(202);
    const now = await storedCount(node.base, 1);
    expect(now.map((m) => m.key)).toEqual(['new-1']);
    expect(now[0]!.seq).toBe(2); // the new log's seqs, never mixed with the old ones

    // A cursor from the old epoch is refused with a clear answer, over HTTP and WebSocket.
    const stale = await fetch(`${node.base}/messages/since?after=${old[2]!.seq}&epoch=${oldEpoch}`);
    expect(stale.status).toBe(409);
    expect(await stale.json()).toMatchObject({ error: { code: 'epoch_mismatch', epoch: newEpoch.epoch } });
    const again = await WsClient.connect(node.ws);
    again.send({ type: 'subscribe', room: 'r', after: old[2]!.seq, epoch: oldEpoch });
    expect(await again.next((f) => f.type === 'error')).toMatchObject({ code: 'epoch_mismatch', epoch: newEpoch.epoch });
    again.send({ type: 'subscribe', room: 'r', after: 0, epoch: newEpoch.epoch });
    await again.next((f) => f.key === 'new-1');
    again.close();

    // the old data is intact in the backup
    const backup = new MessageStore(openDb(String(reset.backup)), stream);
    expect(backup.page({ after: 0, limit: 10 }).messages.map((m) => m.key)).toEqual(['old-1', 'old-2', 'old-3']);
    await stopNode(node);
  }, 60_000);

  it('while the node was down, re-created by someone else without an epoch record: detected, nothing of the new log lost', async () => {
    const stream = newStream('foreign');
    const path = `${dir.path}/foreign.db`;
    let node = await spawnNode({ STREAM_NAME: stream, DATABASE_PATH: path });
    for (let i = 0; i < 5; i++) expect((await post(node.base, { room: 'r', sender: 'ana', body: `o${i}`, key: `o${i}` })).status).toBe(202);
    await storedCount(node.base, 5);
    await stopNode(node);

    await conn.queueDelete({ queue: stream });
    await conn.queueDeclare({ queue: stream, durable: true, arguments: { 'x-queue-type': 'stream' } });
    await publishRaw(stream, ['f0', 'f1'].map((id) => record(id)));

    node = await spawnNode({ STREAM_NAME: stream, DATABASE_PATH: path });
    // No epoch record to compare. The node re-reads its last stored offset (5) at every subscribe;
    // once the new log reaches it, the record there is not the one stored: that is the proof.
    await publishRaw(stream, ['f2', 'f3', 'f4', 'f5', 'f6'].map((id) => record(id)));
    await node.waitForLog((l) => /stream was re-created/.test(String(l.msg)));
    const all = await eventually(async () => {
      const list = await readAll(node.base);
      return list.length === 7 ? list : undefined;
    });
    expect(all.map((m) => [m.id, m.seq])).toEqual(['f0', 'f1', 'f2', 'f3', 'f4', 'f5', 'f6'].map((id, i) => [id, i + 1]));
    expect(readdirSync(dir.path).some((f) => f.startsWith('foreign.db.epoch-'))).toBe(true);
    await stopNode(node);
  }, 60_000);
});
