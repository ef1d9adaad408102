import type { Context } from 'hono';
import type { BeforePage, Encoded, Page } from '../store/messages.ts';

/**
 * The bodies of GET /messages/since and GET /messages/before around messages that are already
 * JSON text (the store's pageJson/beforeJson): the same keys, in the same order, as
 * JSON.stringify of the page object would write.
 */
export const sincePageBody = (p: Encoded<Page>): string =>
  `{"messages":${p.messagesJson},"next":${p.next},"hasMore":${p.hasMore},"epoch":${JSON.stringify(p.epoch)}}`;

export const beforePageBody = (p: Encoded<BeforePage>): string =>
  `{"messages":${p.messagesJson},"prev":${p.prev},"hasMore":${p.hasMore},"head":${p.head},"epoch":${JSON.stringify(p.epoch)}}`;

/** A 200 with a JSON body that is already text (the headers c.json gives). */
export const jsonText = (c: Context, text: string): Response => c.body(text, 200, { 'Content-Type': 'application/json' });
