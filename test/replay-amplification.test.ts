import { beforeAll, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import { DEFAULT_REPLAY_BUDGET } from '../src/hub/replay-lane.ts';
import { post, readAll, storedCount, testScope, WsClient, type TestNode } from './support/harness.ts';

/**
 * Issue 8, item 2: a subscribe with `after: 0` re-sent every 20 ms made the node replay a whole
 * room each time. Replays are now charged by bytes to the client's budget (here: one address), paced by its
 * reading, one page at a time. These tests use a small budget so that a few hundred messages
 * are many budgets' worth.
 */

const scope = testScope('replay');
const BURST = 256 * 1024;
const RATE = 512 * 1024;
const PAGE = DEFAULT_REPLAY_BUDGET.pageBytes;
let node: TestNode;

beforeAll(async () => {
  node = await scope.startNode({ WS_REPLAY_BURST_BYTES: String(BURST), WS_REPLAY_BYTES_PER_SECOND: String(RATE) });
});

/** Posts `n` messages of `bytes` to `room`, `parallel` at a time, each with its own key; every one must be accepted. */
async function fill(room: string, n: number, bytes: number, tag: string, parallel = 16): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i += parallel) {
    const batch = [];
    for (let k = i; k < Math.min(n, i + parallel); k++) {
      batch.push(post(node.base, { room, sender: 'filler', body: `${tag}-${k}-`.padEnd(bytes, 'x'), key: `${tag}-${k}` }));
    }
    for (const res of await Promise.all(batch)) {
      expect(res.status).toBe(202);
      ids.push(((await res.json()) as { id: string }).id);
    }
  }
  return ids;
}

/** Counts the bytes of the `message` frames a socket receives (unbatched: one frame per WebSocket message). */
function countMessageBytes(ws: WebSocket): { bytes: number } {
  const count = { bytes: 0 };
  ws.on('message', (data: Buffer) => {
    if (data.subarray(0, 17).toString() === '{"type":"message"') count.bytes += data.length;
  });
  return count;
}

/** What a message frame of this test can weigh at most (4 KB body, ids, key, createdAt). */
const MAX_FRAME = 4096 + 400;

interface Life {
  code: number;
  bytes: number;
  errors: Record<string, unknown>[];
}

/** One abusive socket: re-sends `subscribe after 0` every 20 ms until it is closed. */
async function abuse(room: string): Promise<Life> {
  const a = await WsClient.connect(node.ws);
  const count = countMessageBytes(a.ws);
  const timer = setInterval(() => a.ws.readyState === a.ws.OPEN && a.send({ type: 'subscribe', room, after: 0 }), 20);
  a.send({ type: 'subscribe', room, after: 0 });
  // Generous: a node without the bound never closes it, and this says so instead of hanging.
  const { code } = await Promise.race([a.closed, new Promise<{ code: number }>((resolve) => setTimeout(() => resolve({ code: -1 }), 30_000).unref())]);
  clearInterval(timer);
  a.ws.terminate();
  return { code, bytes: count.bytes, errors: a.frames.filter((f) => f.type === 'error') };
}

