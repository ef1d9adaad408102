import type { ConsumerState } from './broker/consumer.ts';

/** What each part of a node says about itself, gathered at the moment /readyz is asked. */
export interface PartReports {
  database: { open: boolean };
  broker: { connected: boolean };
  consumer: { state: ConsumerState; error?: string };
  /** The replica's position and what it skipped or lost (see Replica.status). */
  replica: { epoch: string | null; lastOffset: number; invalidRecords: number; missingSeqs?: { from: number; to: number }[] };
  /** Open WebSocket connections. */
  sockets: number;
}

export type FailingCheck = 'database' | 'broker' | 'consumer';

export interface ReadinessVerdict {
  ok: boolean;
  /** Everything the parts reported, for an operator (hidden from anonymous callers in token mode). */
  checks: Record<string, unknown>;
  /** The checks that keep the node unready; empty when ok. */
  failing: FailingCheck[];
}

/**
 * The one rule for "may this node take traffic": the database is open, and the consumer is
 * consuming on a connected broker (a node that does not follow the log would serve stale pages
 * and push nothing live). Gaps in the replica (`missingSeqs`) and skipped records are reported
 * but do not make the node unready: they are permanent, and the node serves everything else.
 */
export function decideReadiness(r: PartReports): ReadinessVerdict {
  const failing: FailingCheck[] = [];
  if (!r.database.open) failing.push('database');
  if (!r.broker.connected) failing.push('broker');
  if (!(r.consumer.state === 'consuming' && r.broker.connected)) failing.push('consumer');
  const checks = {
    database: r.database.open ? 'open' : 'closed',
    broker: r.broker.connected ? 'connected' : 'disconnected',
    consumer: r.consumer,
    ...r.replica,
    sockets: r.sockets,
  };
  return { ok: failing.length === 0, checks, failing };
}
