import { defineConfig } from 'vitest/config';

// Two tiers. `unit`: pure logic and parts against fakes, no broker, no spawned node; runs in
// seconds (`npm run test:unit`). `integration`: real RabbitMQ and real SQLite files; its global
// setup finds (or starts) the broker. `npm test` runs both.
// Then `cluster`, on its own: it boots a three-node RabbitMQ cluster of its own and kills its
// nodes, which on two cores would starve the files running beside it; so it runs after them.
const CLUSTER = ['test/faults/cluster.test.ts'];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two cores: the broker, the servers under test and the runner share them.
    maxWorkers: 2,
    projects: [
      {
        extends: true,
        // Files share a worker's module cache (isolate: false): half the CPU of the tier. So a unit
        // test leaves no global state behind (fake timers restored, no vi.mock of modules) and
        // holds in any order (checked with --sequence.shuffle).
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 10_000, isolate: false },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          exclude: ['test/unit/**', ...CLUSTER],
          globalSetup: ['test/support/global-setup.ts'],
        },
      },
      {
        extends: true,
        test: { name: 'cluster', include: CLUSTER, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
