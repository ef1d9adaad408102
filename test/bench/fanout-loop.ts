import { nowMs, sleep } from './clock.ts';

/**
 * The send loop of the fan-out ceilings (bare ws, Socket.IO): one message per room per round,
 * each serialised once and sent to every socket of its room; before the next round it waits while
 * any socket has more than `maxPendingBytes` not yet handed to the kernel, so it runs at the rate
 * the clients keep up with. Bounded by time and by message count.
 */
export async function fanOut(o: {
  seconds: number;
  rooms: number;
  maxMessages: number;
  maxPendingBytes: number;
  sendOne(seq: number, room: number): void;
  pendingBytes(): number;
}): Promise<{ messages: number; ms: number; startAt: number; waits: number }> {
  const startAt = nowMs();
  const deadline = startAt + o.seconds * 1000;
  let seq = 0;
  let waits = 0;
  while (nowMs() < deadline && seq < o.maxMessages) {
    for (let r = 0; r < o.rooms; r++) o.sendOne(++seq, r);
    // Let sockets write and clients' reads come back.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (o.pendingBytes() > o.maxPendingBytes && nowMs() < deadline) {
      waits++;
      await sleep(1);
    }
  }
  return { messages: seq, ms: Math.round(nowMs() - startAt), startAt, waits };
}
