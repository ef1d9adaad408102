import { describe, expect, it } from 'vitest';
import { FrameBudget } from '../../src/hub/frame-budget.ts';

describe('FrameBudget (frames per socket)', () => {
  it('allows a burst, then drops with one first-drop, and calls more than a burst of drops a flood', () => {
    const t = 1_000_000;
    const b = new FrameBudget(200, 50, t);
    for (let i = 0; i < 200; i++) expect(b.take(t)).toBe('ok');
    expect(b.take(t)).toBe('first-drop');
    for (let i = 0; i < 199; i++) expect(b.take(t)).toBe('drop');
    expect(b.take(t)).toBe('flood');
  });

  it('a steady flood of one frame per millisecond is a flood within a second, although each refill admits a frame', () => {
    const t = 1_000_000;
    const b = new FrameBudget(200, 50, t);
    const verdicts: string[] = [];
    for (let ms = 0; ms < 1000 && !verdicts.includes('flood'); ms++) verdicts.push(b.take(t + ms));
    expect(verdicts.at(-1)).toBe('flood');
    const ms = verdicts.length;
    expect(ms).toBeLessThan(500);
    expect(verdicts.filter((v) => v === 'ok').length).toBe(200 + Math.floor(((ms - 1) / 1000) * 50)); // the burst, then the refills
    expect(verdicts.filter((v) => v === 'first-drop')).toHaveLength(1);
  });

  it('a client that stays under the rate is never dropped; one that calms down is forgiven', () => {
    const t = 1_000_000;
    const b = new FrameBudget(10, 10, t);
    for (let i = 0; i < 1000; i++) expect(b.take(t + i * 100)).toBe('ok'); // exactly at the rate
    const u = t + 200_000;
    for (let i = 0; i < 10; i++) b.take(u);
    expect(b.take(u)).toBe('first-drop');
    for (let i = 0; i < 5; i++) expect(b.take(u)).toBe('drop');
    // a full bucket later (1 s at 10/s), the count of drops starts over
    expect(b.take(u + 1000)).toBe('ok');
    for (let i = 0; i < 9; i++) b.take(u + 1000);
    expect(b.take(u + 1000)).toBe('first-drop');
  });
});
