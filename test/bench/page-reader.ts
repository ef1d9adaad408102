/**
 * Child process: one HTTP reader paging through the server's messages (GET /messages/since from
 * a cursor, or GET /messages/before from the newest page), one page at a time over a keep-alive
 * connection, counting the messages of each page without parsing them (http-pages.ts skim).
 * Several of these at once load the server (phases 3 and 3b) while costing it little CPU.
 */
import { pageAll, scrollAll } from './http-pages.ts';
import { serve } from './ipc.ts';

serve({
  since: (a: { base: string; after: number; limit: number; room?: string; maxPages: number }) => pageAll(a.base, { ...a, reading: 'skim' }),
  before: (a: { base: string; room: string; limit: number; maxPages: number }) => scrollAll(a.base, { ...a, reading: 'skim' }),
});
