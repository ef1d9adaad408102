/**
 * Settles as `promise` does, or after `ms` with what `onTimeout` returns (or throws), whichever
 * comes first; the timer is cleared either way. What `promise` does after the deadline is ignored
 * (a late rejection is not unhandled: the race holds it), so a caller that needs to clean up after
 * a late result does it on `promise` itself.
 */
export function withTimeout<T, U = undefined>(promise: Promise<T>, ms: number, onTimeout: () => U = () => undefined as U): Promise<T | U> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<U>((resolve, reject) => {
    timer = setTimeout(() => {
      try {
        resolve(onTimeout());
      } catch (err) {
        reject(err);
      }
    }, ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}
