import { describe, expect, it } from 'vitest';
import { decideReadiness, type PartReports } from '../../src/readiness.ts';

const healthy: PartReports = {
  database: { open: true },
  broker: { connected: true },
  consumer: { state: 'consuming' },
  replica: { epoch: 'e1', lastOffset: 41, invalidRecords: 0 },
  sockets: 3,
};
const with_ = (change: Partial<PartReports>): PartReports => ({ ...healthy, ...change });

describe('readiness: one rule over the parts\' reports', () => {
  it('ready when the database is open and the consumer consumes on a connected broker; checks carry every report', () => {
    expect(decideReadiness(healthy)).toEqual({
      ok: true,
      failing: [],
      checks: { database: 'open', broker: 'connected', consumer: { state: 'consuming' }, epoch: 'e1', lastOffset: 41, invalidRecords: 0, sockets: 3 },
    });
  });

  it.each([
    ['database closed', with_({ database: { open: false } }), ['database']],
    // A consumer that still says consuming on a dropped connection is not following the log.
    ['broker disconnected', with_({ broker: { connected: false } }), ['broker', 'consumer']],
    ['consumer starting', with_({ consumer: { state: 'starting' } }), ['consumer']],
    ['consumer retrying after a failed commit', with_({ consumer: { state: 'retrying', error: 'SQLITE_BUSY' } }), ['consumer']],
    ['consumer stopped', with_({ consumer: { state: 'stopped' } }), ['consumer']],
    ['everything down', with_({ database: { open: false }, broker: { connected: false }, consumer: { state: 'retrying' } }), ['database', 'broker', 'consumer']],
  ] as const)('not ready: %s', (_, reports, failing) => {
    const v = decideReadiness(reports);
    expect(v.ok).toBe(false);
    expect(v.failing).toEqual(failing);
  });

  it('says what is wrong in the checks', () => {
    const v = decideReadiness(with_({ database: { open: false }, broker: { connected: false }, consumer: { state: 'retrying', error: 'connection refused' } }));
    expect(v.checks).toMatchObject({ database: 'closed', broker: 'disconnected', consumer: { state: 'retrying', error: 'connection refused' } });
  });

  it('gaps and skipped records are reported, not a reason to leave the load balancer', () => {
    const missingSeqs = [{ from: 5, to: 9 }];
    const v = decideReadiness(with_({ replica: { epoch: 'e1', lastOffset: 41, invalidRecords: 2, missingSeqs } }));
    expect(v.ok).toBe(true);
    expect(v.checks).toMatchObject({ invalidRecords: 2, missingSeqs });
  });
});
