/** Progress lines on stderr, stamped with the time since the run began; stdout is kept for the result line. */

const started = performance.now();

export function say(line: string): void {
  const s = ((performance.now() - started) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`[bench ${s}s] ${line}\n`);
}
