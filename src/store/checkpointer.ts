import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../log.ts';
import { withTimeout } from '../timeout.ts';

/**
 * Moves SQLite's WAL checkpoints off the event loop. With the default auto-checkpoint, one
 * commit in every few hundred copies the WAL back into the database and stalls the loop for
 * 5-7 ms (measured here), which every message in flight then waits for. A worker thread with its
 * own connection checkpoints instead (PASSIVE: it never blocks the writer); the main connection
 * turns auto-checkpoint off only once the worker runs, and back on if it dies.
 */
export function startCheckpointer(path: string, setAutoCheckpoint: (pages: number) => void, log: Logger, intervalMs = 500): { stop(): Promise<void> } {
  // Plain JS, so the worker needs no TypeScript loader.
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const Database = require(workerData.driver);
    const db = new Database(workerData.path);
    db.pragma('busy_timeout = 1000');
    const timer = setInterval(() => {
      try { db.pragma('wal_checkpoint(PASSIVE)'); } catch (err) { parentPort.postMessage({ error: String(err && err.message || err) }); }
    }, workerData.intervalMs);
    parentPort.on('message', (m) => { if (m === 'stop') { clearInterval(timer); db.close(); parentPort.close(); } });
    parentPort.postMessage({ ready: true });
  `;
  const worker = new Worker(code, { eval: true, workerData: { path, intervalMs, driver: createRequire(import.meta.url).resolve('better-sqlite3') } });
  worker.unref();
  let stopped = false;
  worker.on('message', (m: { ready?: boolean; error?: string }) => {
    if (m.ready) setAutoCheckpoint(0);
    else if (m.error) log.warn({ err: m.error }, 'background WAL checkpoint failed; will retry');
  });
  worker.on('error', (err) => log.error({ err }, 'WAL checkpoint worker failed; checkpointing on the main thread again'));
  worker.on('exit', () => {
    if (!stopped) setAutoCheckpoint(1000);
  });
  return {
    async stop() {
      stopped = true;
      setAutoCheckpoint(1000);
      worker.ref(); // keep the process alive until the worker has closed its connection
      const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      worker.postMessage('stop');
      await withTimeout(exited, 1000);
      await worker.terminate();
    },
  };
}
