import { describe, expect, it } from 'vitest';
import { BrokerUnavailableError } from '../../src/broker/errors.ts';
import { AppError, toAppError } from '../../src/errors.ts';

describe('toAppError: every edge maps errors through the one catalogue', () => {
  it('a broker error becomes 503 broker_unavailable with Retry-After and its reason', () => {
    const e = toAppError(new BrokerUnavailableError('publish timed out'))!;
    expect({ status: e.status, headers: e.headers, body: e.toJSON() }).toEqual({
      status: 503,
      headers: { 'Retry-After': '2' },
      body: { error: { code: 'broker_unavailable', message: 'The message broker is unavailable; retry shortly.', reason: 'publish timed out' } },
    });
  });

  it('an AppError is itself; anything else is a bug, left to the edge to answer 500', () => {
    const e = new AppError('rate_limited');
    expect(toAppError(e)).toBe(e);
    expect(toAppError(new Error('boom'))).toBeUndefined();
    expect(toAppError('a string')).toBeUndefined();
  });
});
