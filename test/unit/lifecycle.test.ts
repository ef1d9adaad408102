import { describe, expect, it } from 'vitest';
import { startParts, type Part } from '../../src/lifecycle.ts';
import { createLogger } from '../../src/log.ts';

const log = createLogger('silent');

/** Parts that write what happens to them into `events`; `fail` names the steps that throw. */
function parts(names: string[], events: string[], fail: string[] = []): Part[] {
  const step = (what: string) => async () => {
    await Promise.resolve(); // each step is awaited before the next begins
    events.push(what);
    if (fail.includes(what)) throw new Error(what);
  };
  return names.map((name) => ({ name, start: step(`start ${name}`), stop: step(`stop ${name}`) }));
}

describe('parts: started in order, stopped in reverse', () => {
  it('stops in reverse start order, one after the other', async () => {
    const events: string[] = [];
    const stop = await startParts(parts(['db', 'broker', 'http'], events), log);
    expect(events).toEqual(['start db', 'start broker', 'start http']);
    await stop();
    expect(events.slice(3)).toEqual(['stop http', 'stop broker', 'stop db']);
  });

  it('a part without start is only stopped', async () => {
    const events: string[] = [];
    const stop = await startParts([{ name: 'db', stop: () => void events.push('stop db') }, ...parts(['http'], events)], log);
    await stop();
    expect(events).toEqual(['start http', 'stop http', 'stop db']);
  });

  it('a part that fails to start: the ones before it are stopped in reverse, the error is thrown', async () => {
    const events: string[] = [];
    await expect(startParts(parts(['db', 'broker', 'http', 'late'], events, ['start http']), log)).rejects.toThrow('start http');
    expect(events).toEqual(['start db', 'start broker', 'start http', 'stop broker', 'stop db']);
  });

  it('a part that fails to stop does not keep the others open; its error is thrown at the end', async () => {
    const events: string[] = [];
    const stop = await startParts(parts(['db', 'broker', 'http'], events, ['stop broker', 'stop http']), log);
    await expect(stop()).rejects.toThrow('stop http');
    expect(events.slice(3)).toEqual(['stop http', 'stop broker', 'stop db']);
  });
});
