import { sleep } from './clock.ts';
import type { OffsetWatch } from './offset-watch.ts';
import type { ClientStats } from './ws-clients.ts';
import type { WsFleet } from './ws-fleet.ts';

/**
 * After a load: waits until the server stored at least `minOffset` and the clients received
 * `expectedFrames`, or until nothing has moved for `quietMs` (something was lost: the caller's
 * check will say what), bounded by `timeoutMs`.
 */
export async function drain(
  fleet: WsFleet,
  watch: OffsetWatch | undefined,
  o: { minOffset: number; expectedFrames: number; quietMs: number; timeoutMs: number; signal: AbortSignal },
): Promise<{ stats: ClientStats; complete: boolean }> {
  const deadline = Date.now() + o.timeoutMs;
  let last = -1;
  let lastOffset = -2;
  let quietSince = Date.now();
  for (;;) {
    const stats = await fleet.stats();
    const offset = watch?.latest ?? o.minOffset;
    const complete = stats.frames >= o.expectedFrames && offset >= o.minOffset;
    if (complete) return { stats, complete };
    if (stats.frames !== last || offset !== lastOffset) {
      last = stats.frames;
      lastOffset = offset;
      quietSince = Date.now();
    }
    if (Date.now() - quietSince > o.quietMs || Date.now() > deadline) return { stats, complete: false };
    await sleep(100, o.signal);
  }
}
