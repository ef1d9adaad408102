import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Broker } from '../../src/broker/connection.ts';
import { StreamConsumer } from '../../src/broker/consumer.ts';
import type { Message } from '../../src/domain/message.ts';
import { encodeRecord, epochRecord } from '../../src/domain/records.ts';
import type { Hub } from '../../src/hub/hub.ts';
import { createLogger } from '../../src/log.ts';
import { Replica } from '../../src/replica.ts';
import { openDb } from '../../src/store/db.ts';
import { MessageStore, type Applied } from '../../src/store/messages.ts';

/**
 * The consumer and the Replica against a fake stream (no broker): a channel that delivers the
 * fake log's records from the offset asked for, and records acks. Real SQLite (a temp file).
 */

type Event = { type: 'commit'; offsets: number[] } | { type: 'ack'; tag: number } | { type: 'push'; seqs: number[] };

class FakeStream {
  log: Buffer[] = [];
  /** Offsets below this were removed by retention. */
  first = 0;
  /** Subscriptions the broker never answers (the next this many basic.consume calls hang). */
  hangingConsumes = 0;
  readonly channels: FakeChannel[] = [];
  constructor(readonly events: Event[]) {}
  append(...bodies: Buffer[]): void {
    this.log.push(...bodies);
    for (const ch of this.channels) ch.pump();
  }
  /** Subscriptions (not peeks) that are still open. */
  consumers(): FakeChannel[] {
    return this.channels.filter((c) => c.active && c.from !== undefined && !c.peek);
  }
}

class FakeChannel extends EventEmitter {
  active = true;
  from: number | undefined;
  peek = false;
  private next = 0;
  private tag = 0;
  /** deliveryTag -> offset */
  readonly tags = new Map<number, number>();
  private deliver: ((msg: unknown) => void) | undefined;
  constructor(private readonly stream: FakeStream) {
    super();
  }
  async basicQos(): Promise<void> {}
  async basicConsume(opts: { arguments: { 'x-stream-offset': bigint | string } }, cb: (msg: unknown) => void) {
    const at = opts.arguments['x-stream-offset'];
    if (at !== 'first' && this.stream.hangingConsumes > 0) {
      this.stream.hangingConsumes--;
      return new Promise<never>(() => {});
    }
    this.peek = at === 'first';
    this.from = at === 'first' ? 0 : Number(at);
    // Like RabbitMQ: an offset removed by retention starts at the first one kept; one past the
    // end starts at the end (the next record appended).
    this.next = Math.min(Math.max(this.from, this.stream.first), this.stream.log.length);
    this.deliver = cb;
    setImmediate(() => this.pump());
    return { consumerTag: 'c' };
  }
  pump(): void {
    while (this.active && this.deliver && this.next < this.stream.log.length) {
      const offset = this.next++;
      const deliveryTag = ++this.tag;
      this.tags.set(deliveryTag, offset);
      this.deliver({ headers: { 'x-stream-offset': offset }, body: this.stream.log[offset], deliveryTag });
    }
  }
  basicAck({ deliveryTag }: { deliveryTag: number; multiple: boolean }): void {
    this.stream.events.push({ type: 'ack', tag: this.tags.get(deliveryTag)! });
  }
  async close(): Promise<void> {
    if (!this.active) return;
    this.active = false;
    this.emit('close');
  }
  /** The broker ends the subscription (the stream was deleted). */
  cancel(): void {
    this.emit('basic.cancel');
  }
}

function fakeBroker(stream: FakeStream): Broker {
  const conn = Object.assign(new EventEmitter(), {
    acquire: async () => {
      const ch = new FakeChannel(stream);
      stream.channels.push(ch);
      return ch;
    },
    queueDeclare: async () => ({}),
  });
  return { conn: conn as never, ready: () => true, corkForThisTurn() {} };
}

const msg = (id: string) => encodeRecord({ kind: 'message', id, room: 'r', sender: 's', body: id, createdAt: 1_700_000_000_000 });

let dir: string;
let events: Event[];
let stream: FakeStream;
let store: MessageStore;
let consumer: StreamConsumer<Applied> | undefined;
const hub = { push: (ms: Message[]) => events.push({ type: 'push', seqs: ms.map((m) => m.seq) }), publishReads: vi.fn(), disconnectAll: vi.fn() };