describe('replay amplification is bounded per socket', () => {
  it('sockets re-subscribing with after 0 every 20 ms, and reconnecting, get one byte budget between them, rate_limited and 1008; others are served', async () => {
    const room = 'attack';
    const stored = await fill(room, 300, 4096, 'attack'); // 1.2 MB: several budgets
    await storedCount(node.base, stored.length, room);

    // A client catching up the same room once, and a probe in another room, during the attack.
    const reader = await WsClient.connect(node.ws);
    const probe = await WsClient.connect(node.ws);
    probe.send({ type: 'subscribe', room: 'probe' });
    await probe.next((f) => f.type === 'subscribed');

    // Five abusers; each reconnects twice after being closed (three sockets each).
    const started = Date.now();
    const lives = Promise.all([1, 2, 3, 4, 5].map(async () => {
      const out: Life[] = [];
      for (let i = 0; i < 3; i++) {
        out.push(await abuse(room));
        if (out[i]!.code !== 1008) break; // not closed: the checks below say so, no need to wait again
      }
      return out;
    })).then((all) => all.flat());
    reader.send({ type: 'subscribe', room, after: 0 });

    // Meanwhile the probe posts and gets its frames, and catch-up over HTTP answers.
    const probeIds: string[] = [];
    for (let i = 0; i < 20; i++) {
      const res = await post(node.base, { room: 'probe', sender: 'probe', body: `p${i}`, key: `probe-${i}` });
      expect(res.status).toBe(202);
      probeIds.push(((await res.json()) as { id: string }).id);
      const page = await fetch(`${node.base}/messages/since?room=probe&after=0`);
      expect(page.status).toBe(200);
    }
    await probe.until(() => probe.messages('probe').length >= probeIds.length || undefined, 20_000, 'the probe frames');
    expect(probe.messages('probe').map((m) => m.id)).toEqual(probeIds);

    const all = await lives;
    const seconds = (Date.now() - started) / 1000;
    // One budget for the client (one address here), whatever the timing and however many times
    // it reconnects: the burst, the refill over the attack, one page in debt.
    const total = all.reduce((n, life) => n + life.bytes, 0);
    expect(total).toBeLessThanOrEqual(BURST + RATE * seconds + PAGE + 2 * MAX_FRAME);
    for (const life of all) {
      expect(life.code).toBe(1008);
      expect(life.errors.length).toBeGreaterThan(0);
      expect(life.errors.every((e) => e.code === 'rate_limited' && e.room === room && typeof e.retryAfter === 'number')).toBe(true);
    }
    // The one-time reader gets the whole room, exactly (paced, not refused).
    await reader.until(() => reader.messages(room).length >= stored.length || undefined, 30_000, 'the full replay');
    expect(reader.messages(room).map((m) => m.id)).toEqual(stored);
    expect(reader.frames.some((f) => f.type === 'error')).toBe(false);
    for (const c of [reader, probe]) c.close();
  }, 90_000);

  it('a paced replay with posts arriving meanwhile delivers every stored message once, in order: no gap, no duplicate', async () => {
    const room = 'exact';
    const before = await fill(room, 200, 1000, 'exact-a'); // 200 KB: the replay runs over many pages and refills
    const seeded = await storedCount(node.base, before.length, room);
    const plain = await WsClient.connect(node.ws);
    const batched = await WsClient.connect(`${node.ws}?batch=1`);
    const restarted = await WsClient.connect(node.ws);
    plain.send({ type: 'subscribe', room, after: 0 });
    batched.send({ type: 'subscribe', room, after: 0 });
    // `restarted` starts over twice on the way; each subscribe is answered `subscribed` or, past
    // its budget, `rate_limited` (then the previous one goes on).
    const cursors = [0, 0, seeded[99]!.seq];
    restarted.send({ type: 'subscribe', room, after: cursors[0] });
    // Posts while the replays run.
    const during = fill(room, 200, 1000, 'exact-b', 4);
    const answers = () => restarted.frames.filter((f) => f.room === room && (f.type === 'subscribed' || f.type === 'error'));
    await restarted.until(() => restarted.messages(room).length >= 20 || undefined, 20_000, 'some replay');
    restarted.send({ type: 'subscribe', room, after: cursors[1] });
    await restarted.until(() => answers().length === 2 || undefined);
    restarted.send({ type: 'subscribe', room, after: cursors[2] });
    await restarted.until(() => answers().length === 3 || undefined);
    const posted = await during;

    const all = await storedCount(node.base, before.length + posted.length, room);
    // Nothing stored twice, nothing else in the room.
    expect(all).toHaveLength(before.length + posted.length);
    expect(new Set(all.map((m) => m.id))).toEqual(new Set([...before, ...posted]));

    const ids = all.map((m) => m.id);
    for (const c of [plain, batched]) {
      await c.until(() => c.messages(room).length >= ids.length || undefined, 30_000, 'the whole room');
      expect(c.messages(room).map((m) => m.id)).toEqual(ids);
      expect(c.frames.some((f) => f.type === 'error')).toBe(false);
    }
    // After its last `subscribed`: exactly the messages after that subscribe's cursor.
    const from = cursors[answers().map((f) => f.type).lastIndexOf('subscribed')]!;
    const lastSubscribed = restarted.frames.map((f) => f.type).lastIndexOf('subscribed');
    const after = () => restarted.frames.slice(lastSubscribed).filter((f) => f.type === 'message').map((f) => f.id);
    const expected = all.filter((m) => m.seq > from).map((m) => m.id);
    await restarted.until(() => after().length >= expected.length || undefined, 30_000, 'the restarted replay');
    expect(after()).toEqual(expected);
    // And a little later, still nothing more (a late duplicate would show here).
    await post(node.base, { room, sender: 'filler', body: 'last', key: 'exact-last' });
    await plain.until(() => plain.messages(room).length === ids.length + 1 || undefined);
    expect(plain.messages(room).map((m) => m.id)).toEqual((await readAll(node.base, { room })).map((m) => m.id));
    for (const c of [plain, batched, restarted]) c.close();
  }, 90_000);
});
