import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { drizzle, type BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import * as schema from './schema.ts';

export type Db = BetterSQLite3Database<typeof schema> & { $client: Database.Database };

const MIGRATIONS = resolve(dirname(fileURLToPath(import.meta.url)), '../../migrations');

/**
 * Opens (creating its folder) and migrates this node's SQLite file.
 * WAL lets page reads run beside the consumer's writes; synchronous=NORMAL keeps commits cheap and
 * is safe here because a commit lost to a power cut is simply re-read from the stream.
 */
export function openDb(path: string): Db {
  if (path !== ':memory:') mkdirSync(dirname(resolve(path)), { recursive: true });
  const sqlite = new Database(path);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  // The consumer is the only writer; a lock held by someone else (a backup tool, an operator's
  // shell) should fail a commit quickly, not freeze the event loop while it waits.
  sqlite.pragma('busy_timeout = 250');
  sqlite.pragma('cache_size = -32000');
  const db = drizzle(sqlite, { schema });
  migrate(db, { migrationsFolder: MIGRATIONS });
  return db;
}
