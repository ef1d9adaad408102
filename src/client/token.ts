/** How long before `exp` to refresh: a fifth of the remaining life, at most a minute, at least a second. */
export function refreshDelayMs(expSeconds: number, now = Date.now()): number {
  const left = expSeconds * 1000 - now;
  return Math.max(0, left - Math.max(1000, Math.min(60_000, left / 5)));
}
