import type { Context } from 'hono';
import type { BeforePage, Encoded, Page } from '../store/messages.ts';

/**
 * The bodies of GET /messages/since and GET /messages/before around messages that are already
 * JSON (the store's pageJson/beforeJson): the same keys, in the same order, as JSON.stringify of
 * the page object would write. UTF-8 bytes: the page's array is copied in once, never decoded.
 */
const MESSAGES = Buffer.from('{"messages":');

export const sincePageBody = (p: Encoded<Page>): Buffer =>
  Buffer.concat([MESSAGES, p.messagesJson, Buffer.from(`,"next":${p.next},"hasMore":${p.hasMore},"epoch":${JSON.stringify(p.epoch)}}`)]);

export const beforePageBody = (p: Encoded<BeforePage>): Buffer =>
  Buffer.concat([MESSAGES, p.messagesJson, Buffer.from(`,"prev":${p.prev},"hasMore":${p.hasMore},"head":${p.head},"epoch":${JSON.stringify(p.epoch)}}`)]);

/** A 200 with a JSON body that is already encoded (the headers c.json gives). The bodies above are never on a SharedArrayBuffer. */
export const jsonAnswer = (c: Context, body: Buffer): Response => c.body(body as Uint8Array<ArrayBuffer>, 200, { 'Content-Type': 'application/json' });