function start(prefetch = 100): { consumer: StreamConsumer<Applied>; replica: Replica } {
  const replica = new Replica(store, hub as unknown as Hub, createLogger('silent'), join(dir, 'c.db'));
  consumer = new StreamConsumer({ broker: fakeBroker(stream), stream: { name: 's', maxAge: '1D' }, prefetch, log: createLogger('silent'), sink: replica });
  consumer.start();
  return { consumer, replica };
}

const subscribedFrom = async (n: number) => {
  await vi.waitFor(() => expect(stream.consumers().map((c) => c.from)).toEqual([n]));
  return stream.consumers()[0]!;
};

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'consumer-unit-'));
  events = [];
  stream = new FakeStream(events);
  store = new MessageStore(openDb(join(dir, 'c.db')), 's');
  const append = store.apply.bind(store);
  vi.spyOn(store, 'apply').mockImplementation((entries) => {
    events.push({ type: 'commit', offsets: entries.map((e) => e.offset) });
    return append(entries);
  });
});

afterEach(async () => {
  await consumer?.stop();
  consumer = undefined;
  rmSync(dir, { recursive: true, force: true });
});

describe('StreamConsumer + Replica against a fake stream', () => {
  it('records that arrive together are one batch: one commit, then one ack, then one push', async () => {
    stream.append(encodeRecord(epochRecord('e1')), msg('a'), msg('b'), msg('c'));
    start();
    await subscribedFrom(0);
    await vi.waitFor(() => expect(events.at(-1)?.type).toBe('push'));
    expect(events).toEqual([
      { type: 'commit', offsets: [0, 1, 2, 3] },
      { type: 'ack', tag: 3 },
      { type: 'push', seqs: [2, 3, 4] },
    ]);
    expect(store.lastOffset()).toBe(3);
    expect(store.epoch()).toBe('e1');
  });

  it('a batch never exceeds the prefetch', async () => {
    start(2);
    await subscribedFrom(0);
    stream.append(msg('a'), msg('b'), msg('c'), msg('d'), msg('e'));
    await vi.waitFor(() => expect(store.lastOffset()).toBe(4));
    expect(events.filter((e) => e.type === 'commit')).toEqual([
      { type: 'commit', offsets: [0, 1] },
      { type: 'commit', offsets: [2, 3] },
      { type: 'commit', offsets: [4] },
    ]);
  });

  it('a failed commit acks and pushes nothing; the consumer resubscribes from the stored offset and loses nothing', async () => {
    const { consumer } = start();
    await subscribedFrom(0);
    stream.append(msg('a'));
    await vi.waitFor(() => expect(store.lastOffset()).toBe(0));
    vi.mocked(store.apply).mockImplementationOnce(() => {
      events.push({ type: 'commit', offsets: [] });
      throw new Error('SQLITE_BUSY: database is locked');
    });
    events.length = 0;
    stream.append(msg('b'), msg('c'));
    await vi.waitFor(() => expect(consumer.status()).toEqual({ state: 'retrying', error: 'SQLITE_BUSY: database is locked' }));
    expect(events).toEqual([{ type: 'commit', offsets: [] }]);
    // The anchor: one record before the first one not stored.
    await subscribedFrom(0);
    await vi.waitFor(() => expect(store.lastOffset()).toBe(2));
    expect(events.slice(1)).toEqual([
      { type: 'commit', offsets: [1, 2] }, // the anchor (offset 0) was checked and skipped
      { type: 'ack', tag: 2 },
      { type: 'push', seqs: [2, 3] },
    ]);
    expect(consumer.status()).toEqual({ state: 'consuming' });
  });

  it('while the probe write fails it does not subscribe at all', async () => {
    const probe = vi.spyOn(store, 'probeWrite').mockImplementation(() => {
      throw new Error('SQLITE_READONLY');
    });
    const { consumer } = start();
    await vi.waitFor(() => expect(consumer.status()).toEqual({ state: 'retrying', error: 'SQLITE_READONLY' }));
    expect(stream.consumers()).toEqual([]);
    probe.mockRestore();
    await subscribedFrom(0);
  });

  it('after the channel closes it resubscribes from the stored position, and re-delivered records are not stored twice', async () => {
    start();
    await subscribedFrom(0);
    stream.append(encodeRecord(epochRecord('e1')), msg('a'), msg('b'));
    await vi.waitFor(() => expect(store.lastOffset()).toBe(2));
    await stream.consumers()[0]!.close();
    await subscribedFrom(2); // the anchor re-read
    stream.append(msg('c'));
    await vi.waitFor(() => expect(store.lastOffset()).toBe(3));
    expect(store.page({ after: 0, limit: 10 }).messages.map((m) => m.id)).toEqual(['a', 'b', 'c']);
    expect(events.filter((e) => e.type === 'push')).toEqual([
      { type: 'push', seqs: [2, 3] },
      { type: 'push', seqs: [4] },
    ]);
  });

  it('a subscribe the broker never answers is given up at the attach deadline and made again on a new channel', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      stream.hangingConsumes = 1;
      const { consumer } = start();
      await vi.advanceTimersByTimeAsync(14_000);
      expect(stream.channels).toHaveLength(1); // still waiting on the first one
      expect(consumer.status().state).not.toBe('consuming');
      await vi.advanceTimersByTimeAsync(1_000 + 250); // the deadline, then the first backoff
      expect(stream.channels[0]!.active).toBe(false); // the hung channel was closed
      await subscribedFrom(0);
      stream.append(encodeRecord(epochRecord('e1')), msg('a'));
      await vi.waitFor(() => expect(store.lastOffset()).toBe(1));
      expect(consumer.status().state).toBe('consuming');
    } finally {
      vi.useRealTimers();
    }
  });

  it('a stream re-created shorter (rewind): the old data is set aside, the node follows the new log from 0', async () => {
    stream.append(encodeRecord(epochRecord('e1')), msg('a'), msg('b'), msg('c'));
    start();
    await vi.waitFor(() => expect(store.lastOffset()).toBe(3));
    // Re-created by someone else without an epoch record, shorter than what the node has read.
    stream.log = [msg('x'), msg('y')];
    stream.consumers()[0]!.cancel();
    await subscribedFrom(3); // the anchor: one past the new log's end, so the broker waits
    events.length = 0;
    stream.append(msg('z')); // offset 2 < 4 expected: rewound
    await vi.waitFor(() => expect(store.lastOffset()).toBe(2));
    expect(store.epoch()).toBe(null);
    expect(store.page({ after: 0, limit: 10 }).messages.map((m) => m.id)).toEqual(['x', 'y', 'z']);
    expect(hub.disconnectAll).toHaveBeenCalledWith(4409, 'the log was reset: resubscribe without a cursor');
    // Nothing of the rewound delivery was stored or acked before the reset.
    expect(events[0]).toEqual({ type: 'commit', offsets: [0, 1, 2] });
  });

  it('the anchor record changed (re-created and grown past the node): reset before anything is stored', async () => {
    stream.append(encodeRecord(epochRecord('e1')), msg('a'), msg('b'));
    start();
    await vi.waitFor(() => expect(store.lastOffset()).toBe(2));
    stream.log = [msg('p'), msg('q'), msg('r'), msg('s')];
    stream.consumers()[0]!.cancel();
    await vi.waitFor(() => expect(store.page({ after: 0, limit: 10 }).messages.map((m) => m.id)).toEqual(['p', 'q', 'r', 's']));
    expect(store.lastOffset()).toBe(3);
  });

  it('offsets the stream no longer has (retention): recorded as a gap, reading goes on', async () => {
    stream.append(encodeRecord(epochRecord('e1')), msg('a'), msg('b'));
    start();
    await vi.waitFor(() => expect(store.lastOffset()).toBe(2));
    await stream.consumers()[0]!.close();
    // While the node was away: 3-6 were written and retention removed everything below 5.
    stream.log.push(msg('c'), msg('d'), msg('e'), msg('f'));
    stream.first = 5;
    await subscribedFrom(2);
    await vi.waitFor(() => expect(store.lastOffset()).toBe(6));
    expect(store.gaps().map((g) => [g.fromOffset, g.toOffset])).toEqual([[3, 4]]);
    expect(store.page({ after: 0, limit: 10 }).messages.map((m) => m.id)).toEqual(['a', 'b', 'e', 'f']);
  });
});
