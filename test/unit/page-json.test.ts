import { afterEach, describe, expect, it } from 'vitest';
import type { MessageRecord } from '../../src/domain/records.ts';
import { beforePageBody, sincePageBody } from '../../src/http/page-body.ts';
import { openDb } from '../../src/store/db.ts';
import { MessageStore, type PageQuery } from '../../src/store/messages.ts';

/**
 * The HTTP pages are JSON made by SQLite (MESSAGE_JSON), not JSON.stringify of Message objects.
 * Both must say the same: every page variant, parsed, is the old object form, on bodies that
 * need escaping; and on the usual ones it is the same bytes.
 */

const controls = Array.from({ length: 0x1f }, (_, i) => String.fromCharCode(i + 1)).join(''); // NUL is refused on accept
const HOSTILE = [
  'say "hi"',
  'back\\slash \\" \\\\ \\u0041 \\n',
  controls,
  'tab\there\nnew line\r\n',
  '\u007f DEL and C1 \u0080\u0085\u009f',
  'line sep \u2028 para sep \u2029',
  'emoji 😀👍🏽 👩‍👩‍👧 flag 🇫🇷',
  'non-BMP 𝄞 𠜎 \u{10FFFF}',
  'ZWJ \u200d ZWNJ \u200c BOM \ufeff',
  '</script><script>alert(1)</script>',
  '{"id":"fake","seq":1}',
  'ü é ñ 中文 العربية',
  ' ',
  'x'.repeat(10_000),
];

const msg = (i: number, over: Partial<MessageRecord> = {}): MessageRecord => ({
  kind: 'message',
  id: `m${i}`,
  room: i % 2 ? 'odd' : 'even',
  sender: `user ${i} "quoted" é😀`,
  body: HOSTILE[i % HOSTILE.length]!,
  createdAt: 1_700_000_000_000 + i * 997,
  ...(i % 3 === 0 ? { key: `k-${i}` } : {}),
  ...over,
});

/** What the wire carried before: JSON.stringify of the object page, parsed. */
const wire = (page: unknown): unknown => JSON.parse(JSON.stringify(page));

describe('page JSON made by SQLite', () => {
  const stores: MessageStore[] = [];
  const open = (records: MessageRecord[]) => {
    const store = new MessageStore(openDb(':memory:'), 's');
    store.append(records.map((record, offset) => ({ offset, record })));
    stores.push(store);
    return store;
  };
  afterEach(() => void stores.splice(0));

  const records = Array.from({ length: 60 }, (_, i) => msg(i));
  const queries: PageQuery[] = [
    { after: 0, limit: 1000 },
    { after: 0, limit: 7 },
    { after: 55, limit: 7 },
    { after: 60, limit: 7 }, // empty: the cursor stays
    { after: 53, limit: 7 }, // exactly full, nothing after: hasMore false
    { room: 'odd', after: 0, limit: 30 }, // the same in one room
    { since: 1_700_000_000_000 + 30 * 997, limit: 30 },
    { room: 'odd', after: 0, limit: 1000 },
    { room: 'odd', after: 10, limit: 5 },
    { room: 'none', after: 0, limit: 5 },
    { since: 0, limit: 1000 },
    { since: 1_700_000_000_000 + 30 * 997, limit: 10 },
    { since: 1_800_000_000_000, limit: 10 }, // empty: the cursor goes to the head
    { room: 'even', since: 1_700_000_000_000 + 20 * 997, limit: 4 },
    { rooms: { exact: ['odd'], prefixes: [] }, after: 0, limit: 1000 },
    { rooms: { exact: [], prefixes: ['ev'] }, after: 3, limit: 6 },
    { rooms: { exact: ['odd'], prefixes: ['e'] }, since: 1_700_000_000_000 + 10 * 997, limit: 9 },
    { rooms: { exact: [], prefixes: [] }, after: 0, limit: 10 },
  ];

  it('GET /messages/since: every variant parses to the object page, on bodies and names that need escaping', () => {
    const store = open(records);
    for (const q of queries) {
      const text = sincePageBody(store.pageJson(q)).toString();
      expect(JSON.parse(text), JSON.stringify(q)).toStrictEqual(wire(store.page(q)));
    }
  });

  it('GET /messages/before: every page parses to the object page', () => {
    const store = open(records);
    for (const [room, before, limit] of [
      ['odd', undefined, 1000],
      ['odd', undefined, 4],
      ['odd', undefined, 30], // the whole room, exactly: hasMore false
      ['odd', 59, 29], // all but the first: hasMore true
      ['even', 31, 5],
      ['even', 1, 5], // nothing older
      ['none', undefined, 5],
    ] as const) {
      const text = beforePageBody(store.beforeJson(room, before, limit)).toString();
      expect(JSON.parse(text), `${room} ${before} ${limit}`).toStrictEqual(wire(store.before(room, before, limit)));
    }
  });

  it('escapes as JSON.stringify does: the same bytes, key left out when there is none', () => {
    const store = open(records);
    expect(sincePageBody(store.pageJson({ after: 0, limit: 1000 })).toString()).toBe(JSON.stringify(store.page({ after: 0, limit: 1000 })));
    expect(beforePageBody(store.beforeJson('odd', undefined, 1000)).toString()).toBe(JSON.stringify(store.before('odd', undefined, 1000)));
    const [withKey, withoutKey] = JSON.parse(store.pageJson({ after: 0, limit: 2 }).messagesJson.toString()) as Record<string, unknown>[];
    expect(Object.keys(withKey!)).toEqual(['id', 'room', 'sender', 'body', 'createdAt', 'seq', 'key']);
    expect(Object.keys(withoutKey!)).toEqual(['id', 'room', 'sender', 'body', 'createdAt', 'seq']);
  });

  it('every character a body may hold (all of the BMP but NUL and lone surrogates, and some of the planes above) round-trips', () => {
    const chars: string[] = [];
    for (let c = 1; c < 0x10000; c++) if (c < 0xd800 || c > 0xdfff) chars.push(String.fromCharCode(c));
    for (let c = 0x10000; c <= 0x10ffff; c += 0x101) chars.push(String.fromCodePoint(c));
    const bodies: string[] = [];
    for (let i = 0; i < chars.length; i += 500) bodies.push(chars.slice(i, i + 500).join(''));
    const store = open(bodies.map((body, i) => msg(i, { body })));
    const text = store.pageJson({ after: 0, limit: 1000 }).messagesJson.toString();
    expect((JSON.parse(text) as { body: string }[]).map((m) => m.body)).toEqual(bodies);
    expect(text).toBe(JSON.stringify(store.page({ after: 0, limit: 1000 }).messages));
  });

  it('createdAt: ISO 8601 with milliseconds, as Date#toISOString writes it', () => {
    const times = [0, 1, 999, 1000, 59_999, 951_782_400_000 /* 2000-02-29 */, 1_700_000_000_123, 1_799_999_999_999, 4_102_444_799_999, 253_402_300_799_999 /* 9999-12-31T23:59:59.999Z */];
    for (let i = 0; i < 200; i++) times.push(Math.floor((i * 7_919_000_000_017) % 253_402_300_800_000));
    const store = open(times.map((createdAt, i) => msg(i, { createdAt })));
    const parsed = JSON.parse(store.pageJson({ after: 0, limit: 1000 }).messagesJson.toString()) as { createdAt: string }[];
    expect(parsed.map((m) => m.createdAt)).toEqual(times.map((t) => new Date(t).toISOString()));
  });
});
