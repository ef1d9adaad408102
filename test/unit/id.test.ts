import { describe, expect, it } from 'vitest';
import { newId } from '../../src/domain/id.ts';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const sorted = (ids: string[]) => [...ids].sort();

describe('newId (UUIDv7)', () => {
  it('is a UUIDv7 carrying the creation millisecond', () => {
    // Later than any time another test gives (ids never go back in time within a process), so the
    // test holds in any order.
    const t = Date.UTC(2099, 10, 22, 4, 0, 0);
    const id = newId(t);
    expect(id).toMatch(UUID_V7);
    expect(parseInt(id.replace(/-/g, '').slice(0, 12), 16)).toBe(t);
  });

  it('ids sort in the order they were made, also within one millisecond and past the 4096 a millisecond holds', () => {
    const t = Date.UTC(2027, 0, 1);
    const ids = Array.from({ length: 10_000 }, () => newId(t));
    expect(new Set(ids).size).toBe(ids.length);
    expect(sorted(ids)).toEqual(ids);
    for (const id of ids) expect(id).toMatch(UUID_V7);
  });

  it('ids made after a clock step backwards still sort after the earlier ones', () => {
    const t = Date.UTC(2028, 0, 1);
    const ids = [newId(t), newId(t + 5), newId(t), newId(t + 1), newId(t + 6)];
    expect(sorted(ids)).toEqual(ids);
  });
});
