import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { withTimeout } from '../../src/timeout.ts';

describe('withTimeout', () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it('settles as the promise does when it is in time, and leaves no timer behind', async () => {
    await expect(withTimeout(Promise.resolve(7), 100)).resolves.toBe(7);
    await expect(withTimeout(Promise.reject(new Error('no')), 100)).rejects.toThrow('no');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('past the deadline: undefined, what onTimeout returns, or what it throws', async () => {
    const never = new Promise<number>(() => {});
    const a = withTimeout(never, 100);
    const b = withTimeout(never, 100, () => 'late');
    const c = withTimeout(never, 100, () => {
      throw new Error('timed out');
    });
    const cRejects = expect(c).rejects.toThrow('timed out');
    await vi.advanceTimersByTimeAsync(99);
    let settled = false;
    void a.then(() => (settled = true));
    await Promise.resolve();
    expect(settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await expect(a).resolves.toBeUndefined();
    await expect(b).resolves.toBe('late');
    await cRejects;
  });

  it('a rejection after the deadline goes nowhere (no unhandled rejection)', async () => {
    let reject!: (err: Error) => void;
    const late = new Promise<number>((_, r) => (reject = r));
    const out = withTimeout(late, 10);
    await vi.advanceTimersByTimeAsync(10);
    await expect(out).resolves.toBeUndefined();
    const unhandled = vi.fn();
    process.on('unhandledRejection', unhandled);
    try {
      reject(new Error('too late'));
      vi.useRealTimers();
      await new Promise((r) => setImmediate(r)); // past the point where Node reports unhandled rejections
      expect(unhandled).not.toHaveBeenCalled();
    } finally {
      process.off('unhandledRejection', unhandled);
    }
  });
});
