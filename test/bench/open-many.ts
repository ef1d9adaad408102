import { nowMs } from './clock.ts';
import { roomName } from './records.ts';
import type { OpenArgs, OpenResult } from './ws-clients.ts';

/** Opens sockets a.firstIndex.. with a bounded number of connects in flight; for our clients and the Socket.IO ones. */
export async function openMany(a: OpenArgs, connectOne: (index: number) => Promise<unknown>): Promise<OpenResult> {
  const t0 = nowMs();
  let next = 0;
  let subscribed = 0;
  let failed = 0;
  let failureSample: string | undefined;
  const perRoom: Record<string, number> = {};
  const worker = async () => {
    while (next < a.count) {
      const i = a.firstIndex + next++;
      try {
        await connectOne(i);
        subscribed++;
        const room = roomName(i % a.rooms);
        perRoom[room] = (perRoom[room] ?? 0) + 1;
      } catch (err) {
        failed++;
        failureSample ??= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(a.connectConcurrency ?? 100, a.count) }, worker));
  return { subscribed, failed, failureSample, ms: Math.round(nowMs() - t0), perRoom };
}
