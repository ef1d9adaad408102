import { describe, expect, it } from 'vitest';
import { eventually, expectStoredOnce, readAll, steadyLoad, stopNode, testScope } from '../support/harness.ts';

const scope = testScope('sigkill');
const { stream, dir } = scope;

describe('the server killed with SIGKILL mid-load, then restarted', () => {
  it('keeps every 202 exactly once, and after-paging has no hole', async () => {
    const env = { STREAM_NAME: stream, DATABASE_PATH: `${dir}/victim.db` };
    let victim = await scope.spawnNode(env);
    const witness = await scope.spawnNode({ STREAM_NAME: stream, DATABASE_PATH: `${dir}/witness.db` });

    const load = steadyLoad([victim.base], 'kill', 5);
    await eventually(() => (load.result.accepted.length >= 300 ? true : undefined));
    await stopNode(victim, 'SIGKILL'); // mid-batch, mid-request
    const { accepted, other } = await load.stop();
    expect(other).toEqual([]);

    victim = await scope.spawnNode(env);
    const afterRestart = await expectStoredOnce(victim.base, accepted);
    const reference = await expectStoredOnce(witness.base, accepted);
    // The restarted node holds exactly the log, in order: same seqs as a node that never stopped.
    expect(afterRestart).toEqual(reference);
    // Paging with small pages from every cursor position returns the same, without holes.
    expect(await readAll(victim.base, { limit: 7 })).toEqual(reference);
    await Promise.all([stopNode(victim), stopNode(witness)]);
  }, 90_000);
});
