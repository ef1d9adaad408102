import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDb } from '../../src/store/db.ts';
import { MessageStore, type LogEntry } from '../../src/store/messages.ts';
import { nowMs } from './clock.ts';
import { countMessages } from './http-pages.ts';
import type { BenchOptions } from './options.ts';
import { say } from './progress.ts';
import { logRecord, roomName } from './records.ts';
import type { Scope } from './scope.ts';
import { perSecond } from './stats.ts';

export interface SqliteCeilings {
  batchSize: number;
  rows: number;
  insertPerSec: number | null;
  /** the same with small batches (what a lightly loaded consumer commits) */
  insertSmallBatch: { batchSize: number; rows: number; perSec: number | null };
  /** GET /messages/since's read without a room (the page's JSON made by SQLite, pageJson), limit 1000, from after=0 */
  pageReadPerSec: number | null;
  /** the same for one room (index messages_room_seq) */
  roomPageReadPerSec: number | null;
  /** the same page read as Message objects (page(): the hub's replay and the SDK's tests read these) */
  objectPageReadPerSec: number | null;
}

const BATCH = 1000;
const SMALL_BATCH = 10;

/**
 * (b) The store alone, on the real schema and code (openDb, MessageStore.append and page) in a
 * temp file: batched inserts (each batch one transaction with the offset, as the consumer commits)
 * and cursor paging. Bounded by a row count and by time.
 */
export async function runSqliteCeilings(scope: Scope, opts: BenchOptions): Promise<SqliteCeilings> {
  const dir = mkdtempSync(join(tmpdir(), 'chat-bench-sqlite-'));
  scope.defer(() => rmSync(dir, { recursive: true, force: true }));
  const db = openDb(join(dir, 'ceiling.db'));
  scope.defer(() => db.$client.close());
  const store = new MessageStore(db, 'bench.sqlite-ceiling');
  // Time budgets of each measurement (a quick run keeps them short).
  const budgetMs = opts.quick ? 1000 : Math.min(opts.seconds, 5) * 1000;
  const smallBudgetMs = opts.quick ? 500 : 2000;
  const maxRows = Math.max(opts.stored, 50_000) * 4;
  let offset = 0;

  const insert = (batchSize: number, rows: number, ms: number) => {
    let done = 0;
    let spent = 0;
    while (done < rows && spent < ms) {
      scope.signal.throwIfAborted();
      const batch: LogEntry[] = new Array(batchSize);
      const now = Date.now();
      for (let k = 0; k < batchSize; k++, offset++) batch[k] = { offset, record: logRecord(roomName(offset % opts.rooms), offset, opts.bodyBytes, now) };
      const t = nowMs();
      store.append(batch);
      spent += nowMs() - t;
      done += batchSize;
    }
    return { rows: done, perSec: perSecond(done, spent) };
  };

  say(`sqlite: inserting in batches of ${BATCH} (up to ${maxRows} rows or ${budgetMs / 1000} s)`);
  const big = insert(BATCH, maxRows, budgetMs);
  const small = insert(SMALL_BATCH, maxRows, smallBudgetMs);
  say(`sqlite: ${big.perSec}/s in batches of ${BATCH}, ${small.perSec}/s in batches of ${SMALL_BATCH}`);

  // `count` runs after the clock stops: counting the JSON's messages is the reader's work, not SQLite's.
  const asJson = (room: string | undefined, after: number) => {
    const p = store.pageJson({ room, after, limit: 1000 });
    return { count: () => countMessages(p.messagesJson), next: p.next, hasMore: p.hasMore };
  };
  const asObjects = (room: string | undefined, after: number) => {
    const p = store.page({ room, after, limit: 1000 });
    return { count: () => p.messages.length, next: p.next, hasMore: p.hasMore };
  };
  const readPages = (room: string | undefined, read: typeof asJson = asJson) => {
    let rows = 0;
    let spent = 0;
    let passes = 0;
    while (spent < smallBudgetMs && passes < 20) {
      let after = 0;
      for (;;) {
        scope.signal.throwIfAborted();
        const t = nowMs();
        const page = read(room, after);
        spent += nowMs() - t;
        rows += page.count();
        after = page.next;
        if (!page.hasMore) break;
      }
      passes++;
    }
    return perSecond(rows, spent);
  };
  const pageReadPerSec = readPages(undefined);
  const roomPageReadPerSec = readPages(roomName(0));
  const objectPageReadPerSec = readPages(undefined, asObjects);
  say(`sqlite: page reads as JSON ${pageReadPerSec} msg/s (all rooms), ${roomPageReadPerSec} msg/s (one room); as objects ${objectPageReadPerSec} msg/s`);
  return {
    batchSize: BATCH,
    rows: big.rows,
    insertPerSec: big.perSec,
    insertSmallBatch: { batchSize: SMALL_BATCH, rows: small.rows, perSec: small.perSec },
    pageReadPerSec,
    roomPageReadPerSec,
    objectPageReadPerSec,
  };
}
